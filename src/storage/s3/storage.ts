import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import { splitDigest } from '../digest.js';
import { MAX_LINK_BYTES, parseLink } from '../link.js';
import type { BlobStat, BytesRead, LinkRead, LinkReadOptions, NameListing, ReadFault, RepositoryListing, RepositorySelection, SourceBlobReader, Storage } from '../storage.js';
import type { S3SourceClient } from './client.js';
import { S3Error } from './errors.js';
import type { S3Location } from './location.js';
import { S3_READS_IN_FLIGHT, WALK_DIRECTORY_READS } from '../../tuning.js';

const HEX = /^[a-f0-9]{64}$/;

/**
 * A registry's storage in an S3 bucket (distribution's `s3` driver writes the filesystem driver's tree under
 * `ROOTDIRECTORY/docker/registry/v2/`, docs/registry-behaviour.md, Storage layout), read as an object store: names
 * come from delimiter listings (one level of "directories" a request), small objects (links, manifests) are read
 * whole, blob presence and sizes come from flat listings of `blobs/sha256/XY/` (1,000 keys a request instead of a
 * HEAD per blob), many requests in flight. Only a `NoSuchKey` (or a HEAD's 404) is `absent`: a 403, a 5xx after the
 * retries or a timeout is `unreadable`, so a deletion never rests on a store that did not answer.
 */
export class S3Storage implements Storage {
  readonly root: string;
  readonly key: string;
  readonly readsInFlight = S3_READS_IN_FLIGHT;
  readonly copyReason = 'the storage is an S3 bucket: its blobs are downloaded into the layouts, not hard-linked';
  readonly #client: S3SourceClient;
  readonly #v2: string;
  readonly #where: string;
  /**
   * Blob sizes by hex digest, one entry per fan-out directory (`blobs/sha256/XY/`), listed the first time a blob in it
   * is asked for: a scan of the whole storage lists every blob once, 1,000 a request; a scan of one repository lists
   * only the directories its blobs fall in. Kept for the run (one storage is opened per run).
   */
  readonly #partitions = new Map<string, Promise<Map<string, number> | undefined>>();
  /**
   * After expectEveryBlob: sha256 blob sizes by the first hex digit, 16 listings started at once (while the walk goes
   * on) instead of 256 as blobs are met: on a local RGW a listing costs 2-3 GETs, and 240 of them are saved.
   */
  #wide: Map<string, Promise<Map<string, number> | undefined>> | undefined;
  /**
   * The link objects the last listing of each repository's `_manifests/` saw (see #listedLink), taken out as they
   * are used: a tag's link is answered from its listing once, then asked of the store again.
   */
  readonly #listed = new Map<string, ListedLinks>();

  constructor(client: S3SourceClient, location: S3Location, endpoint: string | undefined) {
    this.#client = client;
    this.#v2 = location.v2Prefix;
    this.root = `s3://${location.bucket}/${location.v2Prefix.replace(/\/$/, '')}`;
    // The same bucket and root give the same key however the URL was written; another endpoint is another store.
    this.key = endpoint ? `${this.root}@${new URL(endpoint).host}` : this.root;
    this.#where = endpoint ? `${this.root} at ${new URL(endpoint).origin}` : this.root;
  }

  describe(): string {
    return this.#where;
  }

  /**
   * Repositories by delimiter listings from `repositories/` (or from the selection's prefixes): a "directory" holding
   * `_manifests/` is a repository; names nest, so every other non-`_` directory is listed in turn. `_layers`,
   * `_uploads` and `_manifests` are never entered: most of the keys live there.
   */
  async listRepositories(selection?: RepositorySelection, onFound?: (repository: string) => void): Promise<RepositoryListing> {
    const base = `${this.#v2}repositories/`;
    const starts = startPrefixes(selection?.prefixes).map((p) => base + p);
    const found = new Set<string>();
    const faults: ReadFault[] = [];
    const limit = pLimit(WALK_DIRECTORY_READS);
    // Only the listing itself holds one of the reads in flight: a level waiting for the levels below it holds none
    // (else as many namespaces as reads would each hold one, waiting on children that can never start).
    const visit = async (prefix: string): Promise<void> => {
      const below: string[] = [];
      try {
        await limit(async () => {
          for await (const page of this.#client.list({ prefix, delimiter: '/' })) {
            for (const child of page.prefixes) {
              const name = child.slice(child.lastIndexOf('/', child.length - 2) + 1, -1);
              if (name === '_manifests') {
                const repository = child.slice(base.length, -'/_manifests/'.length);
                if (repository && !found.has(repository)) {
                  found.add(repository);
                  if (selection?.wanted(repository) ?? true) onFound?.(repository);
                }
              } else if (!name.startsWith('_')) below.push(child);
            }
          }
        });
      } catch (err) {
        if (!(err instanceof S3Error)) throw err;
        const rel = prefix.slice(base.length).replace(/\/$/, '');
        faults.push({ path: rel, prefix: rel, repository: false, code: failureCode(err), location: `s3://${this.#client.bucket}/${prefix}`, detail: failureText(err) });
        return;
      }
      await Promise.all(below.map(visit));
    };
    await Promise.all(starts.map(visit));
    const repositories = [...found].filter((r) => selection?.wanted(r) ?? true);
    return { repositories, faults };
  }

  listTags(repository: string): Promise<NameListing> {
    return this.#listNames(repository, 'tags/');
  }

  async listRevisions(repository: string): Promise<NameListing> {
    const listed = await this.#listNames(repository, 'revisions/sha256/');
    if (!listed.ok) return listed;
    return { ok: true, names: revisionNames(listed.names) };
  }

  /**
   * Tags and revisions from one flat listing of `_manifests/` (its keys: `tags/<tag>/current/link`,
   * `tags/<tag>/index/…`, `revisions/sha256/<hex>/link`): one request instead of two for a repository whose keys fit
   * in a page, which most do. The listing also gives each link object's ETag and LastModified, kept for
   * readTagLink/readRevisionLink (#listedLink). A listing that fails falls back to listTags and listRevisions (their
   * own requests, and their own faults).
   */
  async listManifestNames(repository: string): Promise<{ tags: NameListing; revisions: NameListing }> {
    const prefix = `${this.#v2}repositories/${repository}/_manifests/`;
    // What a delimiter listing of `tags/` and of `revisions/sha256/` would give: each first level below them, once.
    const tags = new Set<string>();
    const revisions = new Set<string>();
    const links: ListedLinks = { tags: new Map(), revisions: new Map(), digests: new Map() };
    try {
      for await (const page of this.#client.list({ prefix })) {
        for (const { key, etag, lastModified } of page.objects) {
          const rest = key.slice(prefix.length);
          const below = rest.startsWith('tags/') ? 5 : rest.startsWith('revisions/sha256/') ? 17 : 0;
          const end = below === 0 ? -1 : rest.indexOf('/', below);
          if (end === -1) continue;
          const name = rest.slice(below, end);
          (below === 5 ? tags : revisions).add(name);
          const link = below === 5 ? rest.length === end + '/current/link'.length && rest.endsWith('/current/link') : rest.length === end + '/link'.length && rest.endsWith('/link');
          if (link) links[below === 5 ? 'tags' : 'revisions'].set(name, { etag: etag.replace(/"/g, '').toLowerCase(), lastModified });
        }
      }
    } catch (err) {
      if (!(err instanceof S3Error)) throw err;
      const [tagNames, revisionList] = await Promise.all([this.listTags(repository), this.listRevisions(repository)]);
      return { tags: tagNames, revisions: revisionList };
    }
    if (links.tags.size > 0 || links.revisions.size > 0) {
      for (const hex of links.revisions.keys()) links.digests.set(linkETag(hex), hex);
      this.#listed.set(repository, links);
    }
    return { tags: { ok: true, names: [...tags] }, revisions: { ok: true, names: revisionNames(revisions) } };
  }

  async readTagLink(repository: string, tag: string, options?: LinkReadOptions): Promise<LinkRead> {
    return (
      (options?.fresh ? undefined : this.#listedLink(repository, 'tags', tag)) ??
      this.#readLink(`${this.#v2}repositories/${repository}/_manifests/tags/${tag}/current/link`)
    );
  }

  async readRevisionLink(repository: string, digest: string, options?: LinkReadOptions): Promise<LinkRead> {
    const hex = splitDigest(digest)[1];
    return (
      (options?.fresh ? undefined : this.#listedLink(repository, 'revisions', hex)) ??
      this.#readLink(`${this.#v2}repositories/${repository}/_manifests/revisions/sha256/${hex}/link`)
    );
  }

  /**
   * A link answered from the listing of its repository, without a GET: a link object holds `sha256:<hex>` (71
   * bytes, written in one PUT), and the ETag S3 gives such an object is the MD5 of its bytes. So a link whose ETag
   * is the MD5 of `sha256:<hex>` for one of the repository's revisions holds that digest, and its LastModified is the
   * push time. Anything else (no entry, an ETag that is not a plain MD5 as with SSE-KMS or a multipart upload, a
   * link naming a manifest with no revision link, garbage) is undefined: the link is then read with a GET, as
   * without a listing. Each entry answers once: a second read of the same link asks the store.
   */
  #listedLink(repository: string, kind: 'tags' | 'revisions', name: string): LinkRead | undefined {
    const links = this.#listed.get(repository);
    const object = links?.[kind].get(name);
    if (!links || !object) return undefined;
    links[kind].delete(name);
    if (links.tags.size === 0 && links.revisions.size === 0) this.#listed.delete(repository);
    const hex = links.digests.get(object.etag);
    if (hex === undefined || (kind === 'revisions' && hex !== name)) return undefined;
    const pushedAt = new Date(object.lastModified);
    return { ok: true, digest: `sha256:${hex}`, ...(Number.isNaN(pushedAt.getTime()) ? {} : { pushedAt }) };
  }

  async readManifest(digest: string, limit: number): Promise<BytesRead> {
    const key = this.#dataKey(digest);
    const location = this.#location(key);
    try {
      return { ok: true, bytes: await this.#client.getObject(key, limit) };
    } catch (err) {
      if (!(err instanceof S3Error)) throw err;
      if (err.kind === 'absent') return { ok: false, reason: 'absent', location, detail: 'does not exist (NoSuchKey)' };
      if (err.kind === 'too-large') return { ok: false, reason: 'too-big', location, detail: `is ${err.size ?? `over ${limit}`} bytes`, ...(err.size !== undefined ? { size: err.size } : {}) };
      return { ok: false, reason: 'unreadable', location, detail: `cannot be read (${failureText(err)})` };
    }
  }

  /**
   * From the listing of the blob's fan-out directory; a blob the listing does not hold is asked for by HEAD (it may
   * have been written since), and only the store's 404 to that makes it absent.
   */
  async statBlob(digest: string): Promise<BlobStat> {
    const [algorithm, hex] = splitDigest(digest);
    const sizes = await this.#partition(algorithm, hex.slice(0, 2));
    const size = sizes?.get(hex);
    if (size !== undefined) return { ok: true, size };
    const key = this.#dataKey(digest);
    try {
      return { ok: true, size: (await this.#client.headObject(key)).size };
    } catch (err) {
      if (!(err instanceof S3Error)) throw err;
      if (err.kind === 'absent') return { ok: false, reason: 'absent', location: this.#location(key), detail: 'does not exist (404)' };
      return { ok: false, reason: 'unreadable', location: this.#location(key), detail: `cannot be read (${failureText(err)})` };
    }
  }

  blobReader(digest: string, size: number): SourceBlobReader {
    const client = this.#client;
    const key = this.#dataKey(digest);
    const location = this.#location(key);
    return {
      digest,
      size,
      // A fresh GET at each open (each attempt, each chunk); the client resumes a cut answer from the next byte.
      async *open(range) {
        const start = range?.start ?? 0;
        const end = range?.end ?? size - 1;
        const expected = end - start + 1;
        if (expected <= 0) return;
        let done = 0;
        for await (const chunk of await client.openRange(key, { start, end })) {
          done += (chunk as Buffer).length;
          yield chunk as Buffer;
        }
        if (done !== expected) throw new Error(`${location} changed while being read: ${done} bytes instead of ${expected}`);
      },
    };
  }

  #location(key: string): string {
    return `s3://${this.#client.bucket}/${key}`;
  }

  #dataKey(digest: string): string {
    const [algorithm, hex] = splitDigest(digest);
    return `${this.#v2}blobs/${algorithm}/${hex.slice(0, 2)}/${hex}/data`;
  }

  /** The scan reads the whole storage: every sha256 blob is listed now, by first hex digit (see #wide). */
  expectEveryBlob(): void {
    if (this.#wide) return;
    this.#wide = new Map([...'0123456789abcdef'].map((digit) => [digit, this.#listPartition('sha256', digit)]));
  }

  /** `blobs/<alg>/<XY>/`'s blob sizes, or undefined when it could not be listed (each blob is then HEADed). */
  #partition(algorithm: string, fan: string): Promise<Map<string, number> | undefined> {
    const wide = algorithm === 'sha256' ? this.#wide?.get(fan[0]!) : undefined;
    if (wide) return wide;
    const prefix = `${this.#v2}blobs/${algorithm}/${fan}/`;
    let sizes = this.#partitions.get(prefix);
    if (!sizes) {
      sizes = this.#listPartition(algorithm, `${fan}/`);
      this.#partitions.set(prefix, sizes);
    }
    return sizes;
  }

  /** The sizes of the blobs whose fan-out directory (`blobs/<alg>/XY/`) begins with `start`, by hex digest. */
  async #listPartition(algorithm: string, start: string): Promise<Map<string, number> | undefined> {
    const base = `${this.#v2}blobs/${algorithm}/`;
    const sizes = new Map<string, number>();
    try {
      for await (const page of this.#client.list({ prefix: base + start })) {
        for (const object of page.objects) {
          // `XY/<hex>/data` with XY the digest's first two digits only: upload leftovers, `.tmp` files and a blob in
          // another's directory are not blobs (the registry would not find them there).
          const rest = object.key.slice(base.length);
          if (rest.length !== 72 || rest[2] !== '/' || !rest.endsWith('/data') || rest[3] !== rest[0] || rest[4] !== rest[1]) continue;
          const hex = rest.slice(3, 67);
          // A copy of its own: a slice would keep the whole listing page alive for the run.
          if (HEX.test(hex)) sizes.set(Buffer.from(hex, 'latin1').toString('latin1'), object.size);
        }
      }
    } catch (err) {
      if (!(err instanceof S3Error)) throw err;
      return undefined;
    }
    return sizes;
  }

  /** The "directories" in `_manifests/<below>`: none is an empty list, a listing that fails is a fault. */
  async #listNames(repository: string, below: string): Promise<NameListing> {
    const prefix = `${this.#v2}repositories/${repository}/_manifests/${below}`;
    const names: string[] = [];
    try {
      for await (const page of this.#client.list({ prefix, delimiter: '/' })) {
        for (const child of page.prefixes) names.push(child.slice(prefix.length, -1));
      }
    } catch (err) {
      if (!(err instanceof S3Error)) throw err;
      const rel = `${repository}/_manifests/${below.replace(/\/$/, '')}`;
      return { ok: false, fault: { path: rel, prefix: repository, repository: true, code: failureCode(err), location: this.#location(prefix), detail: failureText(err) } };
    }
    return { ok: true, names };
  }

  /** A link and its push time: the object's Last-Modified (the registry rewrites `current/link` on every push). */
  async #readLink(key: string): Promise<LinkRead> {
    const location = this.#location(key);
    let read: { bytes: Buffer; lastModified: string | undefined };
    try {
      read = await this.#client.readObject(key, MAX_LINK_BYTES);
    } catch (err) {
      if (!(err instanceof S3Error)) throw err;
      if (err.kind === 'absent') return { ok: false, reason: 'absent', location, detail: 'does not exist (NoSuchKey)' };
      if (err.kind === 'too-large') return { ok: false, reason: 'invalid', location, detail: `is ${err.size ?? `over ${MAX_LINK_BYTES}`} bytes, not a digest` };
      return { ok: false, reason: 'unreadable', location, detail: `cannot be read (${failureText(err)})` };
    }
    const pushedAt = read.lastModified ? new Date(read.lastModified) : undefined;
    const time = pushedAt && !Number.isNaN(pushedAt.getTime()) ? { pushedAt } : {};
    const link = parseLink(read.bytes);
    return link.ok ? { ok: true, digest: link.digest, ...time } : { ok: false, reason: 'invalid', location, detail: link.detail, ...time };
  }
}

/** A link object's listing entry: its ETag (unquoted, lower case) and LastModified. */
interface ListedObjectTimes {
  readonly etag: string;
  readonly lastModified: string;
}

interface ListedLinks {
  /** `current/link` objects by tag name. */
  readonly tags: Map<string, ListedObjectTimes>;
  /** Revision `link` objects by hex digest. */
  readonly revisions: Map<string, ListedObjectTimes>;
  /** MD5 of `sha256:<hex>` → hex, for every revision listed (kept while revision entries are taken out). */
  readonly digests: Map<string, string>;
}

/** The ETag of a link object holding `sha256:<hex>`: the MD5 of those 71 bytes. */
function linkETag(hex: string): string {
  return createHash('md5').update(`sha256:${hex}`).digest('hex');
}

/** The "directories" below `revisions/sha256/` as digests: the hex ones, sorted. */
function revisionNames(names: Iterable<string>): string[] {
  return [...names].filter((h) => HEX.test(h)).sort().map((h) => `sha256:${h}`);
}

/** Where the listings start: the selection's prefixes, none inside another (`a/` covers `a/b/`), or everything. */
function startPrefixes(prefixes: readonly string[] | undefined): string[] {
  if (!prefixes || prefixes.length === 0) return [''];
  const sorted = [...new Set(prefixes)].sort();
  return sorted.filter((p, i) => !sorted.slice(0, i).some((q) => p.startsWith(q)));
}

/** The store's word for a failure (`AccessDenied`, `SlowDown`), else the kind (`unavailable`): shown, never branched on. */
function failureCode(err: unknown): string {
  if (err instanceof S3Error) return err.s3Code ?? (err.status !== undefined ? String(err.status) : err.kind);
  return (err as { code?: string }).code ?? 'error';
}

/** What the store answered, in a few words (`403 AccessDenied`, `the store did not answer after 5 attempts (503 SlowDown)`). */
function failureText(err: unknown): string {
  if (err instanceof S3Error) {
    // The message starts with the place (`s3://bucket/key: `), said separately.
    const colon = err.message.indexOf(': ');
    return colon === -1 ? err.message : err.message.slice(colon + 2);
  }
  return (err as Error).message;
}

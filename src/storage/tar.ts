import { openSync } from 'node:fs';
import { splitDigest } from './digest.js';
import { fileRangeReader } from './file-range.js';
import { MAX_LINK_BYTES, parseLink } from './link.js';
import type { BlobStat, BytesRead, LinkRead, NameListing, ReadFault, RepositoryListing, RepositorySelection, SourceBlobReader, Storage } from './storage.js';
import { openTar, readTarEntry, type TarEntry, type TarIndex } from './tar-index.js';

/** One descriptor per archive for the whole run, however many times it is opened: entries are read by position. */
const tarFds = new Map<string, number>();

function tarFd(file: string): number {
  let fd = tarFds.get(file);
  if (fd === undefined) {
    fd = openSync(file, 'r');
    tarFds.set(file, fd);
  }
  return fd;
}

interface RepositoryEntries {
  readonly tags: string[];
  readonly revisions: string[];
}

const TAG_ENTRY = /^repositories\/(.+)\/_manifests\/tags\/([^/]+)\/current\/link$/;
const REVISION_ENTRY = /^repositories\/(.+)\/_manifests\/revisions\/sha256\/([a-f0-9]{64})\/link$/;

/**
 * An uncompressed tar of a registry storage, read in place through its index (src/storage/tar-index.ts): paths
 * under the storage's `docker/registry/v2` are entries of the archive, blobs are byte ranges of it. A tar that is not
 * whole is a read fault of the whole storage: whatever came after the cut is unknown, so nothing missing from it is
 * absent, and a tag missing from it is never gone (no deletion) and the run is never clean.
 */
export class TarStorage implements Storage {
  readonly root: string;
  readonly key: string;
  readonly readsInFlight = 1;
  readonly copyReason = 'the storage is a tar archive: its blobs are copied out of it, not hard-linked';
  readonly #index: TarIndex;
  #repositories: Map<string, RepositoryEntries> | undefined;

  constructor(index: TarIndex) {
    this.#index = index;
    this.root = `${index.file}#`;
    this.key = this.root;
  }

  describe(): string {
    return this.#index.file;
  }

  async listRepositories(selection?: RepositorySelection): Promise<RepositoryListing> {
    const repositories = [...this.#byRepository().keys()].filter((r) => selection?.wanted(r) ?? true);
    const cut = this.#index.truncatedAt;
    const faults: ReadFault[] = cut ? [{ path: '', prefix: '', repository: false, code: 'ETRUNCATED', location: this.#index.file, detail: `${this.#index.file} is not a whole tar: ${cut}; whatever came after that point is missing` }] : [];
    return { repositories, faults };
  }

  async listTags(repository: string): Promise<NameListing> {
    return { ok: true, names: [...(this.#byRepository().get(repository)?.tags ?? [])] };
  }

  async listRevisions(repository: string): Promise<NameListing> {
    return { ok: true, names: [...(this.#byRepository().get(repository)?.revisions ?? [])].sort() };
  }

  async readTagLink(repository: string, tag: string): Promise<LinkRead> {
    return this.#readLink(`repositories/${repository}/_manifests/tags/${tag}/current/link`);
  }

  async readRevisionLink(repository: string, digest: string): Promise<LinkRead> {
    return this.#readLink(`repositories/${repository}/_manifests/revisions/sha256/${splitDigest(digest)[1]}/link`);
  }

  async readManifest(digest: string, limit: number): Promise<BytesRead> {
    const entry = dataEntry(digest);
    const location = this.#location(entry);
    const found = this.#entry(entry);
    if (!found.ok) return { ok: false, reason: found.reason, location, detail: found.detail };
    if (found.entry.size > limit) return { ok: false, reason: 'too-big', location, detail: `is ${found.entry.size} bytes`, size: found.entry.size };
    const read = readTarEntry(this.#index, tarFd(this.#index.file), entry, limit);
    if (!read.ok) return { ok: false, reason: 'unreadable', location, detail: `cannot be read (${read.code})` };
    return { ok: true, bytes: read.bytes };
  }

  async statBlob(digest: string): Promise<BlobStat> {
    const entry = dataEntry(digest);
    const found = this.#entry(entry);
    return found.ok ? { ok: true, size: found.entry.size } : { ok: false, reason: found.reason, location: this.#location(entry), detail: found.detail };
  }

  blobReader(digest: string, size: number): SourceBlobReader {
    const entry = this.#index.entries.get(dataEntry(digest));
    if (!entry || entry.truncated) return unreadableReader(digest, size, `${this.#location(dataEntry(digest))} is not whole in the tar`);
    return fileRangeReader(this.#index.file, entry.offset, entry.size, digest);
  }

  #location(entry: string): string {
    return `${this.root}/${entry}`;
  }

  /** An entry, or why it cannot be read: in a tar cut short, a missing entry may have been in the part that is lost. */
  #entry(path: string): { ok: true; entry: TarEntry } | { ok: false; reason: 'absent' | 'unreadable'; detail: string } {
    const entry = this.#index.entries.get(path);
    if (!entry) return this.#index.truncatedAt ? { ok: false, reason: 'unreadable', detail: 'is not in the tar, which is cut short' } : { ok: false, reason: 'absent', detail: 'does not exist' };
    if (entry.truncated) return { ok: false, reason: 'unreadable', detail: 'is cut off: the tar ends inside it' };
    return { ok: true, entry };
  }

  /** A link entry; its time is the one in its header, which `tar -c` copies from the file. */
  #readLink(path: string): LinkRead {
    const location = this.#location(path);
    const found = this.#entry(path);
    const mtime = found.ok ? found.entry.mtime : undefined;
    const time = mtime !== undefined ? { pushedAt: new Date(mtime * 1000) } : {};
    if (!found.ok) return { ok: false, reason: found.reason, location, detail: found.detail };
    if (found.entry.size > MAX_LINK_BYTES) return { ok: false, reason: 'invalid', location, detail: `is ${found.entry.size} bytes, not a digest`, ...time };
    const read = readTarEntry(this.#index, tarFd(this.#index.file), path, MAX_LINK_BYTES);
    if (!read.ok) return { ok: false, reason: 'unreadable', location, detail: `cannot be read (${read.code})`, ...time };
    const link = parseLink(read.bytes);
    return link.ok ? { ok: true, digest: link.digest, ...time } : { ok: false, reason: 'invalid', location, detail: link.detail, ...time };
  }

  /** Repositories → their tags and revisions, from one pass over the index (names with a `_` component are not repositories). */
  #byRepository(): Map<string, RepositoryEntries> {
    if (this.#repositories) return this.#repositories;
    const byName = new Map<string, RepositoryEntries>();
    const of = (repository: string): RepositoryEntries => {
      let entries = byName.get(repository);
      if (!entries) byName.set(repository, (entries = { tags: [], revisions: [] }));
      return entries;
    };
    for (const name of this.#index.entries.keys()) {
      if (!name.startsWith('repositories/')) continue;
      const tag = TAG_ENTRY.exec(name);
      if (tag) {
        if (!hidden(tag[1]!)) of(tag[1]!).tags.push(tag[2]!);
        continue;
      }
      const revision = REVISION_ENTRY.exec(name);
      if (revision && !hidden(revision[1]!)) of(revision[1]!).revisions.push(`sha256:${revision[2]}`);
    }
    return (this.#repositories = byName);
  }
}

function hidden(repository: string): boolean {
  return repository.split('/').some((c) => c.startsWith('_'));
}

function dataEntry(digest: string): string {
  const [algorithm, hex] = splitDigest(digest);
  return `blobs/${algorithm}/${hex.slice(0, 2)}/${hex}/data`;
}

/** A blob the tar does not hold whole: every read fails, naming it. */
function unreadableReader(digest: string, size: number, message: string): SourceBlobReader {
  return {
    digest,
    size,
    // eslint-disable-next-line require-yield
    open: async function* () {
      throw new Error(message);
    },
  };
}

/** The tar storage of `file` (a regular file): its index, built or read back (src/storage/tar-index.ts). */
export function openTarStorage(file: string): TarStorage {
  return new TarStorage(openTar(file));
}

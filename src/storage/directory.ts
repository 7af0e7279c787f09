import fg from 'fast-glob';
import fs, { accessSync, constants as fsConstants, lstatSync, statSync } from 'node:fs';
import { access, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { splitDigest } from './digest.js';
import { fileRangeReader } from './file-range.js';
import { errnoCode, readSmallFileSync } from './files.js';
import { MAX_LINK_BYTES, parseLink } from './link.js';
import type { BlobStat, BytesRead, LinkRead, NameListing, ReadFault, RepositoryListing, RepositorySelection, SourceBlobReader, Storage } from './storage.js';
import { WALK_DIRECTORY_READS } from '../tuning.js';

/**
 * A registry's filesystem storage, read in place (docs/registry-behaviour.md, Storage layout). Small files (links,
 * manifests) are read synchronously inside the async methods: a scan of 50,000 tags is ~200,000 tiny reads of files
 * that are nearly always in the page cache, and a thread-pool round trip per read costs four times the read
 * (src/storage/files.ts). Symbolic links in the storage are never followed.
 */
export class DirectoryStorage implements Storage {
  readonly root: string;
  readonly key: string;
  readonly readsInFlight = 1;
  readonly copyReason = undefined;
  /** What the user gave, resolved. */
  readonly #given: string;
  readonly #repositories: string;
  readonly #blobs: string;

  constructor(given: string, v2: string) {
    this.#given = given;
    this.root = v2;
    // The lock key has always been the `docker/registry/v2` path: a new version keeps the lock of an old one.
    this.key = v2;
    this.#repositories = path.join(v2, 'repositories');
    this.#blobs = path.join(v2, 'blobs');
  }

  describe(): string {
    return this.root;
  }

  /**
   * fast-glob finds the repositories (every directory holding `_manifests`; names nest, so `a/b` and `a/b/c` can both
   * be repositories) without entering `_layers`, `_uploads` or `_manifests`. A directory it cannot read is a fault,
   * never an empty list. The whole tree is walked whatever the selection: the directories are few next to the
   * tags, and a fault above a wanted repository must not go unseen.
   */
  async listRepositories(selection?: RepositorySelection): Promise<RepositoryListing> {
    const faults: ReadFault[] = [];
    const manifestDirs = await fg('**/_manifests', {
      cwd: this.#repositories,
      fs: this.#watchedFs(faults),
      ignore: PRUNED,
      onlyDirectories: true,
      followSymbolicLinks: false,
      suppressErrors: true,
      dot: false,
      // Directory reads in flight at once: many, so a cold cache on a real disk or NFS is read in parallel.
      concurrency: WALK_DIRECTORY_READS,
    });
    const repositories: string[] = [];
    for (const dir of manifestDirs) {
      const repository = dir.slice(0, -'/_manifests'.length);
      if (repository && (selection?.wanted(repository) ?? true)) repositories.push(repository);
    }
    return { repositories, faults };
  }

  /** Tag directories: a file or a symbolic link among them is not a tag (and is never followed). */
  listTags(repository: string): Promise<NameListing> {
    return this.#listDirectories(repository, 'tags');
  }

  async listRevisions(repository: string): Promise<NameListing> {
    const listed = await this.#listDirectories(repository, 'revisions/sha256');
    if (!listed.ok) return listed;
    return { ok: true, names: listed.names.filter((h) => HEX.test(h)).sort().map((h) => `sha256:${h}`) };
  }

  async readTagLink(repository: string, tag: string): Promise<LinkRead> {
    return readLinkFile(path.join(this.#repositories, repository, '_manifests', 'tags', tag, 'current', 'link'));
  }

  async readRevisionLink(repository: string, digest: string): Promise<LinkRead> {
    return readLinkFile(path.join(this.#repositories, repository, '_manifests', 'revisions', 'sha256', splitDigest(digest)[1], 'link'));
  }

  async readManifest(digest: string, limit: number): Promise<BytesRead> {
    const file = this.#dataPath(digest);
    const read = readSmallFileSync(file, limit);
    if (read.ok) return read;
    switch (read.code) {
      case 'ENOENT':
      case 'ENOTDIR':
        return { ok: false, reason: 'absent', location: file, detail: 'does not exist' };
      case 'ETOOBIG':
        return { ok: false, reason: 'too-big', location: file, detail: `is ${read.size} bytes`, ...(read.size !== undefined ? { size: read.size } : {}) };
      case 'ENOTFILE':
        return { ok: false, reason: 'unreadable', location: file, detail: 'is not a regular file' };
      case 'ELOOP':
        return { ok: false, reason: 'unreadable', location: file, detail: 'is a symbolic link (not followed)' };
      default:
        return { ok: false, reason: 'unreadable', location: file, detail: `cannot be read (${read.code})` };
    }
  }

  async statBlob(digest: string): Promise<BlobStat> {
    const file = this.#dataPath(digest);
    try {
      // lstat: a `data` that is a symbolic link is never followed (it could point anywhere on the host).
      const st = lstatSync(file, { throwIfNoEntry: false });
      if (!st) return { ok: false, reason: 'absent', location: file, detail: 'does not exist' };
      if (st.isSymbolicLink()) return { ok: false, reason: 'unreadable', location: file, detail: 'is a symbolic link (symbolic links in the storage are never followed)' };
      if (!st.isFile()) return { ok: false, reason: 'unreadable', location: file, detail: 'is not a regular file' };
      // stat succeeds on a file we may not read (mode 000, another owner): find out now, not halfway through a push.
      accessSync(file, fsConstants.R_OK);
      return { ok: true, size: st.size };
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return { ok: false, reason: 'absent', location: file, detail: 'does not exist' };
      return { ok: false, reason: 'unreadable', location: file, detail: `cannot be read (${code})` };
    }
  }

  blobReader(digest: string, size: number): SourceBlobReader {
    return fileRangeReader(this.#dataPath(digest), 0, size, digest);
  }

  localPath(digest: string): string {
    return this.#dataPath(digest);
  }

  enclosing(dir: string): string | undefined {
    const resolved = path.resolve(dir);
    for (const root of [this.#registryRoot(), this.#given, this.root]) {
      const rel = path.relative(root, resolved);
      if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) return root;
    }
    return undefined;
  }

  /** Beside the registry root (not beside `…/docker/registry/v2` when that was given: that is inside it). */
  linkableDirectory(): string | undefined {
    const beside = path.dirname(this.#registryRoot());
    try {
      return statSync(beside).dev === statSync(this.#blobs).dev ? beside : undefined;
    } catch {
      return undefined;
    }
  }

  /** `blobs/<alg>/<2 hex>/<hex>/data`: the only place with the two-character fan-out. */
  #dataPath(digest: string): string {
    const [algorithm, hex] = splitDigest(digest);
    return path.join(this.#blobs, algorithm, hex.slice(0, 2), hex, 'data');
  }

  /** The registry's root directory (`rootdirectory`): `v2` less its `docker/registry/v2`, whatever level was given. */
  #registryRoot(): string {
    const suffix = `${path.sep}docker${path.sep}registry${path.sep}v2`;
    return this.root.endsWith(suffix) ? this.root.slice(0, -suffix.length) || path.sep : this.#given;
  }

  /** The directories in `_manifests/<below>`; absent is empty (a repository without tags), any other error a fault. */
  async #listDirectories(repository: string, below: string): Promise<NameListing> {
    const rel = `${repository}/_manifests/${below}`;
    const dir = path.join(this.#repositories, rel);
    try {
      return { ok: true, names: (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name) };
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT') return { ok: true, names: [] };
      return { ok: false, fault: { path: rel, prefix: repository, repository: true, code, location: dir } };
    }
  }

  /**
   * fast-glob's directory reads, watched: it is told to go on past errors (one unreadable namespace must not hide
   * the rest), and every error but "gone" is recorded, so an unreadable directory is a fault, never an empty list.
   */
  #watchedFs(faults: ReadFault[]): Partial<typeof fs> {
    const repositories = this.#repositories;
    const record = (dir: string, err: NodeJS.ErrnoException | null): void => {
      if (!err || err.code === 'ENOENT') return;
      const rel = path.relative(repositories, dir).split(path.sep).join('/');
      const prefix = rel.split('/').filter((c) => !c.startsWith('_')).join('/');
      faults.push({ path: rel, prefix, repository: false, code: err.code ?? 'EIO', location: dir });
    };
    const readdirWatched = ((dir: string, options: unknown, callback: (err: NodeJS.ErrnoException | null, entries: unknown) => void) => {
      fs.readdir(dir, options as { withFileTypes: true }, (err, entries) => {
        record(dir, err);
        callback(err, entries);
      });
    }) as unknown as typeof fs.readdir;
    return { readdir: readdirWatched };
  }
}

const HEX = /^[a-f0-9]{64}$/;

/** Directories the walk never enters: most entries of a real registry live there, and never a repository. */
const PRUNED = ['**/_layers', '**/_uploads', '**/_manifests/tags', '**/_manifests/revisions', '**/_manifests/layers'];

/**
 * A link file and its modification time (the push time: distribution rewrites `current/link` on every push, and no
 * registry API says it), from the one open of the file. Only ENOENT is absent: a file where a directory should be
 * (ENOTDIR) is not proof that the link is gone.
 */
function readLinkFile(file: string): LinkRead {
  const read = readSmallFileSync(file, MAX_LINK_BYTES, true);
  const pushedAt = read.mtime;
  if (read.ok) {
    const link = parseLink(read.bytes);
    return link.ok ? { ok: true, digest: link.digest, pushedAt } : { ok: false, reason: 'invalid', location: file, detail: link.detail, pushedAt };
  }
  switch (read.code) {
    case 'ENOENT':
      return { ok: false, reason: 'absent', location: file, detail: 'does not exist' };
    case 'ENOTDIR':
      return { ok: false, reason: 'invalid', location: file, detail: 'is not there: a directory above it is a file' };
    case 'ELOOP':
      return { ok: false, reason: 'invalid', location: file, detail: 'is a symbolic link (not followed)' };
    case 'ENOTFILE':
    case 'EISDIR':
      return { ok: false, reason: 'invalid', location: file, detail: 'is not a regular file' };
    case 'ETOOBIG':
      return { ok: false, reason: 'invalid', location: file, detail: `is ${read.size} bytes, not a digest`, pushedAt };
    default:
      return { ok: false, reason: 'unreadable', location: file, detail: `cannot be read (${read.code})` };
  }
}

const SUFFIXES = ['docker/registry/v2', 'registry/v2', 'v2', ''];

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Accepts `/var/lib/registry`, `…/docker`, `…/docker/registry` or `…/docker/registry/v2` (`resolved`: a directory). */
export async function openDirectoryStorage(given: string, resolved: string): Promise<DirectoryStorage> {
  for (const suffix of SUFFIXES) {
    const v2 = suffix ? path.join(resolved, suffix) : resolved;
    if (suffix && !(await isDirectory(v2))) continue;
    if ((await isDirectory(path.join(v2, 'repositories'))) || (await isDirectory(path.join(v2, 'blobs')))) {
      if (!suffix && path.basename(v2) !== 'v2') continue;
      try {
        await access(v2, fsConstants.R_OK | fsConstants.X_OK);
      } catch {
        throw new UsageError(`${given}: storage is not readable by this user`, 'run as a user that can read the registry storage', 'NOT_A_STORAGE');
      }
      return new DirectoryStorage(resolved, v2);
    }
  }
  const enclosing = await enclosingStorage(resolved);
  throw new UsageError(
    `${given}: not a registry storage (no docker/registry/v2/repositories or blobs below it)`,
    enclosing
      ? `it is inside one: give its root, ${enclosing}`
      : 'give the registry root (rootdirectory in the registry config, e.g. /var/lib/registry)',
    'NOT_A_STORAGE',
  );
}

/**
 * A path inside a storage (`…/v2/repositories`, `…/v2/repositories/library`): the registry root above it, for the
 * hint. A `v2` directory holding `repositories` or `blobs` marks the storage; its root is above `docker/registry`.
 */
async function enclosingStorage(resolved: string): Promise<string | undefined> {
  for (let dir = path.dirname(resolved); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (path.basename(dir) !== 'v2') continue;
    if (!(await isDirectory(path.join(dir, 'repositories'))) && !(await isDirectory(path.join(dir, 'blobs')))) continue;
    const suffix = `${path.sep}docker${path.sep}registry${path.sep}v2`;
    return dir.endsWith(suffix) ? dir.slice(0, -suffix.length) || path.sep : dir;
  }
  return undefined;
}

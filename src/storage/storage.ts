/**
 * The one interface over a registry's storage (docs/architecture.md, Storage). Everything above `storage/` reads the
 * source through it and never asks which backend it has: a directory, a tar of one, or an object store. Each
 * backend maps its own errors (errno codes, a cut tar, an HTTP status) to the few reasons below, so a fault has the
 * same name whatever the storage. A read problem is an answer (`ok: false`, naming the place), never a thrown error;
 * the source is only ever read.
 */
export interface Storage {
  /**
   * Where the storage is, as outputs name it (scan JSON `root`, reports): a directory's `docker/registry/v2`, a tar
   * as `<file>#`. Never a path to open.
   */
  readonly root: string;
  /** The storage in a sentence ("… in <where>"): a directory, the tar file, the bucket and root. */
  describe(): string;
  /** The same storage gives the same key however it was named: what the sync lock (and anything keyed by source) uses. */
  readonly key: string;
  /**
   * How many reads are worth having in flight while resolving tags: 1 where a read is a synchronous local read (a
   * thread-pool round trip costs more than the read, src/storage/files.ts), many for an object store.
   */
  readonly readsInFlight: number;
  /** Why blob files cannot be hard-linked from this storage (they are copied instead); undefined when they can (`localPath`). */
  readonly copyReason: string | undefined;

  /**
   * Repositories (names as stored, not yet validated) that `selection` may want, in no particular order, and the
   * places that could not be listed. A backend lists only below the selection's prefixes where it can. A backend
   * whose listing takes many round trips tells `found` of each wanted repository as soon as it is found, so its
   * tags can be listed while the walk goes on (each at most once; every one is in the result all the same).
   */
  listRepositories(selection?: RepositorySelection, found?: (repository: string) => void): Promise<RepositoryListing>;
  /** A repository's tag names: absent is empty, anything unreadable is a fault (never an empty list in disguise). */
  listTags(repository: string): Promise<NameListing>;
  /** A repository's manifest revisions (`sha256:<hex>`, sorted), tagged or not. */
  listRevisions(repository: string): Promise<NameListing>;
  /**
   * listTags and listRevisions at once, where the backend can tell both for the price of one (an object store: one
   * listing of `_manifests/` for a repository whose keys fit in a page). Optional; the same answers, faults included.
   */
  listManifestNames?(repository: string): Promise<{ tags: NameListing; revisions: NameListing }>;
  /**
   * A tag's `current/link`: the digest and the push time (the link is rewritten on every push), or why not. A
   * backend may answer from what its last listing of the repository told (an object store's ETags), once; `fresh`
   * asks the storage itself, as the last check before a deletion must.
   */
  readTagLink(repository: string, tag: string, options?: LinkReadOptions): Promise<LinkRead>;
  /** A revision's link (`_manifests/revisions/sha256/<hex>/link`), for an untagged manifest. */
  readRevisionLink(repository: string, digest: string, options?: LinkReadOptions): Promise<LinkRead>;
  /** A manifest's stored bytes, refused unread when larger than `limit`. */
  readManifest(digest: string, limit: number): Promise<BytesRead>;
  /** A blob's size, having checked it can be read. */
  statBlob(digest: string): Promise<BlobStat>;
  /**
   * A hint that nearly every blob of the storage is about to be asked for (a scan of all of it): a backend that
   * learns blob sizes from listings may list them all now, in fewer and larger listings. Optional: nothing else
   * depends on it.
   */
  expectEveryBlob?(): void;
  /** A blob's bytes, read afresh from the storage at each `open` (each attempt, each chunk). */
  blobReader(digest: string, size: number): SourceBlobReader;
  // The three below only a backend of local files has (a directory); a tar or a bucket leaves them out.
  /** The blob's own local file: what may be hard-linked. */
  localPath?(digest: string): string | undefined;
  /** The part of the storage `dir` lies in (the storage is never written), or undefined when it lies outside. */
  enclosing?(dir: string): string | undefined;
  /**
   * A directory beside the storage, on the filesystem of its blob files, where a work directory of hard links may be
   * made; undefined when there is none (no local files, or another filesystem).
   */
  linkableDirectory?(): string | undefined;
}

export interface LinkReadOptions {
  /** Ask the storage now, not what a listing told. */
  readonly fresh?: boolean;
}

/** Which repositories a command wants (`--include`/`--exclude`, `--shard`). */
export interface RepositorySelection {
  readonly wanted: (repository: string) => boolean;
  /**
   * Every wanted repository's name starts with one of these (`team/` for `--include 'team/**'`): where a listing may
   * start. Undefined: anywhere.
   */
  readonly prefixes?: readonly string[] | undefined;
}

/** A place the walk could not list (EACCES, EIO, ESTALE on NFS, a tar cut short …): what lies below it is unknown. */
export interface ReadFault {
  /** Path below `repositories/` (`team/api/_manifests/tags`); '' for `repositories/` itself. */
  readonly path: string;
  /** The repository name, or name prefix, whose tags may be missing from the walk. */
  readonly prefix: string;
  /** `prefix` is exactly one repository (its tags or revisions could not be listed), not a namespace. */
  readonly repository: boolean;
  /** The backend's own word for the error (`EACCES`, `ETRUNCATED`, `AccessDenied`): shown, never branched on. */
  readonly code: string;
  /** The place, as the storage names it (`/var/lib/registry/docker/registry/v2/repositories/team`). */
  readonly location: string;
  /** What went wrong, when a place and a code do not say it (a tar that is not whole). */
  readonly detail?: string;
}

export interface RepositoryListing {
  readonly repositories: string[];
  readonly faults: ReadFault[];
}

export type NameListing = { readonly ok: true; readonly names: string[] } | { readonly ok: false; readonly fault: ReadFault };

/**
 * Why a read found nothing usable, in words every backend shares:
 * - `absent`: the storage answered that it does not exist (ENOENT, not in a whole tar, NoSuchKey). Nothing else is
 *   absent: a deletion relies on it (src/sync/delete-extra.ts).
 * - `invalid`: it is there but is not what the layout puts there (a symbolic link, a directory, garbage in a link).
 * - `too-big`: larger than the caller's limit (read no further).
 * - `unreadable`: it could not be read (EACCES, EIO, a tar cut inside it or before it, a 403 or 5xx).
 */
export type ReadProblem = 'absent' | 'invalid' | 'too-big' | 'unreadable';

export type LinkRead =
  | { readonly ok: true; readonly digest: string; readonly pushedAt?: Date | undefined }
  | {
      readonly ok: false;
      readonly reason: Exclude<ReadProblem, 'too-big'>;
      /** The link, as the storage names it. */
      readonly location: string;
      /** What is wrong with it: `does not exist`, `is a symbolic link (not followed)`, `holds "x", not sha256:<64 hex>`. */
      readonly detail: string;
      readonly pushedAt?: Date | undefined;
    };

export type BytesRead =
  | { readonly ok: true; readonly bytes: Buffer }
  | { readonly ok: false; readonly reason: Exclude<ReadProblem, 'invalid'>; readonly location: string; readonly detail: string; readonly size?: number };

export type BlobStat =
  | { readonly ok: true; readonly size: number }
  | { readonly ok: false; readonly reason: 'absent' | 'unreadable'; readonly location: string; readonly detail: string };

/** Bytes `start..end` of a blob, both inclusive (as in a chunk's Content-Range). */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/**
 * A blob's bytes in the shape of the registry client's BlobReader (src/registry/blobs.ts), as every backend gives
 * it: `open` reads afresh from the storage each time (a retry starts again), with an optional block size for reads
 * that hash rather than send. Backends with local bytes add `stream` and `bytes`, the fast paths of an upload.
 */
export interface SourceBlobReader {
  readonly digest: string;
  readonly size: number;
  /** The whole blob, or one range of it; exactly those bytes, or an error. */
  open(range?: ByteRange, blockBytes?: number): AsyncIterable<Buffer>;
  /**
   * The same bytes as the blocks of a request body, `onBytes` told of each block as it is read. A block may be read
   * into again once the block after it has been asked for (src/storage/file-range.ts): a consumer that keeps blocks
   * copies them.
   */
  stream?(range: ByteRange, onBytes?: (n: number) => void, blockBytes?: number): AsyncIterable<Buffer>;
  /** The same bytes at once, for a small blob. */
  bytes?(range: ByteRange): Buffer;
}

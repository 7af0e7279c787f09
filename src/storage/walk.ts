import fg from 'fast-glob';
import fs from 'node:fs';
import { readdir } from 'node:fs/promises';
import pLimit from 'p-limit';
import path from 'node:path';
import type { StorageLayout } from './layout.js';
import { WALK_DIRECTORY_READS } from '../tuning.js';

export interface TagLocation {
  /** Repository name as written in the path (`a/b/c`), not yet validated. */
  readonly repository: string;
  readonly tag: string;
  /**
   * Absolute path of a revision link, for an untagged manifest; a tag's `…/_manifests/tags/<tag>/current/link` is
   * derived when read (tagLinkPath), not kept: a path per tag is most of what a 200,000-tag walk would hold.
   */
  readonly linkPath?: string;
  /** A manifest no tag points at, addressed by its digest (`tag` holds the digest). */
  readonly untagged?: boolean;
}

/** A directory the walk could not read (EACCES, EIO, ESTALE on NFS …): what lies below it is unknown. */
export interface ReadFault {
  /** Path below `repositories/` (`team/api/_manifests/tags`); '' for `repositories/` itself. */
  readonly path: string;
  /** The repository name, or name prefix, whose tags may be missing from the walk. */
  readonly prefix: string;
  /** `prefix` is exactly one repository (its tags or revisions could not be listed), not a namespace. */
  readonly repository: boolean;
  readonly code: string;
  /** What went wrong, when a path and an errno code do not say it (a tar that is not whole). */
  readonly detail?: string;
}

export interface StorageEntries {
  /** Every tag, in a stable order (repository, then tag). */
  readonly tags: TagLocation[];
  /** Directories that could not be read: never an empty list in disguise. */
  readonly unreadable: ReadFault[];
  /** Every manifest revision of every repository: `repository` → digests (tagged or not), sorted. */
  readonly revisions: Map<string, string[]>;
}

/** Directories the walk never enters: most entries of a real registry live there, and never a repository. */
const PRUNED = ['**/_layers', '**/_uploads', '**/_manifests/tags', '**/_manifests/revisions', '**/_manifests/layers'];

/** The names in a directory; absent is empty (a repository without tags), any other error is recorded. */
async function listNames(dir: string, rel: string, prefix: string, unreadable: ReadFault[]): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    if (code !== 'ENOENT') unreadable.push({ path: rel, prefix, repository: true, code });
    return [];
  }
}

/**
 * fast-glob's directory reads, watched: it is told to go on past errors (one unreadable namespace must not hide
 * the rest), and every error but "gone" is recorded, so an unreadable directory is a fault, never an empty list.
 */
function watchedFs(repositories: string, unreadable: ReadFault[]): Partial<typeof fs> {
  const record = (dir: string, err: NodeJS.ErrnoException | null): void => {
    if (!err || err.code === 'ENOENT') return;
    const rel = path.relative(repositories, dir).split(path.sep).join('/');
    unreadable.push({ path: rel, prefix: rel.split('/').filter((c) => !c.startsWith('_')).join('/'), repository: false, code: err.code ?? 'EIO' });
  };
  const readdirWatched = ((dir: string, options: unknown, callback: (err: NodeJS.ErrnoException | null, entries: unknown) => void) => {
    fs.readdir(dir, options as { withFileTypes: true }, (err, entries) => {
      record(dir, err);
      callback(err, entries);
    });
  }) as unknown as typeof fs.readdir;
  return { readdir: readdirWatched };
}

/**
 * One walk for the tags and, when asked, the manifest revisions. fast-glob finds the repositories (every
 * directory holding `_manifests`; names nest, so `a/b` and `a/b/c` can both be repositories) without entering
 * `_layers`, `_uploads` or `_manifests`; inside `_manifests` the layout is fixed, so one `readdir` of `tags/`
 * (and of `revisions/sha256/`) per repository lists the rest. Whether a tag's `current/link` exists is left to
 * the resolver: a tag directory without it is not a tag.
 */
export async function findEntries(layout: StorageLayout, options: { revisions: boolean }): Promise<StorageEntries> {
  if (layout.tar) return tarEntries(layout, options);
  const unreadable: ReadFault[] = [];
  const manifestDirs = await fg('**/_manifests', {
    cwd: layout.repositories,
    fs: watchedFs(layout.repositories, unreadable),
    ignore: PRUNED,
    onlyDirectories: true,
    followSymbolicLinks: false,
    suppressErrors: true,
    dot: false,
    // Directory reads in flight at once: many, so a cold cache on a real disk or NFS is read in parallel.
    concurrency: WALK_DIRECTORY_READS,
  });
  const limit = pLimit(WALK_DIRECTORY_READS);
  const tags: TagLocation[] = [];
  const revisions = new Map<string, string[]>();
  await Promise.all(
    manifestDirs.map((dir) =>
      limit(async () => {
        const repository = dir.slice(0, -'/_manifests'.length);
        if (!repository) return;
        const base = path.join(layout.repositories, dir);
        for (const tag of await listNames(path.join(base, 'tags'), `${dir}/tags`, repository, unreadable)) {
          tags.push({ repository, tag });
        }
        if (!options.revisions) return;
        const hexes = (await listNames(path.join(base, 'revisions', 'sha256'), `${dir}/revisions/sha256`, repository, unreadable)).filter((h) => /^[a-f0-9]{64}$/.test(h)).sort();
        if (hexes.length > 0) revisions.set(repository, hexes.map((h) => `sha256:${h}`));
      }),
    ),
  );
  tags.sort(compareTagLocations);
  unreadable.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { tags, revisions, unreadable };
}

const TAG_ENTRY = /^repositories\/(.+)\/_manifests\/tags\/([^/]+)\/current\/link$/;
const REVISION_ENTRY = /^repositories\/(.+)\/_manifests\/revisions\/sha256\/([a-f0-9]{64})\/link$/;

/** The same, from a tar's index: its paths are the storage's. */
function tarEntries(layout: StorageLayout, options: { revisions: boolean }): StorageEntries {
  const tags: TagLocation[] = [];
  const revisions = new Map<string, string[]>();
  for (const entry of layout.tar!.entries.keys()) {
    if (!entry.startsWith('repositories/')) continue;
    const tag = TAG_ENTRY.exec(entry);
    if (tag) {
      if (!tag[1]!.split('/').some((c) => c.startsWith('_'))) tags.push({ repository: tag[1]!, tag: tag[2]! });
      continue;
    }
    if (!options.revisions) continue;
    const revision = REVISION_ENTRY.exec(entry);
    if (!revision || revision[1]!.split('/').some((c) => c.startsWith('_'))) continue;
    let list = revisions.get(revision[1]!);
    if (!list) revisions.set(revision[1]!, (list = []));
    list.push(`sha256:${revision[2]}`);
  }
  tags.sort(compareTagLocations);
  for (const list of revisions.values()) list.sort();
  // A tar that is not whole is a read fault of the whole storage: what came after the cut is unknown, so a tag
  // missing from it is never gone (no deletion) and the run is never clean.
  const cut = layout.tar!.truncatedAt;
  const unreadable: ReadFault[] = cut ? [{ path: '', prefix: '', repository: false, code: 'ETRUNCATED', detail: `${layout.tar!.file} is not a whole tar: ${cut}; whatever came after that point is missing` }] : [];
  return { tags, revisions, unreadable };
}

/** Every tag in the storage, in a stable order (repository, then tag). */
export async function findTags(layout: StorageLayout): Promise<TagLocation[]> {
  return (await findEntries(layout, { revisions: false })).tags;
}

function compareTagLocations(a: TagLocation, b: TagLocation): number {
  if (a.repository !== b.repository) return a.repository < b.repository ? -1 : 1;
  if (a.tag !== b.tag) return a.tag < b.tag ? -1 : 1;
  return 0;
}

/** Where a tag location's link is: its own (a revision link), or the tag's `current/link`. */
export function tagLinkPath(layout: StorageLayout, location: TagLocation): string {
  return location.linkPath ?? path.join(layout.repositories, location.repository, '_manifests', 'tags', location.tag, 'current', 'link');
}

export function revisionLinkPath(layout: StorageLayout, repository: string, digest: string): string {
  return path.join(layout.repositories, repository, '_manifests', 'revisions', 'sha256', digest.slice('sha256:'.length), 'link');
}

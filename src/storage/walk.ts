import fg from 'fast-glob';
import path from 'node:path';
import type { StorageLayout } from './layout.js';

export interface TagLocation {
  /** Repository name as written in the path (`a/b/c`), not yet validated. */
  readonly repository: string;
  readonly tag: string;
  /** Absolute path of `…/_manifests/tags/<tag>/current/link` (or of a revision link, for an untagged manifest). */
  readonly linkPath: string;
  /** A manifest no tag points at, addressed by its digest (`tag` holds the digest). */
  readonly untagged?: boolean;
}

/**
 * The metadata directories that hold most of the entries of a real registry and never a tag: pruned so the walk
 * costs about what `find -name current` does. Ignore patterns in fast-glob stop it descending into a directory.
 */
const PRUNED = ['**/_layers', '**/_uploads', '**/_manifests/revisions', '**/_manifests/tags/*/index'];

/**
 * Every tag in the storage, in a stable order (repository, then tag). A repository is a directory holding
 * `_manifests`; names nest, so the repository is everything before `/_manifests/`.
 */
export async function findTags(layout: StorageLayout): Promise<TagLocation[]> {
  const entries = await fg('**/_manifests/tags/*/current/link', {
    cwd: layout.repositories,
    ignore: PRUNED,
    // Not onlyFiles: a `link` that is a symlink (or anything else) must still be seen, and reported as invalid.
    onlyFiles: false,
    followSymbolicLinks: false,
    suppressErrors: true,
    dot: false,
    unique: false,
    // Directory reads in flight at once: many, so a cold cache on a real disk or NFS is read in parallel.
    concurrency: 64,
  });
  const tags: TagLocation[] = [];
  for (const entry of entries) {
    const at = entry.lastIndexOf('/_manifests/tags/');
    if (at <= 0) continue;
    const repository = entry.slice(0, at);
    // `<tag>/current/link`
    const tag = entry.slice(at + '/_manifests/tags/'.length, entry.length - '/current/link'.length);
    tags.push({ repository, tag, linkPath: path.join(layout.repositories, entry) });
  }
  tags.sort(compareTagLocations);
  return tags;
}

function compareTagLocations(a: TagLocation, b: TagLocation): number {
  if (a.repository !== b.repository) return a.repository < b.repository ? -1 : 1;
  if (a.tag !== b.tag) return a.tag < b.tag ? -1 : 1;
  return 0;
}

/** Every manifest revision of every repository: `repository` → digests (the manifests it holds, tagged or not). */
export async function findRevisions(layout: StorageLayout): Promise<Map<string, string[]>> {
  const entries = await fg('**/_manifests/revisions/sha256/*/link', {
    cwd: layout.repositories,
    ignore: ['**/_layers', '**/_uploads', '**/_manifests/tags'],
    onlyFiles: true,
    followSymbolicLinks: false,
    suppressErrors: true,
    concurrency: 64,
  });
  const revisions = new Map<string, string[]>();
  for (const entry of entries) {
    const at = entry.lastIndexOf('/_manifests/revisions/sha256/');
    if (at <= 0) continue;
    const repository = entry.slice(0, at);
    const hex = entry.slice(at + '/_manifests/revisions/sha256/'.length, entry.length - '/link'.length);
    if (!/^[a-f0-9]{64}$/.test(hex)) continue;
    let list = revisions.get(repository);
    if (!list) revisions.set(repository, (list = []));
    list.push(`sha256:${hex}`);
  }
  for (const list of revisions.values()) list.sort();
  return revisions;
}

export function revisionLinkPath(layout: StorageLayout, repository: string, digest: string): string {
  return path.join(layout.repositories, repository, '_manifests', 'revisions', 'sha256', digest.slice('sha256:'.length), 'link');
}

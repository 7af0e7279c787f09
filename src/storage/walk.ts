import pLimit from 'p-limit';
import type { ReadFault, RepositorySelection, Storage } from './storage.js';
import { WALK_DIRECTORY_READS } from '../tuning.js';

export interface TagLocation {
  /** Repository name as stored (`a/b/c`), not yet validated. */
  readonly repository: string;
  readonly tag: string;
  /** A manifest no tag points at, addressed by its digest (`tag` holds the digest; its link is the revision's). */
  readonly untagged?: boolean;
}

export interface StorageEntries {
  /** Every tag of the selected repositories, in a stable order (repository, then tag). */
  readonly tags: TagLocation[];
  /** Places that could not be listed: never an empty list in disguise. */
  readonly unreadable: ReadFault[];
  /** Every manifest revision of the selected repositories: `repository` → digests (tagged or not), sorted. */
  readonly revisions: Map<string, string[]>;
}

/**
 * One walk for the tags and, when asked, the manifest revisions, through the storage interface: the repositories
 * the selection may want, then each one's tags (and revisions), many listings in flight. Names only: whether a tag
 * has a link is left to the resolver.
 */
export async function findEntries(storage: Storage, options: { revisions: boolean; selection?: RepositorySelection }): Promise<StorageEntries> {
  const unreadable: ReadFault[] = [];
  const tags: TagLocation[] = [];
  const revisions = new Map<string, string[]>();
  const limit = pLimit(WALK_DIRECTORY_READS);
  const wanted = options.selection?.wanted;
  const started = new Set<string>();
  const listings: Array<Promise<void>> = [];
  // A repository's tags and revisions are listed as soon as it is found, both at once: on an object store each
  // listing is a round trip, and the walk of the namespaces takes several.
  const start = (repository: string): void => {
    if (started.has(repository) || !(wanted?.(repository) ?? true)) return;
    started.add(repository);
    listings.push(
      (async () => {
        // Both at once wherever the backend offers it, revisions wanted or not: an object store's one listing also
        // tells each link's ETag, which spares a GET per tag (src/storage/s3/storage.ts, #listedLink).
        const both = storage.listManifestNames ? await limit(() => storage.listManifestNames!(repository)) : undefined;
        const [listed, digests] = both
          ? [both.tags, both.revisions]
          : await Promise.all([limit(() => storage.listTags(repository)), options.revisions ? limit(() => storage.listRevisions(repository)) : undefined]);
        if (!listed.ok) unreadable.push(listed.fault);
        else for (const tag of listed.names) tags.push({ repository, tag });
        if (!digests || !options.revisions) return;
        if (!digests.ok) unreadable.push(digests.fault);
        else if (digests.names.length > 0) revisions.set(repository, digests.names);
      })(),
    );
  };
  const listing = await storage.listRepositories(options.selection, start);
  unreadable.push(...listing.faults);
  listing.repositories.forEach(start);
  await Promise.all(listings);
  tags.sort(compareTagLocations);
  unreadable.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { tags, revisions, unreadable };
}

function compareTagLocations(a: TagLocation, b: TagLocation): number {
  if (a.repository !== b.repository) return a.repository < b.repository ? -1 : 1;
  if (a.tag !== b.tag) return a.tag < b.tag ? -1 : 1;
  return 0;
}

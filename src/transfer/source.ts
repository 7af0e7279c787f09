import type { SourceInventory } from '../inventory/types.js';
import { tagRef } from '../inventory/types.js';
import type { TagSelection } from '../inventory/select.js';
import { repositoryBatches, resolveRepositories, scanStorage, walkSource, type ScanOptions, type SourceWalk } from '../inventory/scan.js';
import { BlobStore } from '../image/reader.js';
import { cachedMapper, type MapRule, type NameMapping } from '../plan/map-names.js';
import { selectCandidates, type Candidates, type ShardedHome } from '../plan/plan.js';
import { shardSelector, type Shard } from '../plan/shard.js';
import { openStorage, type StorageOptions } from '../storage/open.js';
import type { Storage } from '../storage/storage.js';
import type { Destination } from '../destination/destination.js';

/**
 * The source side of every command that talks to a destination (push, sync, diff): which repositories and tags,
 * under which destination names, read from the storage and mapped. One job: storage → candidates.
 */
export interface SourceSelection {
  readonly root: string;
  /** How to reach a storage that is not local (a bucket's endpoint, region, certificates). */
  readonly storageOptions?: StorageOptions;
  readonly include: readonly string[];
  readonly exclude: readonly string[];
  readonly maps: readonly MapRule[];
  readonly defaultProject: string;
  /** Also migrate manifests that no tag points at, by digest. */
  readonly includeUntagged?: boolean;
  /** Only this shard's repositories (by destination name). */
  readonly shard?: Shard;
  /** Which tags of those repositories (patterns, semver, push time, latest N). */
  readonly tags?: TagSelection;
}

export function nameMapping(selection: SourceSelection, destination: Destination): NameMapping {
  return { rules: selection.maps, defaultProject: selection.defaultProject, harbor: destination.harbor !== undefined };
}

/** `repo:tag` → the digest the destination is known to hold (a view of the sync journal). */
export type TrustedDigests = Pick<ReadonlyMap<string, string>, 'get'>;

/** Scan and map: the source side of every command that talks to a destination, whole. */
export async function readSource(
  selection: SourceSelection,
  mapping: NameMapping,
  concurrency: number,
  trusted?: TrustedDigests,
  signal?: AbortSignal,
): Promise<{ storage: Storage; inventory: SourceInventory; candidates: Candidates }> {
  const storage = await openStorage(selection.root, selection.storageOptions);
  const inventory = await scanStorage(storage, scanOptions(selection, mapping, concurrency, trusted, signal));
  return { storage, inventory, candidates: selectCandidates(inventory, mapping) };
}

/** One batch of the source: the inventory of some whole repositories, and its candidates. */
export interface SourceBatch {
  readonly inventory: SourceInventory;
  readonly candidates: Candidates;
}

export interface SourceBatches {
  readonly storage: Storage;
  readonly walk: SourceWalk;
  /** How many batches `next` hands out in all. */
  readonly count: number;
  /** The next batch, resolved and mapped; undefined after the last (or once the signal fired). */
  readonly next: () => Promise<SourceBatch | undefined>;
}

/**
 * The source a batch of repositories at a time (push, sync): the walk up front (names only), then each batch
 * resolved when asked for. Name collisions are tracked across batches.
 */
export async function readSourceBatches(
  selection: SourceSelection,
  mapping: NameMapping,
  options: { concurrency: number; batchTags: number; trusted?: TrustedDigests; signal?: AbortSignal },
): Promise<SourceBatches> {
  const storage = await openStorage(selection.root, selection.storageOptions);
  const scan = scanOptions(selection, mapping, options.concurrency, options.trusted, options.signal);
  const walk = await walkSource(storage, scan);
  const batches = [...repositoryBatches(walk, options.batchTags)];
  const claimed = new Map<string, string>();
  const progress = { done: 0 };
  let index = 0;
  return {
    storage,
    walk,
    count: batches.length,
    next: async () => {
      const repositories = batches[index];
      if (!repositories || options.signal?.aborted) return undefined;
      batches[index++] = [];
      // A store (its caches of manifests and blob sizes) per batch: a shared base is looked at once a batch, and
      // nothing of one batch stays behind for the next.
      const inventory = await resolveRepositories(walk, repositories, scan, progress, new BlobStore(storage));
      return { inventory, candidates: selectCandidates(inventory, mapping, claimed) };
    },
  };
}

/**
 * `--shard`: the blobs the other shards' repositories need, each with the first of those repositories in source name
 * order (where its shard uploads it). The other shards' tags are resolved as they resolve them (the same selection,
 * the same trust), which reads their tag links and manifests and stats their blobs, but never reads a blob's bytes.
 * Faulty tags and names that cannot be mapped push nothing, so they claim no blob.
 */
export async function readOtherShards(
  selection: SourceSelection & { readonly shard: Shard },
  mapping: NameMapping,
  options: { concurrency: number; batchTags: number; trusted?: TrustedDigests; signal?: AbortSignal },
): Promise<ReadonlyMap<string, ShardedHome>> {
  const storage = await openStorage(selection.root, selection.storageOptions);
  const { shard, ...whole } = selection;
  const map = cachedMapper(mapping);
  const scan = scanOptions(whole, mapping, options.concurrency, options.trusted, options.signal);
  const others = shardSelector(map, shard);
  const walk = await walkSource(storage, { ...scan, select: (repository) => !others(repository) });
  const homes = new Map<string, ShardedHome>();
  for (const repositories of repositoryBatches(walk, options.batchTags)) {
    const inventory = await resolveRepositories(walk, repositories, scan, { done: 0 }, new BlobStore(storage));
    // The first repository in source name order to need a blob is its home, as the planner orders them (plan.ts).
    for (const entry of inventory.tags) {
      if (entry.faults.length > 0 || !entry.digest) continue;
      const mapped = map(entry.repository);
      if (!mapped.ok) continue;
      for (const blob of entry.blobs) {
        if (!blob.present) continue;
        const known = homes.get(blob.digest);
        if (!known || entry.repository < known.sourceRepository) homes.set(blob.digest, { repository: mapped.repository, sourceRepository: entry.repository });
      }
    }
  }
  return homes;
}

function scanOptions(selection: SourceSelection, mapping: NameMapping, concurrency: number, trusted?: TrustedDigests, signal?: AbortSignal): ScanOptions {
  const map = cachedMapper(mapping);
  const trust = trusted
    ? (repository: string, tag: string, digest: string): boolean => {
        const mapped = map(repository);
        return mapped.ok && trusted.get(tagRef({ repository: mapped.repository, tag })) === digest;
      }
    : undefined;
  const shard = selection.shard;
  return {
    include: selection.include,
    exclude: selection.exclude,
    verify: false,
    concurrency,
    includeUntagged: selection.includeUntagged ?? false,
    ...(selection.tags ? { tags: selection.tags } : {}),
    ...(signal ? { signal } : {}),
    ...(trust ? { trust } : {}),
    ...(shard ? { select: shardSelector(map, shard) } : {}),
  };
}

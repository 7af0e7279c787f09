import type { ManifestRecord } from '../image/reader.js';
import { tagRef, type JournalHook, type JournalTag, type SourceInventory, type TagEntry } from '../inventory/types.js';
import { resolveTag } from '../inventory/resolve.js';
import type { TagSelection } from '../inventory/select.js';
import { repositoryBatches, resolveRepositories, scanStorage, walkSource, type ScanOptions, type SourceWalk } from '../inventory/scan.js';
import { BlobStore } from '../image/reader.js';
import { cachedMapper, type MapRule, type NameMapping } from '../plan/map-names.js';
import { selectCandidates, type Candidate, type Candidates, type ShardedHome } from '../plan/plan.js';
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
  /** `--tag-untagged`: give each of them a destination tag made from its digest (plan/map-names.ts untaggedTagName). */
  readonly tagUntagged?: string;
  /** Only this shard's repositories (by destination name). */
  readonly shard?: Shard;
  /** Which tags of those repositories (patterns, semver, push time, latest N). */
  readonly tags?: TagSelection;
}

export function nameMapping(selection: SourceSelection, destination: Destination): NameMapping {
  return { rules: selection.maps, defaultProject: selection.defaultProject, harbor: destination.harbor !== undefined, ...(selection.tagUntagged ? { untaggedTag: selection.tagUntagged } : {}) };
}

/**
 * The sync journal as the source side uses it: destination `repo:tag` → what was verified there (a view of the
 * journal, not a copy). A tag whose link still names that digest is not read from the storage; with `trust`
 * (sync --trust-state) it is not asked about at the destination either.
 */
export interface JournalView {
  readonly tags: Pick<ReadonlyMap<string, JournalTag>, 'get'>;
  readonly trust: boolean;
}

/** Scan and map: the source side of every command that talks to a destination, whole. */
export async function readSource(
  selection: SourceSelection,
  mapping: NameMapping,
  concurrency: number,
  journal?: JournalView,
  signal?: AbortSignal,
): Promise<{ storage: Storage; inventory: SourceInventory; candidates: Candidates }> {
  const storage = await openStorage(selection.root, selection.storageOptions);
  const inventory = await scanStorage(storage, scanOptions(selection, mapping, concurrency, journal, signal));
  return { storage, inventory, candidates: selectCandidates(inventory, mapping) };
}

/** One batch of the source: the inventory of some whole repositories, and its candidates. */
export interface SourceBatch {
  readonly inventory: SourceInventory;
  readonly candidates: Candidates;
  /**
   * The batch again, with these candidates read from the storage in full: tags taken from the journal unread
   * (TagEntry.unread) whose digest the destination turned out not to hold. One that is faulty now is rejected; one
   * whose link is gone by now is left out.
   */
  readonly readInFull: (unread: readonly Candidate[]) => Promise<SourceBatch>;
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
  options: { concurrency: number; batchTags: number; journal?: JournalView; signal?: AbortSignal },
): Promise<SourceBatches> {
  const storage = await openStorage(selection.root, selection.storageOptions);
  const scan = scanOptions(selection, mapping, options.concurrency, options.journal, options.signal);
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
      const store = new BlobStore(storage);
      const inventory = await resolveRepositories(walk, repositories, scan, progress, store);
      return sourceBatch(inventory, selectCandidates(inventory, mapping, claimed), store, mapping);
    },
  };
}

function sourceBatch(inventory: SourceInventory, candidates: Candidates, store: BlobStore, mapping: NameMapping): SourceBatch {
  return { inventory, candidates, readInFull: (unread) => readInFull({ inventory, candidates }, unread, store, mapping) };
}

async function readInFull(batch: Pick<SourceBatch, 'inventory' | 'candidates'>, unread: readonly Candidate[], store: BlobStore, mapping: NameMapping): Promise<SourceBatch> {
  const again = new Map<TagEntry, TagEntry | undefined>();
  for (const { entry } of unread) {
    const location = { repository: entry.repository, tag: entry.tag, ...(entry.untagged ? { untagged: true } : {}) };
    again.set(entry, await resolveTag(store, location));
  }
  const tags = batch.inventory.tags.flatMap((t) => (again.has(t) ? (again.get(t) ?? []) : [t]));
  const read = [...again.values()].filter((t) => t !== undefined);
  const manifests = new Map<string, ManifestRecord>(batch.inventory.manifests);
  for (const digest of read.flatMap((t) => t.manifests)) {
    // Every manifest a tag lists was read whole and valid while resolving it.
    const record = store.record(digest);
    if (record) manifests.set(digest, record);
  }
  // Their names were claimed when the batch was read: mapped again on their own, they collide with nothing.
  const fresh = selectCandidates({ ...batch.inventory, tags: read, manifests }, mapping);
  const bySource = new Map(fresh.accepted.map((c) => [c.source, c]));
  const candidates: Candidates = {
    // In the batch's order: the first repository to need a blob is its home (plan/plan.ts).
    accepted: batch.candidates.accepted.flatMap((c) => (again.has(c.entry) ? (bySource.get(c.source) ?? []) : [c])),
    rejected: [...batch.candidates.rejected, ...fresh.rejected],
  };
  return sourceBatch({ ...batch.inventory, tags, manifests }, candidates, store, mapping);
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
  options: { concurrency: number; batchTags: number; journal?: JournalView; signal?: AbortSignal },
): Promise<ReadonlyMap<string, ShardedHome>> {
  const storage = await openStorage(selection.root, selection.storageOptions);
  const { shard, ...whole } = selection;
  const map = cachedMapper(mapping);
  const scan = scanOptions(whole, mapping, options.concurrency, options.journal, options.signal);
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

function scanOptions(selection: SourceSelection, mapping: NameMapping, concurrency: number, journal?: JournalView, signal?: AbortSignal): ScanOptions {
  const map = cachedMapper(mapping);
  // With --include-untagged every image is read: a manifest is untagged when no tag's image reaches it, children of
  // an index included, and an image taken from the journal has no children to tell.
  const hook: JournalHook | undefined =
    journal && !selection.includeUntagged
      ? {
          trust: journal.trust,
          known: (repository, tag, digest) => {
            const mapped = map(repository);
            const known = mapped.ok ? journal.tags.get(tagRef({ repository: mapped.repository, tag })) : undefined;
            return known?.digest === digest ? known : undefined;
          },
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
    ...(hook ? { journal: hook } : {}),
    ...(shard ? { select: shardSelector(map, shard) } : {}),
  };
}

import pLimit from 'p-limit';
import { errorMessage } from '../errors.js';
import { BlobStore, hashBlob, type ManifestRecord } from '../image/reader.js';
import { resolveTag } from './resolve.js';
import type { ReadFault, RepositorySelection, Storage } from '../storage/storage.js';
import { findEntries, type TagLocation } from '../storage/walk.js';
import { includePrefixes, makeRepositoryFilter, type RepositoryFilter } from '../util/glob.js';
import { selectTags, type TagSelection } from './select.js';
import { FAULT_KINDS, type FaultKind, type InventorySummary, type JournalHook, type SourceInventory, type TagEntry } from './types.js';
import { hashWorkers, RESOLVE_YIELD_TAGS } from '../tuning.js';

export interface ScanOptions extends RepositoryFilter {
  /** Hash every blob and compare with its digest (`scan --verify`). */
  readonly verify: boolean;
  /** Parallel blob hashing with --verify. */
  readonly concurrency: number;
  /** Extra repository selection (sharding), applied after include/exclude. */
  readonly select?: (repository: string) => boolean;
  /** Also resolve manifests that no tag points at, as entries addressed by digest (`--include-untagged`). */
  readonly includeUntagged?: boolean;
  /** Count the untagged manifests (walks `revisions`: as many entries again as the tags). Implied by includeUntagged. */
  readonly countUntagged?: boolean;
  /** Tags to take from the sync journal instead of resolving them (sync without --full-read). */
  readonly journal?: JournalHook;
  readonly onProgress?: (event: ScanProgress) => void;
  /** SIGINT/SIGTERM: stop resolving at the next batch; the inventory is partial then. */
  readonly signal?: AbortSignal;
  /** Which tags move (`--tag-include`, `--semver`, `--pushed-after`, `--keep-latest`): the rest go to `deselected`. */
  readonly tags?: TagSelection;
}

export type ScanProgress =
  | { phase: 'walk'; tags: number }
  | { phase: 'resolve'; done: number; total: number }
  | { phase: 'verify'; done: number; total: number; bytes: number };

/** What the walk found that the options select: tag locations by repository, revisions, unreadable directories. */
export interface SourceWalk {
  readonly storage: Storage;
  /** Selected repositories in name order, each with its tag locations (tag order). */
  readonly repositories: ReadonlyMap<string, readonly TagLocation[]>;
  /** Manifest revisions by repository (only when the walk listed them: untagged counting or migration). */
  readonly revisions: ReadonlyMap<string, readonly string[]>;
  readonly readFaults: readonly ReadFault[];
  /** Selected tag locations in all. */
  readonly tagCount: number;
  /**
   * Tag locations in the storage before any tag selection: what an empty selection is measured against. With a
   * repository selection only its repositories are listed, so this counts theirs, unless they hold none: then the
   * whole storage's tags are counted, for the warning that the selection kept nothing.
   */
  readonly foundTags: number;
}

/** Storage → the selected repositories and their tag locations: names only, nothing resolved yet. */
export async function walkSource(storage: Storage, options: ScanOptions): Promise<SourceWalk> {
  const selected = makeRepositoryFilter(options);
  const select = options.select;
  const selection: RepositorySelection = { wanted: select ? (repository) => selected(repository) && select(repository) : selected, prefixes: includePrefixes(options) };
  const everything = options.include.length === 0 && options.exclude.length === 0 && !select;
  // Every tag resolved means nearly every blob looked at (not so with a journal: its tags are mostly taken unread).
  if (everything && !options.journal) storage.expectEveryBlob?.();
  const found = await findEntries(storage, { revisions: Boolean(options.includeUntagged || options.countUntagged), ...(everything ? {} : { selection }) });
  const repositories = new Map<string, TagLocation[]>();
  for (const location of found.tags) {
    let list = repositories.get(location.repository);
    if (!list) repositories.set(location.repository, (list = []));
    list.push(location);
  }
  // A repository with revisions and no tag (every tag deleted) still has untagged manifests to count.
  for (const repository of found.revisions.keys()) if (!repositories.has(repository)) repositories.set(repository, []);
  const ordered = new Map([...repositories].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const tagCount = found.tags.length;
  options.onProgress?.({ phase: 'walk', tags: tagCount });
  // A namespace that could not be listed may hold any repository: kept whatever the selection.
  const readFaults = found.unreadable.filter((f) => !f.repository || selection.wanted(f.prefix));
  const foundTags = everything || tagCount > 0 || readFaults.length > 0 ? tagCount : (await findEntries(storage, { revisions: false })).tags.length;
  return { storage, repositories: ordered, revisions: found.revisions, readFaults, tagCount, foundTags };
}

/**
 * Whole repositories in name order, about `maxTags` tags at a time (a repository is never split: tag selection,
 * referrers and untagged manifests are per repository). What a push holds in memory is one batch, not the registry.
 */
export function* repositoryBatches(walk: SourceWalk, maxTags: number): Generator<string[]> {
  let batch: string[] = [];
  let tags = 0;
  for (const [repository, locations] of walk.repositories) {
    if (batch.length > 0 && tags + locations.length > maxTags) {
      yield batch;
      batch = [];
      tags = 0;
    }
    batch.push(repository);
    tags += locations.length;
  }
  if (batch.length > 0) yield batch;
}

/** Progress of resolving across batches: how many of the walk's tags are done. */
export interface ResolveProgress {
  done: number;
}

/**
 * Resolves the tags of some of the walk's repositories: an inventory of just those (tags, their manifests,
 * untagged manifests, the selection). Read faults are the walk's, reported once by the caller, not per batch.
 */
export async function resolveRepositories(walk: SourceWalk, repositories: readonly string[], options: ScanOptions, progress: ResolveProgress = { done: 0 }, store = new BlobStore(walk.storage)): Promise<SourceInventory> {
  const inFlight = walk.storage.readsInFlight;
  const resolve = (location: TagLocation) => resolveTag(store, location, options.journal);
  // Every tag of the batch, many at a time where the storage is remote; each repository's untagged manifests after,
  // once its tags say which revisions they reach. The order stays the walk's: repository, its tags, its untagged.
  const tagged = await resolveInOrder(repositories.flatMap((r) => walk.repositories.get(r) ?? []), inFlight, resolve, () => {
    if (++progress.done % RESOLVE_YIELD_TAGS !== 0) return undefined;
    options.onProgress?.({ phase: 'resolve', done: progress.done, total: walk.tagCount });
    return new Promise<void>((resolve) => setImmediate(resolve));
  }, options.signal);
  const byRepository = new Map<string, TagEntry[]>();
  const file = (entry: TagEntry): void => {
    let list = byRepository.get(entry.repository);
    if (!list) byRepository.set(entry.repository, (list = []));
    list.push(entry);
  };
  tagged.forEach(file);
  // Untagged manifests: every revision no tag reaches (a child of a tagged index is reached, so it is not one).
  // Only when the walk listed revisions (scan, --include-untagged): push and sync skip this work.
  let untaggedCount = 0;
  const untagged: TagLocation[] = [];
  for (const repository of repositories) {
    const revisions = walk.revisions.get(repository);
    if (!revisions || options.signal?.aborted) continue;
    const reached = new Set<string>();
    for (const entry of byRepository.get(repository) ?? []) {
      for (const digest of entry.manifests) reached.add(digest);
      if (entry.digest) reached.add(entry.digest);
    }
    for (const digest of revisions) {
      if (reached.has(digest)) continue;
      untaggedCount++;
      if (options.includeUntagged) untagged.push({ repository, tag: digest, untagged: true });
    }
  }
  (await resolveInOrder(untagged, inFlight, resolve, () => undefined, options.signal)).forEach(file);

  const tags: TagEntry[] = [];
  const manifests = new Map<string, ManifestRecord>();
  for (const repository of repositories) {
    for (const entry of byRepository.get(repository) ?? []) {
      tags.push(entry);
      // Every manifest a tag lists was read whole and valid while resolving it.
      for (const digest of entry.manifests) {
        if (manifests.has(digest)) continue;
        const record = store.record(digest);
        if (record) manifests.set(digest, record);
      }
    }
  }
  const chosen = selectTags(tags, manifests, options.tags);
  return { root: walk.storage.root, tags: chosen.kept, manifests, untaggedCount, readFaults: [], deselected: chosen.dropped };
}

/**
 * `resolve` over `locations` with at most `inFlight` under way, the results (tags, not tag directories without a
 * link) in the order of `locations`; `after` runs after each one (a promise only when it has to wait: a promise
 * per tag is a measurable share of a local scan). Each of `inFlight` workers takes the next location as soon as its
 * own is done, so one slow read (a listing of many pages) holds up only its worker, not the window. Stops starting
 * new ones once `signal` fires.
 */
async function resolveInOrder(
  locations: readonly TagLocation[],
  inFlight: number,
  resolve: (location: TagLocation) => Promise<TagEntry | undefined>,
  after: () => Promise<void> | undefined,
  signal: AbortSignal | undefined,
): Promise<TagEntry[]> {
  const results: Array<TagEntry | undefined> = new Array<TagEntry | undefined>(locations.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < locations.length && !signal?.aborted) {
      const at = next++;
      results[at] = await resolve(locations[at]!);
      const wait = after();
      if (wait) await wait;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(inFlight, locations.length)) }, worker));
  return results.filter((entry): entry is TagEntry => entry !== undefined);
}

/** Storage → Inventory, whole. Never throws for a bad tag: every problem becomes a fault on the tag it belongs to. */
export async function scanStorage(storage: Storage, options: ScanOptions): Promise<SourceInventory> {
  const walk = await walkSource(storage, options);
  const inventory = await resolveRepositories(walk, [...walk.repositories.keys()], options);
  if (options.verify) await verifyBlobs(storage, inventory.tags, options);
  return { ...inventory, readFaults: walk.readFaults, foundTags: walk.foundTags };
}

/** Hashes each unique blob once, a few at a time, and marks every tag that uses a corrupt one. */
async function verifyBlobs(storage: Storage, tags: readonly TagEntry[], options: ScanOptions): Promise<void> {
  const users = new Map<string, { size: number; tags: TagEntry[] }>();
  for (const tag of tags) {
    for (const blob of tag.blobs) {
      if (!blob.present) continue;
      let entry = users.get(blob.digest);
      if (!entry) {
        entry = { size: blob.size, tags: [] };
        users.set(blob.digest, entry);
      }
      entry.tags.push(tag);
    }
  }
  const limit = pLimit(hashWorkers(options.concurrency));
  let done = 0;
  let bytes = 0;
  await Promise.all(
    [...users].map(([digest, { size, tags: using }]) =>
      limit(async () => {
        let problem: string | undefined;
        try {
          const actual = await hashBlob(storage.blobReader(digest, size));
          if (actual !== digest) problem = `blob ${digest} is corrupt: its data hashes to ${actual}`;
        } catch (err) {
          problem = `blob ${digest} could not be read while hashing (${(err as { code?: string }).code ?? errorMessage(err)})`;
        }
        if (problem) {
          for (const tag of using) {
            // A size mismatch already named this blob corrupt; one fault per blob and tag is enough.
            if (!tag.faults.some((f) => f.kind === 'corrupt-blob' && f.digest === digest)) tag.faults.push({ kind: 'corrupt-blob', digest, message: problem });
          }
        }
        done++;
        bytes += size;
        options.onProgress?.({ phase: 'verify', done, total: users.size, bytes });
      }),
    ),
  );
}

/** The summary counted a batch at a time: only digests and names are kept, never the tags themselves. */
export class SummaryCounter {
  readonly #faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  readonly #repositories = new Set<string>();
  readonly #manifests = new Set<string>();
  readonly #blobs = new Map<string, number>();
  #tags = 0;
  #faultyTags = 0;
  #untagged = 0;

  add(inventory: Pick<SourceInventory, 'tags' | 'untaggedCount'>): void {
    this.#untagged += inventory.untaggedCount;
    for (const tag of inventory.tags) {
      this.#tags++;
      this.#repositories.add(tag.repository);
      if (tag.faults.length > 0) this.#faultyTags++;
      for (const fault of tag.faults) this.#faults[fault.kind]++;
      for (const digest of tag.manifests) this.#manifests.add(digest);
      for (const blob of tag.blobs) this.#blobs.set(blob.digest, blob.size);
    }
  }

  summary(readFaults: readonly ReadFault[]): InventorySummary {
    let totalBytes = 0;
    for (const size of this.#blobs.values()) totalBytes += size;
    return {
      repositories: this.#repositories.size,
      tags: this.#tags,
      faultyTags: this.#faultyTags,
      uniqueManifests: this.#manifests.size,
      uniqueBlobs: this.#blobs.size,
      totalBytes,
      untaggedManifests: this.#untagged,
      faults: { ...this.#faults, unreadable: this.#faults.unreadable + readFaults.length },
      unreadableDirectories: readFaults.length,
    };
  }
}

export function summarize(inventory: SourceInventory): InventorySummary {
  const counter = new SummaryCounter();
  counter.add(inventory);
  return counter.summary(inventory.readFaults);
}

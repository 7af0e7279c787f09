import pLimit from 'p-limit';
import { BlobStore, hashFile, type ManifestRecord } from '../image/reader.js';
import { resolveTag } from './resolve.js';
import { splitDigest } from '../storage/digest.js';
import { blobDataPath, type StorageLayout } from '../storage/layout.js';
import { dataSource } from '../storage/source.js';
import { findEntries, revisionLinkPath, type ReadFault, type TagLocation } from '../storage/walk.js';
import { makeRepositoryFilter, type RepositoryFilter } from '../util/glob.js';
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
  readonly layout: StorageLayout;
  /** Selected repositories in name order, each with its tag locations (tag order). */
  readonly repositories: ReadonlyMap<string, readonly TagLocation[]>;
  /** Manifest revisions by repository (only when the walk listed them: untagged counting or migration). */
  readonly revisions: ReadonlyMap<string, readonly string[]>;
  readonly readFaults: readonly ReadFault[];
  /** Selected tag locations in all. */
  readonly tagCount: number;
  /** Tag locations in the storage before any selection: what an empty selection is measured against. */
  readonly foundTags: number;
}

/** Storage → the selected repositories and their tag locations: names only, nothing resolved yet. */
export async function walkSource(layout: StorageLayout, options: ScanOptions): Promise<SourceWalk> {
  const selected = makeRepositoryFilter(options);
  const found = await findEntries(layout, { revisions: Boolean(options.includeUntagged || options.countUntagged) });
  const wanted = (repository: string): boolean => selected(repository) && (options.select?.(repository) ?? true);
  const repositories = new Map<string, TagLocation[]>();
  let tagCount = 0;
  for (const location of found.tags) {
    if (!wanted(location.repository)) continue;
    let list = repositories.get(location.repository);
    if (!list) repositories.set(location.repository, (list = []));
    list.push(location);
    tagCount++;
  }
  const revisions = new Map<string, string[]>();
  for (const [repository, digests] of found.revisions) if (wanted(repository)) revisions.set(repository, digests);
  // A repository with revisions and no tag (every tag deleted) still has untagged manifests to count.
  for (const repository of revisions.keys()) if (!repositories.has(repository)) repositories.set(repository, []);
  const ordered = new Map([...repositories].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  options.onProgress?.({ phase: 'walk', tags: tagCount });
  const readFaults = found.unreadable.filter((f) => !f.repository || wanted(f.prefix));
  return { layout, repositories: ordered, revisions, readFaults, tagCount, foundTags: found.tags.length };
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
export async function resolveRepositories(walk: SourceWalk, repositories: readonly string[], options: ScanOptions, progress: ResolveProgress = { done: 0 }, store = new BlobStore(walk.layout)): Promise<SourceInventory> {
  const tags: TagEntry[] = [];
  const manifests = new Map<string, ManifestRecord>();
  const keep = (entry: TagEntry | undefined): void => {
    if (!entry) return;
    tags.push(entry);
    for (const digest of entry.manifests) {
      if (manifests.has(digest)) continue;
      const load = store.manifest(digest);
      if (load.ok) manifests.set(digest, load.record);
    }
  };
  let untaggedCount = 0;
  for (const repository of repositories) {
    if (options.signal?.aborted) break;
    const first = tags.length;
    for (const location of walk.repositories.get(repository) ?? []) {
      keep(resolveTag(store, location, options.journal));
      if (++progress.done % RESOLVE_YIELD_TAGS === 0) {
        options.onProgress?.({ phase: 'resolve', done: progress.done, total: walk.tagCount });
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (options.signal?.aborted) break;
      }
    }
    // Untagged manifests: every revision no tag reaches (a child of a tagged index is reached, so it is not one).
    // Only when the walk listed revisions (scan, --include-untagged): push and sync skip this work.
    const revisions = walk.revisions.get(repository);
    if (!revisions) continue;
    const reached = new Set<string>();
    for (let i = first; i < tags.length; i++) {
      for (const digest of tags[i]!.manifests) reached.add(digest);
      if (tags[i]!.digest) reached.add(tags[i]!.digest!);
    }
    for (const digest of revisions) {
      if (reached.has(digest)) continue;
      untaggedCount++;
      if (!options.includeUntagged) continue;
      keep(resolveTag(store, { repository, tag: digest, linkPath: revisionLinkPath(walk.layout, repository, digest), untagged: true }, options.journal));
    }
  }
  const chosen = selectTags(tags, manifests, options.tags);
  return { root: walk.layout.v2, tags: chosen.kept, manifests, untaggedCount, readFaults: [], deselected: chosen.dropped };
}

/** Storage → Inventory, whole. Never throws for a bad tag: every problem becomes a fault on the tag it belongs to. */
export async function scanStorage(layout: StorageLayout, options: ScanOptions): Promise<SourceInventory> {
  const walk = await walkSource(layout, options);
  const inventory = await resolveRepositories(walk, [...walk.repositories.keys()], options);
  if (options.verify) await verifyBlobs(layout, inventory.tags, options);
  return { ...inventory, readFaults: walk.readFaults, foundTags: walk.foundTags };
}

/** Hashes each unique blob once, a few at a time, and marks every tag that uses a corrupt one. */
async function verifyBlobs(layout: StorageLayout, tags: readonly TagEntry[], options: ScanOptions): Promise<void> {
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
          const source = dataSource(layout, blobDataPath(layout, digest), size);
          const actual = await hashFile(source.file, splitDigest(digest)[0], source.start, source.size);
          if (actual !== digest) problem = `blob ${digest} is corrupt: its data hashes to ${actual}`;
        } catch (err) {
          problem = `blob ${digest} could not be read while hashing (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
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

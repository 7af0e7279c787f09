import pLimit from 'p-limit';
import { BlobStore, hashFile, type ManifestRecord } from '../image/reader.js';
import { resolveTag, type TrustHook } from './resolve.js';
import { splitDigest } from '../storage/digest.js';
import { blobDataPath, type StorageLayout } from '../storage/layout.js';
import { dataSource } from '../storage/source.js';
import { findEntries, revisionLinkPath } from '../storage/walk.js';
import { makeRepositoryFilter, type RepositoryFilter } from '../util/glob.js';
import { selectTags, type TagSelection } from './select.js';
import { FAULT_KINDS, type FaultKind, type InventorySummary, type SourceInventory, type TagEntry } from './types.js';

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
  /** Tags to take on trust without resolving them (sync --trust-state). */
  readonly trust?: TrustHook;
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

/** Tags resolved between two turns of the event loop, so signals and progress output are not starved. */
const RESOLVE_BATCH = 256;

/** Storage → Inventory. Never throws for a bad tag: every problem becomes a fault on the tag it belongs to. */
export async function scanStorage(layout: StorageLayout, options: ScanOptions): Promise<SourceInventory> {
  const store = new BlobStore(layout);
  const selected = makeRepositoryFilter(options);
  const found = await findEntries(layout, { revisions: Boolean(options.includeUntagged || options.countUntagged) });
  const wanted = (repository: string): boolean => selected(repository) && (options.select?.(repository) ?? true);
  const locations = found.tags.filter((l) => wanted(l.repository));
  options.onProgress?.({ phase: 'walk', tags: locations.length });

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
  for (const [i, location] of locations.entries()) {
    keep(resolveTag(store, location, options.trust));
    if ((i + 1) % RESOLVE_BATCH === 0) {
      options.onProgress?.({ phase: 'resolve', done: i + 1, total: locations.length });
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (options.signal?.aborted) break;
    }
  }

  // Untagged manifests: every revision no tag reaches (a child of a tagged index is reached, so it is not one).
  // Only when the walk listed revisions (scan, --include-untagged): push and sync skip this work.
  const reached = new Map<string, Set<string>>();
  for (const tag of found.revisions.size > 0 ? tags : []) {
    let set = reached.get(tag.repository);
    if (!set) reached.set(tag.repository, (set = new Set()));
    for (const digest of tag.manifests) set.add(digest);
    if (tag.digest) set.add(tag.digest);
  }
  let untaggedCount = 0;
  for (const [repository, digests] of found.revisions) {
    if (!wanted(repository)) continue;
    const set = reached.get(repository);
    for (const digest of digests) {
      if (set?.has(digest)) continue;
      untaggedCount++;
      if (!options.includeUntagged) continue;
      keep(resolveTag(store, { repository, tag: digest, linkPath: revisionLinkPath(layout, repository, digest), untagged: true }, options.trust));
    }
  }

  if (options.verify) await verifyBlobs(layout, tags, options);
  const readFaults = found.unreadable.filter((f) => !f.repository || wanted(f.prefix));
  const chosen = selectTags(tags, manifests, options.tags);
  return { root: layout.v2, tags: chosen.kept, manifests, untaggedCount, readFaults, deselected: chosen.dropped };
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
  // Hashing is CPU-bound: more workers than cores only add memory.
  const limit = pLimit(Math.max(2, Math.min(options.concurrency, 8)));
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

export function summarize(inventory: SourceInventory): InventorySummary {
  const faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  const repositories = new Set<string>();
  const manifests = new Set<string>();
  const blobs = new Map<string, number>();
  let faultyTags = 0;
  for (const tag of inventory.tags) {
    repositories.add(tag.repository);
    if (tag.faults.length > 0) faultyTags++;
    for (const fault of tag.faults) faults[fault.kind]++;
    for (const digest of tag.manifests) manifests.add(digest);
    for (const blob of tag.blobs) blobs.set(blob.digest, blob.size);
  }
  let totalBytes = 0;
  for (const size of blobs.values()) totalBytes += size;
  return {
    repositories: repositories.size,
    tags: inventory.tags.length,
    faultyTags,
    uniqueManifests: manifests.size,
    uniqueBlobs: blobs.size,
    totalBytes,
    untaggedManifests: inventory.untaggedCount,
    faults: { ...faults, unreadable: faults.unreadable + inventory.readFaults.length },
    unreadableDirectories: inventory.readFaults.length,
  };
}

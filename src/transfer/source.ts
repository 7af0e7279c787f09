import type { SourceInventory } from '../inventory/types.js';
import { tagRef } from '../inventory/types.js';
import type { TagSelection } from '../inventory/select.js';
import { scanStorage } from '../inventory/scan.js';
import { cachedMapper, type MapRule, type NameMapping } from '../plan/map-names.js';
import { selectCandidates, type Candidates } from '../plan/plan.js';
import { shardSelector, type Shard } from '../plan/shard.js';
import { locateStorage, type StorageLayout } from '../storage/layout.js';
import type { Destination } from './destination.js';

/**
 * The source side of every command that talks to a destination (push, sync, diff): which repositories and tags,
 * under which destination names, read from the storage and mapped. One job: storage → candidates.
 */
export interface SourceSelection {
  readonly root: string;
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

/** Scan and map: the source side of every command that talks to a destination. */
export async function readSource(
  selection: SourceSelection,
  mapping: NameMapping,
  concurrency: number,
  trusted?: ReadonlyMap<string, string>,
  signal?: AbortSignal,
): Promise<{ layout: StorageLayout; inventory: SourceInventory; candidates: Candidates }> {
  const layout = await locateStorage(selection.root);
  const map = cachedMapper(mapping);
  const trust = trusted
    ? (repository: string, tag: string, digest: string): boolean => {
        const mapped = map(repository);
        return mapped.ok && trusted.get(tagRef({ repository: mapped.repository, tag })) === digest;
      }
    : undefined;
  const shard = selection.shard;
  const inventory = await scanStorage(layout, {
    include: selection.include,
    exclude: selection.exclude,
    verify: false,
    concurrency,
    includeUntagged: selection.includeUntagged ?? false,
    ...(selection.tags ? { tags: selection.tags } : {}),
    ...(signal ? { signal } : {}),
    ...(trust ? { trust } : {}),
    ...(shard ? { select: shardSelector(map, shard) } : {}),
  });
  return { layout, inventory, candidates: selectCandidates(inventory, mapping) };
}


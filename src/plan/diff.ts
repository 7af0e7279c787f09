import type { Candidates } from './plan.js';
import { tagRef, type DestinationTags } from '../inventory/types.js';

export type DiffStatus = 'new' | 'changed' | 'same' | 'extra' | 'faulty';

export interface DiffRow {
  readonly status: DiffStatus;
  readonly source: string | undefined;
  readonly destination: string | undefined;
  readonly sourceDigest: string | undefined;
  readonly destinationDigest: string | undefined;
  readonly reason?: string;
}

export interface DiffCounts {
  readonly new: number;
  readonly changed: number;
  readonly same: number;
  readonly extra: number;
  readonly faulty: number;
}

/**
 * Source tags (after name mapping) against destination tags. `extra` is a destination tag, in a repository the
 * source maps into or in one of its projects, that no source tag maps to. Pure.
 */
export function diffTags(candidates: Candidates, destination: DestinationTags, converted?: ReadonlyMap<string, string>): DiffRow[] {
  const rows: DiffRow[] = [];
  const mapped = new Set<string>();
  for (const { entry, repository } of candidates.accepted) {
    const ref = tagRef({ repository, tag: entry.tag });
    mapped.add(ref);
    const there = destination.get(ref);
    // A schema1 image converted by an earlier push counts as the same image (the sync journal remembers the pair).
    const same = there !== undefined && (there.digest === entry.digest || there.digest === converted?.get(entry.digest!));
    const status: DiffStatus = !there ? 'new' : same ? 'same' : 'changed';
    rows.push({ status, source: tagRef(entry), destination: ref, sourceDigest: entry.digest, destinationDigest: there?.digest });
  }
  for (const rejected of candidates.rejected) {
    rows.push({
      status: 'faulty',
      source: rejected.source,
      destination: rejected.repository ? `${rejected.repository}:${rejected.source.slice(rejected.source.lastIndexOf(':') + 1)}` : undefined,
      sourceDigest: rejected.digest,
      destinationDigest: undefined,
      reason: rejected.reason,
    });
  }
  for (const [ref, tag] of destination) {
    if (!mapped.has(ref)) rows.push({ status: 'extra', source: undefined, destination: ref, sourceDigest: undefined, destinationDigest: tag.digest });
  }
  return rows.sort((a, b) => ((a.destination ?? a.source ?? '') < (b.destination ?? b.source ?? '') ? -1 : 1));
}

export function countDiff(rows: readonly DiffRow[]): DiffCounts {
  const counts = { new: 0, changed: 0, same: 0, extra: 0, faulty: 0 };
  for (const row of rows) counts[row.status]++;
  return counts;
}

import pLimit from 'p-limit';
import { compareStorage, type CompareResult } from '../sync/compare.js';
import { convertedImages, loadState } from '../sync/sync-state.js';
import { syncStorage, type SyncOptions, type SyncResult } from '../sync/sync.js';
import { nameSelected } from '../inventory/select.js';
import { tagRef } from '../inventory/types.js';
import { openStorage } from '../storage/open.js';
import { findEntries } from '../storage/walk.js';
import type { Destination } from '../destination/destination.js';
import type { SourceSelection } from '../transfer/source.js';
import { includePrefixes, makeRepositoryFilter } from '../util/glob.js';

/**
 * Rounds a final sync makes at most. One round is the normal case (the old registry is read-only); a second catches
 * a push that landed during the first; a tag that still moves after three is being written to on purpose.
 */
export const DEFAULT_FINAL_ROUNDS = 3;

/** A source tag whose `current/link` was not the same before and after a round. */
export interface MovedTag {
  readonly ref: string;
  /** The digest (or `(absent)`, `(invalid)`…) before the round, and after it. */
  readonly before: string;
  readonly after: string;
}

export interface FinalSyncResult {
  /** The last round: its reports are every selected tag's final state. */
  readonly last: SyncResult;
  readonly rounds: number;
  /** Tags that changed during the last round: empty when it proved nothing moved. */
  readonly moving: readonly MovedTag[];
  /** Source against destination after the last round (undefined when a signal stopped the run). */
  readonly diff: CompareResult | undefined;
}

export interface FinalSyncOptions {
  readonly rounds: number;
  /** Destination requests in flight for the closing diff. */
  readonly diffConcurrency: number;
  /** A round that is followed by another: print it and save its journal, so the next round starts from it. */
  readonly onRound?: (result: SyncResult, round: number, moved: readonly MovedTag[]) => void;
}

/**
 * Every selected tag's `current/link`, read straight from the storage (the storage is only read). A link that cannot
 * be read is recorded by its reason, so a tag that appears, disappears or breaks during a round counts as moved.
 */
export async function readTagLinks(selection: SourceSelection): Promise<Map<string, string>> {
  const storage = await openStorage(selection.root, selection.storageOptions);
  const selected = makeRepositoryFilter(selection);
  const links = new Map<string, string>();
  // Tags only: untagged manifests are named by their digest, they cannot move.
  const locations = (await findEntries(storage, { revisions: false, selection: { wanted: selected, prefixes: includePrefixes(selection) } })).tags.filter(
    (location) => !selection.tags || nameSelected(location.tag, selection.tags),
  );
  // As many reads in flight as the storage is worth (one at a time locally, many from a bucket); the map in walk order.
  const limit = pLimit(storage.readsInFlight);
  const read = await Promise.all(locations.map((location) => limit(() => storage.readTagLink(location.repository, location.tag))));
  locations.forEach((location, i) => {
    const link = read[i]!;
    links.set(tagRef(location), link.ok ? link.digest : `(${link.reason})`);
  });
  return links;
}

export function movedTags(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): MovedTag[] {
  const moved: MovedTag[] = [];
  for (const ref of new Set([...before.keys(), ...after.keys()])) {
    const [b, a] = [before.get(ref) ?? '(absent)', after.get(ref) ?? '(absent)'];
    if (a !== b) moved.push({ ref, before: b, after: a });
  }
  return moved.sort((x, y) => (x.ref < y.ref ? -1 : 1));
}

/**
 * `sync --final`, the last sync before the switch: a sync, then every source tag link read again. A tag that changed
 * while the round ran may have been pushed at either digest, so another round follows (at most `rounds` in all;
 * unchanged tags cost one manifest request each). The run ends when a whole round saw no link change, or with the
 * tags that kept moving; then source and destination are compared, read-only, as `diff` does.
 */
export async function finalSync(destination: Destination, options: SyncOptions, final: FinalSyncOptions): Promise<FinalSyncResult> {
  let before = await readTagLinks(options);
  let round = 0;
  for (;;) {
    round++;
    const result = await syncStorage(destination, options);
    if (result.push.interrupted) return { last: result, rounds: round, moving: [], diff: undefined };
    const after = await readTagLinks(options);
    const moved = movedTags(before, after);
    if (moved.length === 0 || round >= final.rounds) {
      const diff = await compareStorage(destination, options, final.diffConcurrency, convertedAfter(result, options.statePath, destination.endpoint.host));
      return { last: result, rounds: round, moving: moved, diff };
    }
    final.onRound?.(result, round, moved);
    before = after;
  }
}

/** Schema1 images converted by this run or an earlier one: the destination holds them at another digest. */
function convertedAfter(result: SyncResult, statePath: string | undefined, host: string): Map<string, string> {
  const converted = statePath ? convertedImages(loadState(statePath, host)) : new Map<string, string>();
  for (const r of result.push.reports) if (r.digest && r.convertedTo) converted.set(r.digest, r.convertedTo);
  return converted;
}

/** The verdict, one line: what a person running the cut-over reads before switching. */
export function finalVerdict(result: FinalSyncResult): { ok: boolean; line: string } {
  const shown = (refs: readonly string[]): string => (refs.length > 10 ? `${refs.slice(0, 10).join(', ')} and ${refs.length - 10} more` : refs.join(', '));
  if (result.moving.length > 0) {
    const moving = result.moving.map((m) => `${m.ref} (${m.before} -> ${m.after})`);
    return { ok: false, line: `final: NOT in sync: ${result.moving.length === 1 ? 'a tag' : `${result.moving.length} tags`} kept moving after ${result.rounds} round${result.rounds === 1 ? '' : 's'}: ${shown(moving)}; put the old registry in read-only mode and run again` };
  }
  const diff = result.diff;
  if (!diff) return { ok: false, line: 'final: NOT in sync: the run was interrupted' };
  const c = diff.counts;
  const behind = diff.rows.filter((r) => r.status === 'new' || r.status === 'changed' || r.status === 'faulty').map((r) => `${r.source ?? r.destination} ${r.status}`);
  const counts = `${c.same} same, ${c.new} new, ${c.changed} changed, ${c.faulty} faulty, ${c.extra} extra in the destination`;
  if (behind.length > 0) return { ok: false, line: `final: NOT in sync after ${result.rounds} round${result.rounds === 1 ? '' : 's'}: ${counts} (${shown(behind)})` };
  return { ok: true, line: `final: in sync: the destination holds every source tag at its digest (${counts}; ${result.rounds} round${result.rounds === 1 ? '' : 's'}, no tag moved in the last)` };
}

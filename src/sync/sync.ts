import { describeReadFault } from '../inventory/render.js';
import { splitRef } from '../inventory/types.js';
import { inShard } from '../plan/shard.js';
import { nameSelected } from '../inventory/select.js';
import { convertedImages, journalTag, loadState, saveState, type StateEntry, type SyncState } from './sync-state.js';
import { makeRepositoryFilter } from '../util/glob.js';
import { count } from '../util/format.js';
import type { Destination } from '../destination/destination.js';
import { applyDeletions, planDeletions, type Deletion } from './delete-extra.js';
import { pushStorage, type PushOptions, type PushResult } from '../push/push.js';

export type DeleteMode = 'no' | 'plan' | 'apply';

export interface SyncOptions extends Omit<PushOptions, 'dryRun' | 'journal'> {
  /** The journal file (`--state`); without one, nothing is remembered between runs. */
  readonly statePath: string | undefined;
  /** Skip the destination query for tags whose source digest is the journal's (`--trust-state`). */
  readonly trustState: boolean;
  /**
   * Read every selected image from the storage (`--full-read`). Without it, a tag whose link still names the digest
   * the journal verified is not read: its destination is asked, its report row comes from the journal.
   */
  readonly fullRead?: boolean;
  readonly deleteExtra: DeleteMode;
  /**
   * Refuse a run that would delete more tags than this (`--max-delete`). Not given: at most DEFAULT_MAX_DELETE and
   * at most DEFAULT_MAX_DELETE_SHARE of the tags the journal holds for this selection.
   */
  readonly maxDelete?: number;
}

export const DEFAULT_MAX_DELETE = 100;
/**
 * Without an explicit --max-delete, a run deletes at most half of the tags it migrated (the journal's tags in this
 * selection): a source that lost most of its tags at once is far likelier a bad copy or a wrong path than a real
 * clean-up, whatever the registry's size (100 protects nothing on a registry of 80 tags).
 */
export const DEFAULT_MAX_DELETE_SHARE = 0.5;

export { sourceLinkState, type Deletion } from './delete-extra.js';

export interface SyncResult {
  readonly push: PushResult;
  readonly deletions: readonly Deletion[];
  /** Why no tag was taken for gone this run although deletion was asked (the source was not read whole). */
  readonly deletionsWithheld?: string;
  /** Writes the updated journal (atomically): the caller does it after printing, so output survives a full disk. */
  readonly saveJournal: () => void;
}

/**
 * `sync`, the cron job: push exactly what differs (the push engine, projects created as needed), verify, and
 * keep the journal. `--delete-extra` only ever touches tags the journal says came from the source and the source
 * no longer has, and lists them first (`plan`) unless told to apply.
 */
export async function syncStorage(destination: Destination, options: SyncOptions): Promise<SyncResult> {
  const host = destination.endpoint.host;
  const state: SyncState | undefined = options.statePath ? loadState(options.statePath, host) : undefined;
  if (state) state.destinationUrl = destination.endpoint.origin;
  // Views of the journal, not copies of it: what a tag that is not gone was verified as, and converted images.
  const trust = options.trustState;
  const journal = state && !options.fullRead ? { trust, tags: { get: (ref: string) => journalTag(state, ref, trust) } } : undefined;
  const converted = state ? convertedImages(state) : undefined;
  const knownRepositories = state ? new Set([...state.tags.keys()].map((ref) => splitRef(ref).repository)) : undefined;
  const push = await pushStorage(destination, {
    ...options,
    dryRun: false,
    checkDelete: options.deleteExtra === 'apply',
    ...(journal ? { journal } : {}),
    ...(converted?.size ? { converted } : {}),
    ...(knownRepositories?.size ? { knownRepositories } : {}),
  });
  const deletions: Deletion[] = [];
  if (!state || !options.statePath) return { push, deletions, saveJournal: () => undefined };

  const now = new Date().toISOString();
  const present = new Set<string>();
  for (const report of push.reports) {
    if (!report.destination || !report.digest) continue;
    present.add(report.destination);
    if (report.status === 'verified' || report.status === 'skipped-existing') {
      const previous = state.tags.get(report.destination);
      const destinationDigest = report.convertedTo ?? (report.status === 'skipped-existing' ? (previous?.destinationDigest ?? null) : null);
      // Unchanged: the entry stays as it is (a no-op sync of 200,000 tags makes no new ones), unless it lacks the
      // report row's fields (an older journal) and this run read them.
      const complete = previous?.mediaType !== null || report.mediaType === undefined;
      if (report.status === 'skipped-existing' && previous && complete && previous.source === report.source && previous.digest === report.digest && previous.destinationDigest === destinationDigest) {
        previous.goneFromSourceAt = null;
        continue;
      }
      state.tags.set(report.destination, {
        source: report.source,
        digest: report.digest,
        destinationDigest,
        verifiedAt: report.status === 'verified' ? now : (previous?.verifiedAt ?? now),
        goneFromSourceAt: null,
        mediaType: report.mediaType ?? null,
        size: report.mediaType === undefined ? null : report.size,
        subject: report.subject ?? null,
        more: previous?.more,
      });
    }
  }
  // An interrupted run may not have read everything: nothing is taken for gone after it. Nor after a read that met
  // any fault (an unreadable directory or link, a cut tar): a tag missing from a storage read in part is not gone.
  const file = options.statePath;
  if (push.interrupted) return { push, deletions, saveJournal: () => saveState(file, state) };
  const notWhole = sourceReadFaults(push);
  if (notWhole) {
    return { push, deletions, ...(options.deleteExtra !== 'no' ? { deletionsWithheld: notWhole } : {}), saveJournal: () => saveState(file, state) };
  }
  // Faulty source tags still exist in the source: they are not "gone", even without a destination name.
  // Tags a selection left out are still in the source: not "gone" either.
  const sourceTags = push.source.seen;
  const tagRules = options.tags;
  const selected = makeRepositoryFilter(options);
  const shard = options.shard;
  const gone: Array<[string, StateEntry]> = [];
  // The journal's tags this run looked at: what the share limit is a share of.
  let migrated = 0;
  for (const [ref, entry] of state.tags) {
    const sourceRepository = splitRef(entry.source).repository;
    // Gone means: this run looked where the tag was, could read it all, and did not find it. Not selected, in
    // another shard, or under a directory that could not be read is "not looked at", never "gone".
    if (!selected(sourceRepository)) continue;
    if (shard && !inShard(splitRef(ref).repository, shard)) continue;
    // A tag whose name the selection would not take is not this run's business, gone or not.
    if (tagRules && !nameSelected(splitRef(entry.source).tag, tagRules)) continue;
    // An untagged source manifest (`repo@sha256:…`, kept under a tag by --tag-untagged) is looked for only by a run
    // that reads untagged manifests: without --include-untagged it is not gone, merely not looked at.
    if (!options.includeUntagged && entry.source.includes('@')) continue;
    migrated++;
    if (present.has(ref) || sourceTags.has(entry.source)) continue;
    entry.goneFromSourceAt ??= now;
    if (options.deleteExtra !== 'no') gone.push([ref, entry]);
  }
  // The plan first, for every gone tag: a dry run promises only what --yes will do.
  const planned = await planDeletions(destination, gone.map(([ref, entry]) => ({ ref, digest: entry.destinationDigest ?? entry.digest, source: entry.source })), push.source.storage);
  const apply = options.deleteExtra === 'apply';
  const doomed = planned.filter((d) => d.status === 'would-delete').length;
  const limit = deletionLimit(options.maxDelete, migrated);
  if (doomed > limit.n) {
    // A mass deletion is never an accident of a bad run: it takes an explicit, large enough --max-delete.
    const reason = `not deleted: this run would delete ${count(doomed, 'tag')}, more than ${limit.text}; check the source, then give --max-delete ${doomed} to allow it`;
    for (const d of planned) deletions.push(d.status !== 'would-delete' ? d : apply ? { ...d, status: 'failed', reason, overLimit: limit.text } : { ...d, overLimit: limit.text });
  } else {
    deletions.push(...(apply ? await applyDeletions(destination, planned) : planned));
  }
  // Deleted, or no longer ours: out of the journal. A tag kept for the tags sharing its manifest stays in it.
  for (const d of deletions) if (d.status === 'deleted' || (d.status === 'kept' && !d.sharedWith)) state.tags.delete(d.destination);
  return { push, deletions, saveJournal: () => saveState(file, state) };
}


/** The most tags one run may delete, and how to name that limit. */
function deletionLimit(explicit: number | undefined, migrated: number): { n: number; text: string } {
  if (explicit !== undefined) return { n: explicit, text: `--max-delete ${explicit}` };
  const share = Math.floor(migrated * DEFAULT_MAX_DELETE_SHARE);
  if (share < DEFAULT_MAX_DELETE) return { n: share, text: `half of the ${count(migrated, 'tag')} the journal holds for this selection (the limit without --max-delete)` };
  return { n: DEFAULT_MAX_DELETE, text: `--max-delete ${DEFAULT_MAX_DELETE} (the default)` };
}

/**
 * Why this run's read of the source was not whole, or undefined when it was: any directory that could not be
 * listed (a cut tar is one, at the root) and any tag whose files could not be read.
 */
function sourceReadFaults(push: PushResult): string | undefined {
  const { readFaults, faults } = push.source;
  if (readFaults.length === 0 && faults.unreadable === 0) return undefined;
  const parts = [readFaults.length ? count(readFaults.length, 'unreadable directory', 'unreadable directories') : '', faults.unreadable ? count(faults.unreadable, 'unreadable tag') : ''].filter(Boolean);
  const first = readFaults[0] ? `: ${describeReadFault(readFaults[0])}` : '';
  return `no tag is taken for gone: the source was not read whole (${parts.join(', ')})${first}`;
}

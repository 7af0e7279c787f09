import { lstatSync } from 'node:fs';
import path from 'node:path';
import { errorMessage } from '../errors.js';
import { canDelete } from '../harbor/access.js';
import { readIncomplete, splitRef, tagRef } from '../inventory/types.js';
import { inShard } from '../plan/shard.js';
import { nameSelected } from '../inventory/select.js';
import { convertedImages, loadState, saveState, trustedDigest, type StateEntry, type SyncState } from './sync-state.js';
import { makeRepositoryFilter } from '../util/glob.js';
import { count } from '../util/format.js';
import type { Destination } from './destination.js';
import { pushStorage, type PushOptions, type PushResult } from './push.js';

export type DeleteMode = 'no' | 'plan' | 'apply';

export interface SyncOptions extends Omit<PushOptions, 'dryRun' | 'trusted'> {
  /** The journal file (`--state`); without one, nothing is remembered between runs. */
  readonly statePath: string | undefined;
  /** Skip the destination query for tags whose source digest is the journal's (`--trust-state`). */
  readonly trustState: boolean;
  readonly deleteExtra: DeleteMode;
  /** Refuse a run that would delete more tags than this (`--max-delete`, default 100). */
  readonly maxDelete?: number;
}

export const DEFAULT_MAX_DELETE = 100;

/** `absent` only on ENOENT: any other answer (EACCES, EIO, ESTALE) is not proof that the tag is gone. */
export function sourceLinkState(v2: string, source: string): 'absent' | 'present' | string {
  const { repository, tag } = splitRef(source);
  const link = tag.startsWith('sha256:')
    ? path.join(v2, 'repositories', repository, '_manifests', 'revisions', 'sha256', tag.slice(7), 'link')
    : path.join(v2, 'repositories', repository, '_manifests', 'tags', tag, 'current', 'link');
  try {
    lstatSync(link);
    return 'present';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    return code === 'ENOENT' ? 'absent' : code;
  }
}

export interface Deletion {
  readonly destination: string;
  readonly digest: string;
  readonly source: string;
  readonly status: 'would-delete' | 'deleted' | 'failed' | 'kept';
  readonly reason?: string;
}

export interface SyncResult {
  readonly push: PushResult;
  readonly deletions: readonly Deletion[];
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
  // Views of the journal, not copies of it: a tag's digest when it is not gone, and converted images.
  const trusted = options.trustState && state ? { get: (ref: string) => trustedDigest(state, ref) } : undefined;
  const converted = state ? convertedImages(state) : undefined;
  const knownRepositories = state ? new Set([...state.tags.keys()].map((ref) => splitRef(ref).repository)) : undefined;
  const push = await pushStorage(destination, {
    ...options,
    dryRun: false,
    ...(trusted ? { trusted } : {}),
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
      // Unchanged: the entry stays as it is (a no-op sync of 200,000 tags makes no new ones).
      if (report.status === 'skipped-existing' && previous && previous.source === report.source && previous.digest === report.digest && previous.destinationDigest === destinationDigest) {
        previous.goneFromSourceAt = null;
        continue;
      }
      state.tags.set(report.destination, {
        source: report.source,
        digest: report.digest,
        destinationDigest,
        verifiedAt: report.status === 'verified' ? now : (previous?.verifiedAt ?? now),
        goneFromSourceAt: null,
        more: previous?.more,
      });
    }
  }
  // An interrupted run may not have read everything: nothing is taken for gone after it.
  const file = options.statePath;
  if (push.interrupted) return { push, deletions, saveJournal: () => saveState(file, state) };
  // Faulty source tags still exist in the source: they are not "gone", even without a destination name.
  // Tags a selection left out are still in the source: not "gone" either.
  const sourceTags = push.source.seen;
  const tagRules = options.tags;
  const selected = makeRepositoryFilter(options);
  const shard = options.shard;
  const deleteRights = new Map<string, Promise<boolean | undefined>>();
  const gone: Array<[string, StateEntry]> = [];
  for (const [ref, entry] of state.tags) {
    const sourceRepository = splitRef(entry.source).repository;
    // Gone means: this run looked where the tag was, could read it all, and did not find it. Not selected, in
    // another shard, or under a directory that could not be read is "not looked at", never "gone".
    if (present.has(ref) || sourceTags.has(entry.source) || !selected(sourceRepository)) continue;
    if (shard && !inShard(splitRef(ref).repository, shard)) continue;
    // A tag whose name the selection would not take is not this run's business, gone or not.
    if (tagRules && !nameSelected(splitRef(entry.source).tag, tagRules)) continue;
    if (readIncomplete(push.source.readFaults, sourceRepository)) continue;
    entry.goneFromSourceAt ??= now;
    if (options.deleteExtra !== 'no') gone.push([ref, entry]);
  }
  const apply = options.deleteExtra === 'apply';
  const maxDelete = options.maxDelete ?? DEFAULT_MAX_DELETE;
  if (apply && gone.length > maxDelete) {
    // A mass deletion is never an accident of a bad run: it takes an explicit, large enough --max-delete.
    const reason = `not deleted: this run would delete ${count(gone.length, 'tag')}, more than --max-delete ${maxDelete}; check the source, then give --max-delete ${gone.length} to allow it`;
    for (const [ref, entry] of gone) deletions.push({ destination: ref, digest: entry.destinationDigest ?? entry.digest, source: entry.source, status: 'failed', reason });
  } else {
    for (const [ref, entry] of gone) {
      // What the destination holds: the source digest, or its conversion.
      const deletion = await deleteGoneTag(destination, ref, entry.destinationDigest ?? entry.digest, entry.source, apply, deleteRights, push.source.root);
      deletions.push(deletion);
      if (deletion.status === 'deleted' || deletion.status === 'kept') state.tags.delete(ref);
    }
  }
  return { push, deletions, saveJournal: () => saveState(file, state) };
}

async function deleteGoneTag(destination: Destination, ref: string, digest: string, source: string, apply: boolean, rights: Map<string, Promise<boolean | undefined>>, v2: string): Promise<Deletion> {
  const { repository, tag } = splitRef(ref);
  const base = { destination: ref, digest, source };
  // Right before deleting, look once more at the source link itself: absent, not merely unreadable or back.
  const link = sourceLinkState(v2, source);
  if (link !== 'absent') return { ...base, status: 'kept', reason: link === 'present' ? 'the source tag is back' : `the source link cannot be read (${link})` };
  try {
    // On Harbor through the API: no pull recorded, no 412 from a pull policy.
    const current = destination.harbor ? (await destination.harbor.getArtifact(repository, tag))?.digest : (await destination.client.probeManifest(repository, tag))?.digest;
    // Gone already, or re-pointed by someone else since: not ours to delete any more.
    if (current !== digest) return { ...base, status: 'kept', reason: current ? `now points at ${current}` : 'already absent' };
    if (!apply) return { ...base, status: 'would-delete' };
    // The delete right first (maintainer and up on Harbor): a refusal says so before anything is touched.
    let right = rights.get(repository);
    if (!right) rights.set(repository, (right = canDelete(destination.client.auth, repository).catch(() => undefined)));
    if ((await right) === false) {
      const project = repository.split('/')[0]!;
      const user = destination.credentials?.username ?? 'anonymous';
      return { ...base, status: 'failed', reason: `${user} may not delete tags in project "${project}": deleting needs the maintainer role or higher` };
    }
    if (destination.harbor) {
      await destination.harbor.deleteTag(repository, digest, tag);
      return { ...base, status: 'deleted' };
    }
    // A plain registry deletes manifests, not tags: only when no other tag shares the digest.
    const others = [];
    for (const other of await destination.client.listTags(repository)) {
      if (other === tag) continue;
      const h = await destination.client.probeManifest(repository, other);
      if (h?.digest === digest) others.push(other);
    }
    if (others.length > 0) return { ...base, status: 'failed', reason: `tags ${others.join(', ')} share its digest; a plain registry can only delete the manifest` };
    await destination.client.deleteManifest(repository, digest);
    return { ...base, status: 'deleted' };
  } catch (err) {
    return { ...base, status: 'failed', reason: errorMessage(err) };
  }
}

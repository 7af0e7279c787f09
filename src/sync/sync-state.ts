import { writeFileAtomic } from '../util/files.js';
import { z } from 'zod';
import { UsageError } from '../errors.js';
import { JsonMembersError, readJsonMembers } from '../util/json-members.js';

export const SYNC_STATE_VERSION = 1;

const StateEntryFile = z.looseObject({
  source: z.string(),
  digest: z.string(),
  /** Set when the destination holds a conversion of the source image (schema1 → schema2). */
  destinationDigest: z.string().nullable().optional(),
  verifiedAt: z.string(),
  goneFromSourceAt: z.string().nullable().optional(),
});

/** What was verified at one destination tag; one shape for all (a journal holds one per tag, 200,000 at scale). */
export interface StateEntry {
  readonly source: string;
  readonly digest: string;
  /** Set when the destination holds a conversion of the source image (schema1 → schema2). */
  readonly destinationDigest: string | null;
  readonly verifiedAt: string;
  goneFromSourceAt: string | null;
  /** Fields a newer regmigrate wrote that this one does not know: kept, and written back. */
  readonly more: Readonly<Record<string, unknown>> | undefined;
}

const KNOWN_FIELDS = new Set(['source', 'digest', 'destinationDigest', 'verifiedAt', 'goneFromSourceAt']);

const SyncStateHead = z.looseObject({
  schemaVersion: z.literal(SYNC_STATE_VERSION),
  kind: z.literal('regmigrate.sync-state'),
  destination: z.string(),
  /** How the destination was reached (`http://…` or `https://…`), since journals record it. */
  destinationUrl: z.string().optional(),
  updatedAt: z.string(),
  tags: z.record(z.string(), z.unknown()),
});
export type SyncState = Omit<z.infer<typeof SyncStateHead>, 'tags'> & {
  /** destination `repo:tag` → what was verified there. */
  tags: Map<string, StateEntry>;
};

export function emptyState(destination: string): SyncState {
  return { schemaVersion: SYNC_STATE_VERSION, kind: 'regmigrate.sync-state', destination, updatedAt: new Date(0).toISOString(), tags: new Map() };
}

/**
 * The journal of the last syncs; a missing file is an empty journal, a broken one a clear error. Read an entry at a
 * time (util/json-members.ts) into entries of one shape: a tag's source is the tag's own name string when they are
 * equal, and the timestamps of one run are one string.
 */
export function loadState(file: string, destination: string): SyncState {
  const bad = (why: string): UsageError => new UsageError(`--state ${file}: not a regmigrate sync journal (${why})`);
  const head: Record<string, unknown> = {};
  const tags = new Map<string, StateEntry>();
  const times = new Map<string, string>();
  const once = (t: string): string => times.get(t) ?? (times.set(t, t), t);
  try {
    for (const [where, key, value] of readJsonMembers(file, 'tags')) {
      if (where === 'top') {
        head[key] = value;
        continue;
      }
      const checked = StateEntryFile.safeParse(value);
      if (!checked.success) throw bad(`${key}: ${checked.error.issues[0]?.message ?? 'invalid'}`);
      const e = value as z.infer<typeof StateEntryFile>;
      let more: Record<string, unknown> | undefined;
      for (const field of Object.keys(e)) if (!KNOWN_FIELDS.has(field)) (more ??= {})[field] = e[field];
      tags.set(key, {
        source: e.source === key ? key : e.source,
        digest: e.digest,
        destinationDigest: e.destinationDigest ?? null,
        verifiedAt: once(e.verifiedAt),
        goneFromSourceAt: e.goneFromSourceAt ? once(e.goneFromSourceAt) : null,
        more,
      });
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return emptyState(destination);
    if (err instanceof JsonMembersError) throw new UsageError(`--state ${file}: ${err.message}`, 'remove it to start a fresh journal (the next sync asks the destination)');
    throw new UsageError(`--state ${file}: cannot be read (${code ?? 'error'})`);
  }
  const parsed = SyncStateHead.safeParse(head);
  if (!parsed.success) throw bad(parsed.error.issues[0]?.message ?? 'invalid');
  if (parsed.data.destination !== destination) {
    throw new UsageError(`--state ${file} is the journal of ${parsed.data.destination}, not of ${destination}`, 'use one state file per destination');
  }
  return { ...parsed.data, tags };
}

/** The digest the journal says the destination holds at `ref`, unless the source lost the tag since. */
export function trustedDigest(state: SyncState, ref: string): string | undefined {
  const entry = state.tags.get(ref);
  return entry && !entry.goneFromSourceAt ? entry.digest : undefined;
}

/** Source digest → destination digest of the images converted earlier (schema1 → schema2). */
export function convertedImages(state: SyncState): Map<string, string> {
  const converted = new Map<string, string>();
  for (const e of state.tags.values()) if (e.destinationDigest) converted.set(e.digest, e.destinationDigest);
  return converted;
}

/**
 * Written whole or not at all (flushed, then renamed): a crash never leaves half a journal. Written an entry at a
 * time, in the layout JSON.stringify(…, null, 1) gives: a 200,000-tag journal is never one string in memory.
 */
export function saveState(file: string, state: SyncState): void {
  const { tags, ...head } = { ...state, updatedAt: new Date().toISOString() };
  writeFileAtomic(file, journalPieces(head, tags), '--state');
}

function* journalPieces(head: Omit<SyncState, 'tags'>, tags: ReadonlyMap<string, StateEntry>): Generator<string> {
  const headText = JSON.stringify(head, null, 1);
  yield headText.slice(0, -2) + ',\n "tags": {';
  let first = true;
  for (const [ref, { more, ...entry }] of tags) {
    const body = JSON.stringify({ ...entry, ...more }, null, 1).replace(/\n/g, '\n  ');
    yield `${first ? '' : ','}\n  ${JSON.stringify(ref)}: ${body}`;
    first = false;
  }
  yield first ? '}\n}\n' : '\n }\n}\n';
}

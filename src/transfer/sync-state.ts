import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/files.js';
import { z } from 'zod';
import { UsageError } from '../errors.js';

export const SYNC_STATE_VERSION = 1;

const StateEntry = z.looseObject({ // the shape entryProblem checks
  source: z.string(),
  digest: z.string(),
  /** Set when the destination holds a conversion of the source image (schema1 → schema2). */
  destinationDigest: z.string().nullable().optional(),
  verifiedAt: z.string(),
  goneFromSourceAt: z.string().nullable().optional(),
});
export type StateEntry = z.infer<typeof StateEntry>;

/** The journal's head; its entries are checked one by one (a 200,000-entry record parsed by zod is copied whole). */
const SyncStateHead = z.looseObject({
  schemaVersion: z.literal(SYNC_STATE_VERSION),
  kind: z.literal('regmigrate.sync-state'),
  destination: z.string(),
  updatedAt: z.string(),
  tags: z.record(z.string(), z.unknown()),
});
export type SyncState = Omit<z.infer<typeof SyncStateHead>, 'tags'> & {
  /** destination `repo:tag` → what was verified there. */
  tags: Record<string, StateEntry>;
};

const nullableString = (v: unknown): boolean => v === undefined || v === null || typeof v === 'string';

/** An entry as written by saveState: checked in place, without a copy. */
function entryProblem(entry: unknown): string | undefined {
  if (typeof entry !== 'object' || entry === null) return 'an entry is not an object';
  const e = entry as Record<string, unknown>;
  for (const field of ['source', 'digest', 'verifiedAt']) if (typeof e[field] !== 'string') return `an entry's ${field} is not a string`;
  if (!nullableString(e.destinationDigest) || !nullableString(e.goneFromSourceAt)) return "an entry's destinationDigest or goneFromSourceAt is not a string or null";
  return undefined;
}

export function emptyState(destination: string): SyncState {
  return { schemaVersion: SYNC_STATE_VERSION, kind: 'regmigrate.sync-state', destination, updatedAt: new Date(0).toISOString(), tags: {} };
}

/** The journal of the last syncs; a missing file is an empty journal, a broken one a clear error. */
export function loadState(file: string, destination: string): SyncState {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState(destination);
    throw new UsageError(`--state ${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError(`--state ${file}: not valid JSON`, 'remove it to start a fresh journal (the next sync asks the destination)');
  }
  const parsed = SyncStateHead.safeParse(json);
  if (!parsed.success) throw new UsageError(`--state ${file}: not a regmigrate sync journal (${parsed.error.issues[0]?.message ?? 'invalid'})`);
  if (parsed.data.destination !== destination) {
    throw new UsageError(`--state ${file} is the journal of ${parsed.data.destination}, not of ${destination}`, 'use one state file per destination');
  }
  // The entries of the parsed JSON itself (zod's result is a copy): checked, then used as they are.
  const tags = (json as { tags: Record<string, unknown> }).tags;
  for (const [ref, entry] of Object.entries(tags)) {
    const problem = entryProblem(entry);
    if (problem) throw new UsageError(`--state ${file}: not a regmigrate sync journal (${ref}: ${problem})`);
  }
  return { ...parsed.data, tags: tags as Record<string, StateEntry> };
}

/**
 * Written whole or not at all (flushed, then renamed): a crash never leaves half a journal. Written an entry at a
 * time, in the layout JSON.stringify(…, null, 1) gives: a 200,000-tag journal is never one string in memory.
 */
export function saveState(file: string, state: SyncState): void {
  const { tags, ...head } = { ...state, updatedAt: new Date().toISOString() };
  writeFileAtomic(file, journalPieces(head, tags), '--state');
}

function* journalPieces(head: Omit<SyncState, 'tags'>, tags: Record<string, StateEntry>): Generator<string> {
  const headText = JSON.stringify(head, null, 1);
  yield headText.slice(0, -2) + ',\n "tags": {';
  let first = true;
  for (const [ref, entry] of Object.entries(tags)) {
    const body = JSON.stringify(entry, null, 1).replace(/\n/g, '\n  ');
    yield `${first ? '' : ','}\n  ${JSON.stringify(ref)}: ${body}`;
    first = false;
  }
  yield first ? '}\n}\n' : '\n }\n}\n';
}

import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/files.js';
import { z } from 'zod';
import { UsageError } from '../errors.js';

export const SYNC_STATE_VERSION = 1;

const StateEntry = z.looseObject({
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
  // The entries of the parsed JSON itself are kept (zod's result is a copy, dropped at once): checked one by one.
  const tags = (json as { tags: Record<string, unknown> }).tags;
  for (const [ref, entry] of Object.entries(tags)) {
    const checked = StateEntry.safeParse(entry);
    if (!checked.success) throw new UsageError(`--state ${file}: not a regmigrate sync journal (${ref}: ${checked.error.issues[0]?.message ?? 'invalid'})`);
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

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

const SyncState = z.looseObject({
  schemaVersion: z.literal(SYNC_STATE_VERSION),
  kind: z.literal('regmigrate.sync-state'),
  destination: z.string(),
  updatedAt: z.string(),
  /** destination `repo:tag` → what was verified there. */
  tags: z.record(z.string(), StateEntry),
});
export type SyncState = z.infer<typeof SyncState>;

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
  const parsed = SyncState.safeParse(json);
  if (!parsed.success) throw new UsageError(`--state ${file}: not a regmigrate sync journal (${parsed.error.issues[0]?.message ?? 'invalid'})`);
  if (parsed.data.destination !== destination) {
    throw new UsageError(`--state ${file} is the journal of ${parsed.data.destination}, not of ${destination}`, 'use one state file per destination');
  }
  return parsed.data;
}

/** Written whole or not at all (flushed, then renamed): a crash never leaves half a journal. */
export function saveState(file: string, state: SyncState): void {
  writeFileAtomic(file, JSON.stringify({ ...state, updatedAt: new Date().toISOString() }, null, 1) + '\n', '--state');
}

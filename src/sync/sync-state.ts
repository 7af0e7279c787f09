import { writeFileAtomic } from '../util/files.js';
import * as z from 'zod';
import { UsageError } from '../errors.js';
import { JsonMembersError, readJsonMembers } from '../util/json-members.js';
import type { JournalTag } from '../inventory/types.js';

export const SYNC_STATE_VERSION = 1;

/** A journal entry as the file holds it (fields a newer regmigrate added pass through, into `more`). */
interface StateEntryFile {
  readonly source: string;
  readonly digest: string;
  /** Set when the destination holds a conversion of the source image (schema1 → schema2). */
  readonly destinationDigest?: string | null;
  readonly verifiedAt: string;
  readonly goneFromSourceAt?: string | null;
  /** The report row's fields, so that a tag whose link is unchanged need not be read (absent in older journals). */
  readonly mediaType?: string | null;
  readonly size?: number | null;
  readonly subject?: string | null;
  readonly [more: string]: unknown;
}

const REQUIRED_TEXT = ['source', 'digest', 'verifiedAt'] as const;
const OPTIONAL_TEXT = ['destinationDigest', 'goneFromSourceAt', 'mediaType', 'subject'] as const;

/**
 * What is wrong with a journal entry, or undefined when it has the shape above. By hand rather than with a zod
 * schema: it runs once per tag of the journal on every sync (200,000 at scale), and a no-op sync of 2,000 tags
 * spent ~20% of its CPU in the schema's parse.
 */
function entryProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not an object';
  const e = value as Record<string, unknown>;
  for (const field of REQUIRED_TEXT) if (typeof e[field] !== 'string') return `${field}: ${e[field] === undefined ? 'missing' : 'not a string'}`;
  for (const field of OPTIONAL_TEXT) if (e[field] !== undefined && e[field] !== null && typeof e[field] !== 'string') return `${field}: not a string`;
  const size = e.size;
  if (size !== undefined && size !== null && !(typeof size === 'number' && Number.isSafeInteger(size) && size >= 0)) return 'size: not a whole number of bytes';
  return undefined;
}

/**
 * What was verified at one destination tag; one shape for all (a journal holds one per tag, 200,000 at scale).
 * `mediaType`, `size` and `subject` are the source image's, as its report row gave them (JournalTag).
 */
export interface StateEntry extends JournalTag {
  readonly source: string;
  readonly digest: string;
  /** Set when the destination holds a conversion of the source image (schema1 → schema2). */
  readonly destinationDigest: string | null;
  readonly verifiedAt: string;
  goneFromSourceAt: string | null;
  /** Fields a newer regmigrate wrote that this one does not know: kept, and written back. */
  readonly more: Readonly<Record<string, unknown>> | undefined;
}

const KNOWN_FIELDS = new Set(['source', 'digest', 'destinationDigest', 'verifiedAt', 'goneFromSourceAt', 'mediaType', 'size', 'subject']);

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
  // Timestamps of one run and media types: a few strings, each kept once.
  const shared = new Map<string, string>();
  const once = (t: string): string => shared.get(t) ?? (shared.set(t, t), t);
  try {
    for (const [where, key, value] of readJsonMembers(file, 'tags')) {
      if (where === 'top') {
        head[key] = value;
        continue;
      }
      const problem = entryProblem(value);
      if (problem) throw bad(`${key}: ${problem}`);
      const e = value as StateEntryFile;
      let more: Record<string, unknown> | undefined;
      for (const field of Object.keys(e)) if (!KNOWN_FIELDS.has(field)) (more ??= {})[field] = e[field];
      tags.set(key, {
        source: e.source === key ? key : e.source,
        digest: e.digest,
        destinationDigest: e.destinationDigest ?? null,
        verifiedAt: once(e.verifiedAt),
        goneFromSourceAt: e.goneFromSourceAt ? once(e.goneFromSourceAt) : null,
        mediaType: e.mediaType ? once(e.mediaType) : null,
        size: e.size ?? null,
        subject: e.subject ?? null,
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

/**
 * What the journal says the destination holds at `ref`, unless the source lost the tag since. Without `trust`, only
 * an entry that has what the tag's report row needs (an older journal's entries do not, until their tag is read once).
 */
export function journalTag(state: SyncState, ref: string, trust: boolean): JournalTag | undefined {
  const entry = state.tags.get(ref);
  if (!entry || entry.goneFromSourceAt) return undefined;
  return trust || (entry.mediaType !== null && entry.size !== null) ? entry : undefined;
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
  for (const [ref, { more, subject, ...entry }] of tags) {
    // Few images have a subject (signatures, attestations): the field is written only where there is one.
    const body = JSON.stringify({ ...entry, ...(subject !== null ? { subject } : {}), ...more }, null, 1).replace(/\n/g, '\n  ');
    yield `${first ? '' : ','}\n  ${JSON.stringify(ref)}: ${body}`;
    first = false;
  }
  yield first ? '}\n}\n' : '\n }\n}\n';
}

import { readJsonDocument } from '../util/read-json.js';
import { UsageError } from '../errors.js';
import { splitRef } from '../inventory/types.js';
import { PushReport, SyncJournal } from './schema.js';

/** What became of one source tag, as a report or the journal says. */
export interface MappedTag {
  readonly repository: string;
  readonly tag: string;
  /** The destination `repo:tag`; undefined when the name could not be mapped. */
  readonly destination: string | undefined;
  /** The source digest, and what the destination holds (another digest for a converted schema1 image). */
  readonly digest: string | undefined;
  readonly destinationDigest: string | undefined;
  readonly status: 'migrated' | 'failed';
  readonly reason: string | undefined;
}

/** The old → new map of every tag a run dealt with. */
export interface ReferenceMap {
  /** The registry the report or journal is of (the host images were pushed to). */
  readonly destinationHost: string;
  /** How that host was reached (`http://…`, `https://…`), when the report or journal says. */
  readonly destinationUrl: string | undefined;
  /** Source `repo:tag` → its fate. */
  readonly tags: ReadonlyMap<string, MappedTag>;
  /** Source repository → destination repository, from every tag that had a destination name. */
  readonly repositories: ReadonlyMap<string, string>;
}

const MIGRATED = new Set(['verified', 'skipped-existing']);

/** A push/sync report (`kind: regmigrate.push`) or a sync journal (`kind: regmigrate.sync-state`), told apart by kind. */
export function readReferenceMap(file: string): ReferenceMap {
  const hint = 'give the --report file (.json) of a push or sync, or the sync journal (--state)';
  const json = readJsonDocument(file, hint);
  const kind = json !== null && typeof json === 'object' ? (json as { kind?: unknown }).kind : undefined;
  if (kind === 'regmigrate.push') {
    const parsed = PushReport.safeParse(json);
    if (!parsed.success) throw new UsageError(`${file}: not a readable regmigrate report (${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message})`, hint);
    return fromReport(parsed.data);
  }
  if (kind === 'regmigrate.sync-state') {
    const parsed = SyncJournal.safeParse(json);
    if (!parsed.success) throw new UsageError(`${file}: not a readable regmigrate sync journal (${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message})`, hint);
    return fromJournal(parsed.data);
  }
  throw new UsageError(`${file}: neither a push/sync report nor a sync journal${typeof kind === 'string' ? ` (it is a ${kind} document)` : ''}`, hint);
}

function fromReport(report: PushReport): ReferenceMap {
  const tags = new Map<string, MappedTag>();
  const repositories = new Map<string, string>();
  for (const image of report.images) {
    const { repository, tag } = splitRef(image.source);
    if (!tag) continue;
    // Untagged manifests (`repo@sha256:…`) have no name anyone pulls by; one kept under a tag (--tag-untagged) is
    // still there after the destination's garbage collection, so a pull by its digest is migrated.
    if (image.source.includes('@')) {
      const kept = keptUntagged(image.source, image.destination ?? undefined, image.digest ?? undefined, image.convertedTo ?? undefined);
      if (kept && MIGRATED.has(image.status)) {
        tags.set(image.source, kept);
        repositories.set(repository, splitRef(image.destination!).repository);
      }
      continue;
    }
    const destination = image.destination ?? undefined;
    if (destination) repositories.set(repository, splitRef(destination).repository);
    const migrated = MIGRATED.has(image.status);
    tags.set(image.source, {
      repository,
      tag,
      destination,
      digest: image.digest ?? undefined,
      destinationDigest: image.convertedTo ?? image.digest ?? undefined,
      status: migrated ? 'migrated' : 'failed',
      reason: migrated ? undefined : (image.reason ?? image.status),
    });
  }
  return { destinationHost: report.destination, destinationUrl: report.destinationUrl, tags, repositories };
}

function fromJournal(journal: SyncJournal): ReferenceMap {
  const tags = new Map<string, MappedTag>();
  const repositories = new Map<string, string>();
  for (const [destination, entry] of Object.entries(journal.tags)) {
    const { repository, tag } = splitRef(entry.source);
    if (!tag) continue;
    if (entry.source.includes('@')) {
      const kept = keptUntagged(entry.source, destination, entry.digest, entry.destinationDigest ?? undefined);
      if (kept) {
        tags.set(entry.source, kept);
        repositories.set(repository, splitRef(destination).repository);
      }
      continue;
    }
    repositories.set(repository, splitRef(destination).repository);
    tags.set(entry.source, { repository, tag, destination, digest: entry.digest, destinationDigest: entry.destinationDigest ?? entry.digest, status: 'migrated', reason: undefined });
  }
  return { destinationHost: journal.destination, destinationUrl: journal.destinationUrl, tags, repositories };
}

/**
 * An untagged source manifest (`repo@sha256:…`) that went to the destination under a tag (`--tag-untagged`): mapped
 * to the destination repository by digest, the way a client pulling it by digest names it. Undefined when it went by
 * digest alone (the destination's garbage collection may take it).
 */
function keptUntagged(source: string, destination: string | undefined, digest: string | undefined, destinationDigest: string | undefined): MappedTag | undefined {
  if (!destination || destination.includes('@') || !digest) return undefined;
  const { repository } = splitRef(source);
  const at = destinationDigest ?? digest;
  return { repository, tag: digest, destination: `${splitRef(destination).repository}@${at}`, digest, destinationDigest: at, status: 'migrated', reason: undefined };
}

/** `host[:port]` as clients write it: no scheme, no path. */
export function checkHost(option: string, host: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(host)) return `${option} takes a host as image references name it (like old-registry:5000), not a URL: "${host}"`;
  if (!/^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?$/.test(host)) return `${option} "${host}" is not a registry host (host or host:port)`;
  return undefined;
}

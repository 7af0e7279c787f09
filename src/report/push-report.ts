import { writeFileAtomic } from '../util/files.js';
import { shortMediaType } from '../image/media-types.js';
import { destinationRef, planTotals, type Plan } from '../plan/plan.js';
import { quotaRoom } from '../plan/quota.js';
import { shortDigest } from '../storage/digest.js';
import type { PushResult, ImageReport } from '../push/push.js';
import { count, csvLine, formatBytes, formatDuration, formatRate, renderTable } from '../util/format.js';
import { UsageError } from '../errors.js';
import type { Endpoint } from '../registry/endpoint.js';
import { VERSION } from '../version.js';

export const PUSH_REPORT_VERSION = 1;

export interface PushCounts {
  readonly verified: number;
  readonly skipped: number;
  /** Destination tags an immutability rule keeps at another digest (Harbor): drift regmigrate may not fix. */
  readonly immutable: number;
  readonly failed: number;
  /** Not done because the run was stopped (SIGINT, SIGTERM): not done all the same, as failed ones. */
  readonly interrupted: number;
}

export function countReports(reports: readonly ImageReport[]): PushCounts {
  let verified = 0;
  let skipped = 0;
  let immutable = 0;
  let failed = 0;
  let interrupted = 0;
  for (const r of reports) {
    if (r.status === 'verified') verified++;
    else if (r.status === 'skipped-existing' || r.status === 'skipped') skipped++;
    else if (r.status === 'immutable') immutable++;
    else if (r.status === 'interrupted') interrupted++;
    else failed++;
  }
  return { verified, skipped, immutable, failed, interrupted };
}

/** Tags not done: failed or interrupted (exit status 1 when there are any). */
export function notDone(c: PushCounts): number {
  return c.failed + c.interrupted;
}

/**
 * A push's or sync's exit status from its images (docs/architecture.md, Exit codes): 1 when any is not done; 6 when
 * the only ones not done are tags Harbor's immutability rules keep at another digest; else 0.
 */
export function imagesExitCode(counts: PushCounts): 0 | 1 | 6 {
  if (notDone(counts) > 0) return 1;
  return counts.immutable > 0 ? 6 : 0;
}

/** The run a report is of: which command, from where to where, when, written by which regmigrate. */
export interface ReportRun {
  readonly command: 'push' | 'sync';
  /** The storage root (or tar) as given. */
  readonly source: string;
  /** The destination registry's host. */
  readonly destination: string;
  /** How it was reached (`http://…` or `https://…`): `report rewrites` says `insecure = true` for plain HTTP. */
  readonly destinationUrl?: string;
  /** ISO 8601 times. */
  readonly startedAt: string;
  readonly endedAt: string;
  readonly regmigrateVersion: string;
}

export function reportRun(command: 'push' | 'sync', result: PushResult, source: string, destination: Pick<Endpoint, 'host' | 'origin'>): ReportRun {
  const iso = (ms: number): string => new Date(ms).toISOString();
  return { command, source, destination: destination.host, destinationUrl: destination.origin, startedAt: iso(result.startedAt), endedAt: iso(result.startedAt + result.durationMs), regmigrateVersion: VERSION };
}

export function reportDocument(result: PushResult, run: ReportRun) {
  return {
    schemaVersion: PUSH_REPORT_VERSION,
    kind: 'regmigrate.push',
    ...run,
    via: result.via,
    harborVersion: result.harborVersion ?? null,
    durationMs: result.durationMs,
    summary: { ...countReports(result.reports), ...result.stats, requests: result.requests, retries: result.retries, projectsCreated: result.projectsCreated },
    images: result.reports.map(reportImageJson),
  };
}

/** One image of the report file, every field present (null when it does not apply). */
export function reportImageJson(r: ImageReport) {
  return {
    source: r.source,
    destination: r.destination ?? null,
    digest: r.digest ?? null,
    mediaType: r.mediaType ?? null,
    size: r.size,
    status: r.status,
    reason: r.reason ?? null,
    convertedTo: r.convertedTo ?? null,
    subject: r.subject ?? null,
    sourcePushedAt: isoOrNull(r.sourcePushedAt),
    destinationPushedAt: isoOrNull(r.destinationPushedAt),
  };
}

function isoOrNull(ms: number | undefined): string | null {
  return ms === undefined || !Number.isFinite(ms) ? null : new Date(ms).toISOString();
}

/** An image's columns, then the run's (the same on every row: a CSV has no other place for them). */
export const REPORT_CSV_HEADER = ['source', 'destination', 'digest', 'media_type', 'size', 'status', 'reason', 'converted_to', 'run_command', 'run_source', 'run_destination', 'run_started_at', 'run_ended_at', 'regmigrate_version', 'source_pushed_at', 'destination_pushed_at'];

export function reportCsv(reports: readonly ImageReport[], run: ReportRun): string {
  const runColumns = [run.command, run.source, run.destination, run.startedAt, run.endedAt, run.regmigrateVersion];
  let out = csvLine(REPORT_CSV_HEADER);
  for (const r of reports) out += csvLine([r.source, r.destination, r.digest, r.mediaType, r.size, r.status, r.reason, r.convertedTo, ...runColumns, isoOrNull(r.sourcePushedAt) ?? undefined, isoOrNull(r.destinationPushedAt) ?? undefined]);
  return out;
}

/** `--report FILE`: JSON or CSV by the file's extension. */
export function reportFormat(file: string): 'json' | 'csv' | undefined {
  if (/\.json$/i.test(file)) return 'json';
  if (/\.csv$/i.test(file)) return 'csv';
  return undefined;
}

export function writeReport(file: string, result: PushResult, run: ReportRun): void {
  const format = reportFormat(file);
  if (!format) throw new UsageError(`--report ${file}: the name must end in .json or .csv`);
  const text = format === 'json' ? JSON.stringify(reportDocument(result, run), null, 2) + '\n' : reportCsv(result.reports, run);
  writeFileAtomic(file, text, '--report');
}

/** Referrers (signatures, SBOMs) right under the image they refer to, marked with ↳. */
export function groupBySubject(reports: readonly ImageReport[]): Array<{ report: ImageReport; referrer: boolean }> {
  const repoOf = (ref: string | undefined): string => (ref ? ref.replace(/[:@][^:@/]*$/, '').replace(/@sha256$/, '') : '');
  const bySubject = new Map<string, ImageReport[]>();
  const subjects = new Set(reports.map((r) => `${repoOf(r.destination)}@${r.digest}`));
  const out: Array<{ report: ImageReport; referrer: boolean }> = [];
  for (const r of reports) {
    const key = r.subject ? `${repoOf(r.destination)}@${r.subject}` : undefined;
    if (key && subjects.has(key)) {
      const list = bySubject.get(key) ?? [];
      list.push(r);
      bySubject.set(key, list);
    }
  }
  const placed = new Set<ImageReport>([...bySubject.values()].flat());
  for (const r of reports) {
    if (placed.has(r)) continue;
    out.push({ report: r, referrer: false });
    const key = `${repoOf(r.destination)}@${r.digest}`;
    for (const child of bySubject.get(key) ?? []) out.push({ report: child, referrer: true });
    bySubject.delete(key);
  }
  return out;
}

export function renderImageTable(reports: readonly ImageReport[]): string {
  const rows = groupBySubject(reports).map(({ report: r, referrer }) => [
    referrer ? `  ↳ ${r.source}` : r.source,
    r.destination ?? '-',
    shortDigest(r.digest),
    shortMediaType(r.mediaType),
    r.status,
  ]);
  let out = renderTable(['SOURCE', 'DESTINATION', 'DIGEST', 'TYPE', 'STATUS'], rows);
  const failed = reports.filter((r) => r.status === 'failed');
  if (failed.length > 0) {
    out += '\nFailed:\n';
    for (const r of failed) out += `  ${r.source}: ${r.reason ?? 'failed'}\n`;
  }
  const immutable = reports.filter((r) => r.status === 'immutable');
  if (immutable.length > 0) {
    out += '\nImmutable (Harbor keeps these tags at another digest):\n';
    for (const r of immutable) out += `  ${r.source}: ${r.reason ?? 'immutable'}\n`;
  }
  const interrupted = reports.filter((r) => r.status === 'interrupted').length;
  if (interrupted > 0) out += `\nInterrupted: ${count(interrupted, 'image')} not finished when the run was stopped; run it again to finish them\n`;
  const notes = reports.filter((r) => r.status !== 'failed' && r.status !== 'immutable' && r.reason);
  if (notes.length > 0) {
    out += '\nNotes:\n';
    for (const r of notes) out += `  ${r.source}: ${r.reason}${r.convertedTo ? ` (now ${r.convertedTo})` : ''}\n`;
  }
  return out;
}

export function renderPushSummary(result: PushResult): string {
  const c = countReports(result.reports);
  const s = result.stats;
  const seconds = result.durationMs / 1000;
  const rate = seconds > 0 ? formatRate(s.bytesUploaded / seconds) : '-';
  const head = `${count(c.verified, 'image')} verified, ${c.skipped} already there, ${c.immutable ? `${c.immutable} immutable, ` : ''}${c.failed} failed${c.interrupted ? `, ${c.interrupted} interrupted` : ''}; `;
  const projects = result.projectsCreated.length ? `; projects created: ${result.projectsCreated.join(', ')}` : '';
  if (result.via === 'skopeo') return `${head}transferred by skopeo copy; ${formatDuration(result.durationMs)}${projects}`;
  return (
    head +
    `uploaded ${formatBytes(s.bytesUploaded)} (${count(s.blobsUploaded, 'blob')}), mounted ${formatBytes(s.bytesMounted)} (${count(s.blobsMounted, 'blob')}), ` +
    `skipped ${formatBytes(s.bytesSkipped)} (${count(s.blobsSkipped, 'blob')}); ${formatDuration(result.durationMs)}, ${rate}` +
    projects
  );
}

/** `account`: who the run pushes as (Harbor: the permissions table names it). */
export function renderPlan(plan: Plan, harbor: boolean, account?: string): string {
  const t = planTotals(plan);
  let out = '';
  if (harbor) out += `Projects to create: ${plan.projectsToCreate.length ? plan.projectsToCreate.join(', ') : 'none'}\n`;
  out += `Blobs to upload (unless already present): ${t.blobsToUpload}, ${formatBytes(t.bytesToUpload)}; cross-repository mounts: ${t.mounts}\n`;
  out += `Images to push: ${t.images}; already there: ${t.existing}; ${plan.immutable.length ? `immutable (kept at another digest): ${plan.immutable.length}; ` : ''}cannot be migrated: ${t.rejected}\n\n`;
  const rows = [
    ...plan.images.map((i) => [i.source, destinationRef(i), shortDigest(i.digest), shortMediaType(i.mediaType), formatBytes(i.size), i.subject ? `push (after ${shortDigest(i.subject)})` : 'push']),
    ...plan.existing.map((i) => [i.source, destinationRef(i), shortDigest(i.digest), shortMediaType(i.mediaType), formatBytes(i.size), 'skip (already there)']),
    ...plan.skipped.map((i) => [i.source, destinationRef(i), shortDigest(i.digest), shortMediaType(i.mediaType), formatBytes(i.size), 'skip (--schema1 skip)']),
    ...plan.immutable.map((i) => [i.source, destinationRef(i), shortDigest(i.digest), shortMediaType(i.mediaType), formatBytes(i.size), `immutable: holds ${shortDigest(i.current)}, kept by ${i.rule}`]),
    ...plan.rejected.map((r) => [r.source, r.destination ?? '-', shortDigest(r.digest), shortMediaType(r.mediaType), r.size ? formatBytes(r.size) : '-', `fail: ${r.reason}`]),
  ].sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
  out += renderTable(['SOURCE', 'DESTINATION', 'DIGEST', 'TYPE', 'SIZE', 'ACTION'], rows);
  if (harbor && plan.access.length > 0) out += '\n' + renderAccess(plan.access, account);
  if (harbor && plan.quotas.length > 0) out += '\n' + renderQuotas(plan.quotas);
  return out;
}

/** What the account must be allowed in each project, and what Harbor says it lacks. */
function renderAccess(access: Plan['access'], account: string | undefined): string {
  const rows = access.map((a) => [a.project, a.needs.join(', '), a.missing.length ? `MISSING: ${a.missing.join(', ')}` : 'ok']);
  return `Permissions ${account ?? 'the account'} needs:\n${renderTable(['PROJECT', 'NEEDS', 'CHECK'], rows)}`;
}

/** Each project's charge beside its quota: what the run adds to the project's usage, by Harbor's accounting. */
function renderQuotas(quotas: Plan['quotas']): string {
  const rows = quotas.map((q) => {
    const room = quotaRoom(q);
    const limit = q.limit === undefined ? 'unknown' : q.limit < 0 ? 'unlimited' : formatBytes(q.limit);
    const verdict = q.refused ? 'refused: over quota' : q.limit === undefined ? 'not checked (quota not readable)' : 'fits';
    return [q.project, formatBytes(q.charge), limit, q.used === undefined ? '-' : formatBytes(q.used), room === undefined ? '-' : formatBytes(room), verdict];
  });
  return `Storage quota (what this run adds to each project, as Harbor counts it):\n${renderTable(['PROJECT', 'ADDS', 'QUOTA', 'USED', 'LEFT', 'CHECK'], rows)}`;
}

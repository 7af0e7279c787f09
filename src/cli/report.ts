import type { Command } from 'commander';
import { renderPushHtml, type PushReportDocument } from '../report/html.js';
import { readJsonDocument } from '../util/read-json.js';
import * as z from 'zod';
import { UsageError } from '../errors.js';
import { count } from '../util/format.js';
import { countReports, notDone, renderImageTable, reportCsv, reportImageJson, PUSH_REPORT_VERSION, type ReportRun } from '../report/push-report.js';
import { imageReport, type ImageReport } from '../push/push.js';
import type { CliContext } from './context.js';
import { registerCutoverReports } from './cutover.js';

const ReportImage = z.looseObject({
  source: z.string(),
  destination: z.string().nullable(),
  digest: z.string().nullable(),
  mediaType: z.string().nullable(),
  size: z.number(),
  status: z.enum(['verified', 'skipped-existing', 'skipped', 'immutable', 'failed', 'interrupted']),
  reason: z.string().nullable(),
  convertedTo: z.string().nullable().optional(),
  subject: z.string().nullable().optional(),
  sourcePushedAt: z.string().nullable().optional(),
  destinationPushedAt: z.string().nullable().optional(),
});

const PushReport = z.looseObject({
  schemaVersion: z.literal(PUSH_REPORT_VERSION),
  kind: z.literal('regmigrate.push'),
  destination: z.string(),
  // The run's facts, in reports written since they were added.
  destinationUrl: z.string().optional(),
  command: z.enum(['push', 'sync']).optional(),
  source: z.string().optional(),
  startedAt: z.string().optional(),
  endedAt: z.string().optional(),
  regmigrateVersion: z.string().optional(),
  summary: z.looseObject({ bytesUploaded: z.number().optional(), bytesMounted: z.number().optional(), blobsUploaded: z.number().optional() }),
  images: z.array(ReportImage),
});
type PushReport = z.infer<typeof PushReport>;

/** Reads a push or sync report for `report merge` and `report html`: one message and one hint for what is not one. */
function readReport(file: string): PushReport {
  const hint = 'give the --report file (.json) of a push or sync';
  const json = readJsonDocument(file, hint);
  // Another of our documents (a scan, a diff, a plan) is named for what it is, not by a schema message.
  const head = json !== null && typeof json === 'object' ? (json as { kind?: unknown; schemaVersion?: unknown }) : {};
  if (typeof head.kind === 'string' && head.kind !== 'regmigrate.push') throw new UsageError(`${file}: not a regmigrate push report (it is a ${head.kind} document)`, hint);
  if (head.kind === 'regmigrate.push' && head.schemaVersion !== PUSH_REPORT_VERSION) {
    throw new UsageError(`${file}: a push report of schemaVersion ${JSON.stringify(head.schemaVersion)}, which this version cannot read (it reads ${PUSH_REPORT_VERSION})`);
  }
  const parsed = PushReport.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const what = issue.code === 'invalid_type' ? `expected ${issue.expected}` : issue.code === 'invalid_value' ? `expected ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}` : 'not a valid value';
    throw new UsageError(`${file}: not a regmigrate push report (${issue.path.join('.') || 'the document'}: ${what})`, hint);
  }
  return parsed.data;
}

function toImageReport(i: z.infer<typeof ReportImage>): ImageReport {
  return imageReport({
    source: i.source,
    destination: i.destination ?? undefined,
    digest: i.digest ?? undefined,
    mediaType: i.mediaType ?? undefined,
    size: i.size,
    status: i.status,
    reason: i.reason || undefined,
    convertedTo: i.convertedTo || undefined,
    subject: i.subject || undefined,
    sourcePushedAt: i.sourcePushedAt ? Date.parse(i.sourcePushedAt) : undefined,
    destinationPushedAt: i.destinationPushedAt ? Date.parse(i.destinationPushedAt) : undefined,
  });
}

interface Seen {
  readonly index: number;
  readonly file: string;
  /** The report's place among the arguments, and when its run ended (or started). */
  readonly order: number;
  readonly time: string | undefined;
}

/** When a report's run ended (or, for one cut short before writing it, started); ISO 8601, so it sorts as text. */
function runTime(report: PushReport): string | undefined {
  return report.endedAt || report.startedAt || undefined;
}

/**
 * Whether `next`, a report of the same tag and digest as `kept`, replaces it: a verified one beats any other
 * status; between two of the same standing the later run wins, by the reports' times when both have one, else by
 * the order of the arguments.
 */
function supersedes(next: { image: ImageReport; order: number; time: string | undefined }, kept: { image: ImageReport; order: number; time: string | undefined }): boolean {
  const verified = (i: ImageReport): boolean => i.status === 'verified';
  if (verified(next.image) !== verified(kept.image)) return verified(next.image);
  if (next.time !== undefined && kept.time !== undefined && next.time !== kept.time) return next.time > kept.time;
  return next.order > kept.order;
}

/** The merged run: the earliest start, the latest end, every source and version (once each). */
function mergedRun(reports: readonly PushReport[], destination: string): ReportRun {
  const all = (values: Array<string | undefined>): string => [...new Set(values.filter((v): v is string => v !== undefined))].sort().join(' ');
  const times = (key: 'startedAt' | 'endedAt'): string[] => reports.map((r) => r[key]).filter((t): t is string => t !== undefined).sort();
  // Kept when the reports agree on how the destination was reached.
  const urls = [...new Set(reports.map((r) => r.destinationUrl).filter((u): u is string => u !== undefined))];
  return {
    command: reports.every((r) => r.command === 'sync') ? 'sync' : 'push',
    source: all(reports.map((r) => r.source)),
    destination,
    ...(urls.length === 1 ? { destinationUrl: urls[0] } : {}),
    startedAt: times('startedAt')[0] ?? '',
    endedAt: times('endedAt').at(-1) ?? '',
    regmigrateVersion: all(reports.map((r) => r.regmigrateVersion)),
  };
}

/**
 * `report merge`: the reports of several shards (or runs) as one verified image list. Shards are disjoint, so a
 * destination tag appearing twice means the shards overlapped: a conflict (different digests) is an error, named
 * with both files, and the tag counts as failed (which digest it holds depends on which shard pushed last). The
 * same digest twice is a re-run: a verified report of it wins, otherwise the later run's (whatever the order of
 * the files).
 */
export function mergeReports(files: readonly string[]): { destination: string; run: ReportRun; images: ImageReport[]; conflicts: string[] } {
  const reports = files.map(readReport);
  const destinations = new Set(reports.map((r) => r.destination));
  if (destinations.size > 1) throw new UsageError(`the reports are of different destinations: ${[...destinations].join(', ')}`);
  // Destination tag → where its report is in `images`, and the file and run it came from.
  const byDestination = new Map<string, Seen>();
  const conflicts: string[] = [];
  const images: ImageReport[] = [];
  for (const [n, report] of reports.entries()) {
    const file = files[n]!;
    for (const i of report.images) {
      const image = toImageReport(i);
      const key = image.destination ?? image.source;
      const seen = byDestination.get(key);
      if (seen) {
        const first = images[seen.index]!;
        if (first.digest !== image.digest) {
          const conflict = `${key}: ${first.digest ?? '-'} in ${seen.file}, ${image.digest ?? '-'} in ${file}`;
          conflicts.push(conflict);
          images[seen.index] = imageReport({ ...first, status: 'failed', reason: `conflict: ${conflict}` });
        } else if (supersedes({ image, order: n, time: runTime(report) }, { image: first, order: seen.order, time: seen.time })) {
          images[seen.index] = image;
          byDestination.set(key, { ...seen, file, order: n, time: runTime(report) });
        }
        continue;
      }
      byDestination.set(key, { index: images.length, file, order: n, time: runTime(report) });
      images.push(image);
    }
  }
  images.sort((a, b) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
  const destination = [...destinations][0] ?? '';
  return { destination, run: mergedRun(reports, destination), images, conflicts };
}

export function registerReport(program: Command, ctx: CliContext): void {
  const report = program.command('report').description('work with report files');
  report
    .command('merge')
    .description("merge push/sync reports (e.g. of the shards of an Indexed Job) into one verified image list")
    .argument('<files...>', 'report files written with --report FILE.json')
    .option('-o, --output <format>', 'table, json or csv (default json)')
    .action((files: string[], flags: { output?: string }) => {
      const output = flags.output ?? 'json';
      if (!['table', 'json', 'csv'].includes(output)) throw new UsageError(`--output must be table, json or csv, not "${output}"`);
      const merged = mergeReports(files);
      const counts = countReports(merged.images);
      if (output === 'json') {
        ctx.stdout.write(
          JSON.stringify(
            { schemaVersion: PUSH_REPORT_VERSION, kind: 'regmigrate.push', ...merged.run, mergedFrom: files.length, summary: counts, images: merged.images.map(reportImageJson) },
            null,
            2,
          ) + '\n',
        );
      } else if (output === 'csv') {
        ctx.stdout.write(reportCsv(merged.images, merged.run));
      } else {
        ctx.stdout.write(renderImageTable(merged.images));
      }
      for (const conflict of merged.conflicts) ctx.stderr.write(`regmigrate: conflict: ${conflict}\n`);
      ctx.stderr.write(`${count(files.length, 'report')}: ${counts.verified} verified, ${counts.skipped} already there or skipped, ${counts.failed} failed${counts.interrupted ? `, ${counts.interrupted} interrupted` : ''}\n`);
      ctx.setExitCode(notDone(counts) > 0 || merged.conflicts.length > 0 ? 1 : 0);
    });
  report
    .command('html')
    .description('render a push or sync report (--report FILE.json) as one self-contained HTML page')
    .argument('<file>', 'a report written with --report FILE.json')
    .action((file: string) => {
      const report = readReport(file);
      // The counts the file's summary holds, else those of its images.
      const doc: PushReportDocument = { ...report, summary: { ...countReports(report.images.map(toImageReport)), ...report.summary } };
      ctx.stdout.write(renderPushHtml(doc));
    });
  registerCutoverReports(report, ctx);
}

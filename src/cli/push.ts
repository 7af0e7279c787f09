import type { Command } from 'commander';
import { createProgress } from '../report/progress.js';
import { createJsonLog, writeJsonLog, type LogFormat } from '../report/log.js';
import { pushMetrics, writeMetricsFile, type RunMetrics } from '../report/metrics.js';
import { errorMessage, RegmigrateError } from '../errors.js';
import type { Deletion } from '../transfer/sync.js';
import { countReports, renderImageTable, renderPlan, renderPushSummary, reportDocument, reportFormat, reportRun, writeReport } from '../report/push-report.js';
import { connectDestination, type Destination } from '../transfer/destination.js';
import type { Schema1Mode } from '../plan/plan.js';
import { pushStorage, type PushOptions, type PushResult } from '../transfer/push.js';
import type { SourceSelection } from '../transfer/source.js';
import { checkSkopeo } from '../transfer/skopeo.js';
import { assertWritable } from '../util/files.js';
import { parseSize } from '../util/format.js';
import type { CliContext } from './context.js';
import { requireRoot } from './config.js';
import { addDestinationOptions, buildDestinationOptions, normalizeDestination, type DestinationFlags, type NormalizedDestination } from './destination-options.js';
import { batchTagsFromEnv, OptionProblems, parsePositiveInt } from './options.js';
import { addSelectionOptions, normalizeSelection, type SelectionFlags } from './selection.js';
import { stopGraceFromEnv, withInterruption } from './signals.js';
import { Stopper, type StopSignals } from '../util/stop.js';

/** Flags shared by push and sync: where, how, and what to write. */
export interface TransferFlags extends DestinationFlags, SelectionFlags {
  concurrency?: string;
  report?: string;
  public?: boolean;
  storageLimit?: string;
  quiet?: boolean;
  via?: string;
  workDir?: string;
  keepWorkDir?: boolean;
  schema1?: string;
  metricsFile?: string;
  pushgateway?: string;
  metricsJob?: string;
  logFormat?: string;
}

export interface TransferRequest extends SourceSelection {
  readonly destination: NormalizedDestination;
  readonly concurrency: number;
  readonly report: string | undefined;
  readonly public: boolean;
  readonly storageLimit: number;
  readonly quiet: boolean;
  readonly via: 'oci' | 'skopeo';
  readonly workDir: string | undefined;
  readonly keepWorkDir: boolean;
  readonly schema1: Schema1Mode;
  readonly metricsFile: string | undefined;
  readonly pushgateway: string | undefined;
  readonly metricsJob: string;
  readonly logFormat: LogFormat;
}

interface PushFlags extends TransferFlags {
  dryRun?: boolean;
  output?: string;
}

export interface PushRequest extends TransferRequest {
  readonly dryRun: boolean;
  readonly output: 'table' | 'json';
}

export function addTransferOptions(command: Command): Command {
  return addSelectionOptions(addDestinationOptions(command))
    .option('--via <transport>', 'oci (default: streams over HTTP) or skopeo (dir: layouts + skopeo copy)')
    .option('--work-dir <dir>', 'with --via skopeo: where the dir: layouts go (default: beside the storage, for hard links)')
    .option('--keep-work-dir', 'with --via skopeo: keep the dir: layouts afterwards')
    .option('--concurrency <n>', 'blob uploads (or skopeo copies) in flight (default 8)')
    .option('--report <file>', 'write the verified image list to FILE (.json or .csv)')
    .option('--public', 'create missing Harbor projects as public (default private)')
    .option('--storage-limit <size>', 'storage quota for projects created (default -1, unlimited)')
    .option('--schema1 <mode>', 'schema1 images: keep (sign and push as is; convert if refused), convert (to schema2), skip')
    .option('-q, --quiet', 'no progress output; failures are still printed')
    .option('--metrics-file <file.prom>', 'write Prometheus metrics of the run here (node_exporter textfile collector format)')
    .option('--pushgateway <url>', 'push Prometheus metrics of the run to this Pushgateway')
    .option('--metrics-job <name>', 'the Pushgateway job name (default regmigrate); the shard is a grouping label')
    .option('--log-format <format>', 'human (default) or json: one JSON object per event on stderr');
}

export function normalizeTransfer(root: string, flags: TransferFlags, problems: OptionProblems): TransferRequest {
  if (flags.report !== undefined && !reportFormat(flags.report)) problems.add(`--report ${flags.report}: the name must end in .json or .csv`);
  const via = flags.via ?? 'oci';
  if (via !== 'oci' && via !== 'skopeo') problems.add(`--via must be oci or skopeo, not "${via}"`);
  if ((flags.workDir !== undefined || flags.keepWorkDir) && via !== 'skopeo') problems.add('--work-dir and --keep-work-dir go with --via skopeo');
  const schema1 = flags.schema1 ?? 'keep';
  if (schema1 !== 'keep' && schema1 !== 'convert' && schema1 !== 'skip') problems.add(`--schema1 must be keep, convert or skip, not "${schema1}"`);
  const logFormat = flags.logFormat ?? 'human';
  if (logFormat !== 'human' && logFormat !== 'json') problems.add(`--log-format must be human or json, not "${logFormat}"`);
  if (flags.metricsFile !== undefined && !flags.metricsFile.endsWith('.prom')) problems.add(`--metrics-file ${flags.metricsFile}: the textfile collector reads only files ending in .prom`);
  if (flags.pushgateway !== undefined && !/^https?:\/\/[^/\s]+/.test(flags.pushgateway)) problems.add(`--pushgateway "${flags.pushgateway}" must be an http:// or https:// URL`);
  let storageLimit = -1;
  if (flags.storageLimit !== undefined && flags.storageLimit !== '-1') {
    const size = parseSize(flags.storageLimit);
    if (size === undefined) problems.add(`--storage-limit must be a size (like 500GiB) or -1, not "${flags.storageLimit}"`);
    else storageLimit = size;
  }
  return {
    ...normalizeSelection(root, flags, problems),
    destination: normalizeDestination(flags, problems),
    concurrency: parsePositiveInt('--concurrency', flags.concurrency, 8, problems, 256),
    report: flags.report,
    public: flags.public ?? false,
    storageLimit,
    quiet: flags.quiet ?? false,
    via: via === 'skopeo' ? 'skopeo' : 'oci',
    workDir: flags.workDir,
    keepWorkDir: flags.keepWorkDir ?? false,
    schema1: schema1 === 'convert' || schema1 === 'skip' ? schema1 : 'keep',
    metricsFile: flags.metricsFile,
    pushgateway: flags.pushgateway,
    metricsJob: flags.metricsJob ?? 'regmigrate',
    logFormat: logFormat === 'json' ? 'json' : 'human',
  };
}

export function normalizePush(root: string, flags: PushFlags): PushRequest {
  const problems = new OptionProblems();
  const transfer = normalizeTransfer(root, flags, problems);
  const output = flags.output ?? 'table';
  if (output !== 'table' && output !== 'json') problems.add(`--output must be table or json, not "${output}"`);
  problems.throwIfAny();
  return { ...transfer, dryRun: flags.dryRun ?? false, output: output === 'json' ? 'json' : 'table' };
}

/** The push engine's options from a transfer request. */
export function pushOptions(request: TransferRequest, ctx: CliContext, extra: Partial<Pick<PushOptions, 'onEvent' | 'signal' | 'abort' | 'dryRun'>>): PushOptions {
  return {
    root: request.root,
    include: request.include,
    exclude: request.exclude,
    maps: request.maps,
    defaultProject: request.defaultProject,
    includeUntagged: request.includeUntagged ?? false,
    ...(request.shard ? { shard: request.shard } : {}),
    ...(request.tags ? { tags: request.tags } : {}),
    project: { public: request.public, storageLimit: request.storageLimit },
    concurrency: request.concurrency,
    requestConcurrency: Math.max(16, request.concurrency * 2),
    via: request.via,
    ...(request.workDir !== undefined ? { workDir: request.workDir } : {}),
    keepWorkDir: request.keepWorkDir,
    schema1: request.schema1,
    // Tags per batch: what a run holds in memory at once (a tuning knob, and how tests make small batches).
    ...(batchTagsFromEnv(ctx.env) ? { batchTags: batchTagsFromEnv(ctx.env)! } : {}),
    onNotice: (message) => notice(request, ctx, message),
    dryRun: false,
    ...extra,
  };
}

/** Checks what the transport needs, then connects: everything that fails before any work (exit 2/3). */
export async function openDestination(request: TransferRequest, ctx: CliContext, dryRun: boolean, stop?: StopSignals): Promise<Destination> {
  if (request.via === 'skopeo' && !dryRun) await checkSkopeo();
  const destination = await connectDestination({ ...(await buildDestinationOptions(request.destination, ctx)), ...(stop ? { stop } : {}) });
  const kind = destination.harborVersion ? `Harbor ${destination.harborVersion}` : 'plain OCI registry';
  if (request.logFormat === 'json') writeJsonLog(ctx.stderr, { level: 'info', event: 'destination', message: `${destination.endpoint.origin}: ${kind}` });
  else if (!request.quiet) ctx.stderr.write(`destination ${destination.endpoint.origin}: ${kind}\n`);
  return destination;
}

/** A line for the operator: plain, or a JSON record with `--log-format json`. */
export function notice(request: TransferRequest, ctx: CliContext, message: string): void {
  if (request.logFormat === 'json') writeJsonLog(ctx.stderr, { level: /^(error|warning)/.test(message) ? (message.startsWith('error') ? 'error' : 'warn') : 'info', event: 'notice', message });
  else ctx.stderr.write(`regmigrate: ${message}\n`);
}

/**
 * Runs a push or sync and, however it ends (exit 0 to 5, an error before any work included), writes its metrics
 * to `--metrics-file` and/or `--pushgateway`: monitoring learns of a run that never got going too.
 */
export async function withMetrics(
  request: TransferRequest,
  ctx: CliContext,
  command: 'push' | 'sync',
  job: (record: (result: PushResult, deletions?: readonly Deletion[]) => void) => Promise<number>,
): Promise<number> {
  if (request.metricsFile) assertWritable(request.metricsFile, '--metrics-file');
  const startedAt = Date.now();
  let result: PushResult | undefined;
  let deletions: readonly Deletion[] = [];
  let exitCode = 70;
  try {
    exitCode = await job((r, d) => {
      result = r;
      deletions = d ?? [];
    });
    return exitCode;
  } catch (err) {
    exitCode = err instanceof RegmigrateError ? err.exitCode : 70;
    throw err;
  } finally {
    if (request.metricsFile || request.pushgateway) {
      const shard = request.shard ? `${request.shard.index}/${request.shard.count}` : undefined;
      const metrics: RunMetrics = { command, startedAt, endedAt: Date.now(), exitCode, result, deletions, shard };
      try {
        if (request.metricsFile) writeMetricsFile(request.metricsFile, metrics);
        if (request.pushgateway) await pushMetrics(request.pushgateway, request.metricsJob, metrics);
      } catch (err) {
        notice(request, ctx, `error: metrics could not be written: ${errorMessage(err)}`);
        ctx.setExitCode(5);
      }
    }
  }
}

export async function runPush(request: PushRequest, ctx: CliContext): Promise<number> {
  if (request.report) assertWritable(request.report, '--report');
  return withMetrics(request, ctx, 'push', async (record) => {
    const stopper = new Stopper(stopGraceFromEnv(ctx.env));
    const destination = await openDestination(request, ctx, request.dryRun, stopper.signals);
    const limitRate = request.destination.options.limitRate;
    const json = request.logFormat === 'json' ? createJsonLog(ctx.stderr) : undefined;
    const progress = json ?? createProgress({ stream: ctx.stderr, isTTY: ctx.stderrIsTTY && !ctx.env.REGMIGRATE_NO_PROGRESS, quiet: request.quiet, ...(limitRate !== undefined ? { limitRate } : {}) });
    try {
      // Rendering and the report are inside: a signal while they are written does not lose them.
      const { result: code, signal } = await withInterruption(ctx, stopper, async ({ stop, abort }) => {
        const result = await pushStorage(destination, pushOptions(request, ctx, { dryRun: request.dryRun, onEvent: progress.onEvent, signal: stop, abort }));
        progress.stop();
        record(result);
        const target = destination.endpoint.host;
        if (request.dryRun && result.plan) {
          if (request.output === 'json') ctx.stdout.write(JSON.stringify(result.plan, null, 2) + '\n');
          else ctx.stdout.write(renderPlan(result.plan, destination.harbor !== undefined));
          return result.plan.rejected.length > 0 ? 1 : 0;
        }
        // The image list first: if the report file cannot be written at the end, the list is not lost with it.
        const run = reportRun('push', result, request.root, target);
        if (request.output === 'json') ctx.stdout.write(JSON.stringify(reportDocument(result, run), null, 2) + '\n');
        else ctx.stdout.write(renderImageTable(result.reports));
        if (json) json.finished(result);
        else if (!request.quiet) ctx.stderr.write(renderPushSummary(result) + '\n'); // --quiet: only failures (printed as they happen)
        if (request.report) writeReport(request.report, result, run);
        return countReports(result.reports).failed > 0 ? 1 : 0;
      }, progress.log);
      if (signal) return signal === 'SIGINT' ? 130 : 143;
      return code;
    } finally {
      progress.stop();
      await destination.close();
    }
  });
}

export function registerPush(program: Command, ctx: CliContext): void {
  const command = program
    .command('push')
    .description('push every image of a registry storage into Harbor (or any OCI registry), verified')
    .argument('[root]', 'registry storage root (e.g. /var/lib/registry) or an uncompressed tar of it');
  addTransferOptions(command)
    .option('--dry-run', 'print the plan (projects, blobs, mounts, tags) and change nothing')
    .option('-o, --output <format>', 'stdout format of the image list: table or json')
    .action(async (root: string | undefined, flags: PushFlags) => {
      const source = requireRoot(root, 'push');
      ctx.setExitCode(await runPush(normalizePush(source, flags), ctx));
    });
}

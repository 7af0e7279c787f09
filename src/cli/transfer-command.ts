/** What push and sync share on the command line: the transfer flags and their normalisation, opening the destination, notices, metrics. */
import type { Command } from 'commander';
import { createJsonLog, writeJsonLog, type LogFormat } from '../report/log.js';
import { createProgress, type Progress } from '../report/progress.js';
import { pushMetrics, writeMetricsFile, type RunMetrics } from '../report/metrics.js';
import { errorMessage, RegmigrateError } from '../errors.js';
import type { Deletion } from '../sync/sync.js';
import { reportFormat } from '../report/push-report.js';
import { connectDestination, type Destination } from '../destination/destination.js';
import type { BudgetLimits } from '../destination/budget.js';
import type { Schema1Mode } from '../plan/plan.js';
import type { PushOptions, PushResult } from '../push/push.js';
import type { SourceSelection } from '../transfer/source.js';
import { checkSkopeo } from '../skopeo/skopeo.js';
import { openStorage } from '../storage/open.js';
import { assertWritable } from '../util/files.js';
import { parseSize } from '../util/format.js';
import type { CliContext } from './context.js';
import { addDestinationOptions, buildDestinationOptions, normalizeDestination, type DestinationFlags, type NormalizedDestination } from './destination-options.js';
import { OptionProblems, parseWholeOption } from './options.js';
import { WHOLE_RANGES } from './ranges.js';
import { addSelectionOptions, normalizeSelection, type SelectionFlags } from './selection.js';
import type { StopSignals, Stopper } from '../util/stop.js';
import type { Notice } from '../util/notice.js';
import { batchTagsFromEnv, requestCap, requestConcurrency, shardWaitFromEnv, TRANSFER_CONCURRENCY, uploadCap } from '../tuning.js';

/** Flags shared by push and sync: where, how, and what to write. */
export interface TransferFlags extends DestinationFlags, SelectionFlags {
  concurrency?: string;
  maxRequests?: string;
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
  /** `--concurrency` (or `transfer.concurrency`) was set: uploads never exceed it. Otherwise they may grow. */
  readonly concurrencyGiven: boolean;
  /** `--max-requests`: the request budget's cap, and where it starts; undefined: it adapts within the defaults. */
  readonly maxRequests: number | undefined;
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

export function addTransferOptions(command: Command): Command {
  return addSelectionOptions(addDestinationOptions(command))
    .option('--via <transport>', 'oci (default: streams over HTTP) or skopeo (dir: layouts + skopeo copy)')
    .option('--work-dir <dir>', 'with --via skopeo: where the dir: layouts go (default: beside the storage, for hard links)')
    .option('--keep-work-dir', 'with --via skopeo: keep the dir: layouts afterwards')
    .option('--concurrency <n>', `blob uploads (or skopeo copies) in flight, at most (default: ${TRANSFER_CONCURRENCY}, growing to ${uploadCap(TRANSFER_CONCURRENCY)} while uploads wait)`)
    .option('--max-requests <n>', `other requests in flight, at most (default: adapts from ${requestConcurrency(TRANSFER_CONCURRENCY)} up to ${requestCap(TRANSFER_CONCURRENCY)})`)
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
    concurrency: parseWholeOption('concurrency', flags.concurrency, TRANSFER_CONCURRENCY, problems),
    concurrencyGiven: flags.concurrency !== undefined,
    maxRequests: flags.maxRequests === undefined ? undefined : parseWholeOption('maxRequests', flags.maxRequests, MIN_REQUESTS, problems),
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

/** The push engine's options from a transfer request. */
export function pushOptions(request: TransferRequest, ctx: CliContext, extra: Partial<Pick<PushOptions, 'onEvent' | 'onUnderWay' | 'signal' | 'abort' | 'dryRun'>>): PushOptions {
  const batchTags = batchTagsFromEnv(ctx.env);
  const shardWaitMs = shardWaitFromEnv(ctx.env);
  return {
    root: request.root,
    // The source's reads stop with the run too (a bucket's retries and backoff waits: storage/s3/open.ts).
    ...(request.storageOptions ? { storageOptions: { ...request.storageOptions, ...(extra.signal && extra.abort ? { signals: { stop: extra.signal, abort: extra.abort } } : {}) } } : {}),
    include: request.include,
    exclude: request.exclude,
    maps: request.maps,
    defaultProject: request.defaultProject,
    includeUntagged: request.includeUntagged ?? false,
    ...(request.tagUntagged !== undefined ? { tagUntagged: request.tagUntagged } : {}),
    ...(request.shard ? { shard: request.shard } : {}),
    ...(request.tags ? { tags: request.tags } : {}),
    project: { public: request.public, storageLimit: request.storageLimit },
    requestConcurrency: budgetSizes(request).requests.initial,
    via: request.via,
    ...(request.workDir !== undefined ? { workDir: request.workDir } : {}),
    keepWorkDir: request.keepWorkDir,
    schema1: request.schema1,
    // Tags per batch: what a run holds in memory at once (a tuning knob, and how tests make small batches).
    ...(batchTags ? { batchTags } : {}),
    ...(shardWaitMs !== undefined ? { shardWaitMs } : {}),
    onNotice: (n) => notice(request, ctx, n),
    dryRun: false,
    ...extra,
  };
}

/** The request budget's floor: one slot for the batch under way and one for the next batch's probes. */
const MIN_REQUESTS = WHOLE_RANGES.maxRequests.min;

/**
 * Blob uploads (or skopeo copies) and other requests in flight at the destination (destination/budget.ts): uploads
 * start at `--concurrency` and never exceed it when it is given (or set in the config file); without it our own
 * client's uploads start at 8 and may grow to tuning.ts uploadCap (skopeo copies are processes: they stay at 8).
 * Requests start at twice that (at least 16: requestConcurrency) and grow up to requestCap; `--max-requests N`
 * caps them at N and starts them there. Both halve when the destination answers 429/503 and grow back while
 * requests succeed.
 */
function budgetSizes(request: TransferRequest): { uploads: BudgetLimits; requests: BudgetLimits } {
  const adapts = request.concurrencyGiven === false && request.via === 'oci';
  const uploads = { initial: request.concurrency, floor: 1, cap: adapts ? uploadCap(request.concurrency) : request.concurrency };
  if (request.maxRequests !== undefined) return { uploads, requests: { initial: request.maxRequests, floor: MIN_REQUESTS, cap: request.maxRequests } };
  return { uploads, requests: { initial: requestConcurrency(request.concurrency), floor: MIN_REQUESTS, cap: requestCap(request.concurrency) } };
}

/**
 * Checks the source and what the transport needs, then connects: everything that fails before any work (exit 2/3).
 * A source that is no storage at all fails here, before the destination is asked anything.
 */
export async function openDestination(request: TransferRequest, ctx: CliContext, dryRun: boolean, stop?: StopSignals): Promise<Destination> {
  await openStorage(request.root, request.storageOptions);
  if (request.via === 'skopeo' && !dryRun) await checkSkopeo();
  const destination = await connectDestination({ ...(await buildDestinationOptions(request.destination, ctx)), budget: budgetSizes(request), ...(stop ? { stop } : {}) });
  const kind = destination.harborVersion ? `Harbor ${destination.harborVersion}` : 'plain OCI registry';
  if (request.logFormat === 'json') writeJsonLog(ctx.stderr, { level: 'info', event: 'destination', message: `${destination.endpoint.origin}: ${kind}` });
  else if (!request.quiet) ctx.stderr.write(`destination ${destination.endpoint.origin}: ${kind}\n`);
  return destination;
}

/**
 * The progress of a push or sync: with `--log-format json` JSON records (`json`, which also writes the run's last
 * record); otherwise bars on a terminal, a line every 30 s and one per failure (`--quiet` keeps the failures).
 */
export function transferProgress(request: TransferRequest, ctx: CliContext, destination: Destination): { json: ReturnType<typeof createJsonLog> | undefined; progress: Progress } {
  const limitRate = request.destination.options.limitRate;
  const capped = limitRate !== undefined ? { limitRate } : {};
  const json = request.logFormat === 'json' ? createJsonLog(ctx.stderr, { budget: destination.budget, ...capped }) : undefined;
  const progress = json ?? createProgress({ stream: ctx.stderr, isTTY: ctx.stderrIsTTY && !ctx.env.REGMIGRATE_NO_PROGRESS, quiet: request.quiet, budget: destination.budget, ...capped });
  return { json, progress };
}

/**
 * A destination that stops answering mid-run (destination/health.ts) is said once, in one line; the run then stops
 * as after a signal: nothing new starts, what is under way gets the grace and is then cut, the report is written,
 * and the command exits DESTINATION_GONE_EXIT.
 */
export function stopWhenGone(destination: Destination, stopper: Stopper, say: (message: string) => void): void {
  destination.health.onGone((gone) => {
    say(`${gone.message}; nothing more is sent, requests under way get ${stopper.graceMs / 1000} s to end, then the report is written; run the same command again once it answers (what landed is not sent again)`);
    stopper.stop();
  });
}

/** The exit status of a run whose destination stopped answering: the destination's (docs/architecture.md, Exit codes). */
export const DESTINATION_GONE_EXIT = 3;

/** A line for the operator: plain, or a JSON record with `--log-format json`. */
export function notice(request: Pick<TransferRequest, 'logFormat'>, ctx: Pick<CliContext, 'stderr'>, { level, message }: Notice): void {
  if (request.logFormat === 'json') writeJsonLog(ctx.stderr, { level, event: 'notice', message });
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
  // A run that stalls (cli/stall.ts) ends with exit 70: monitoring hears of it from the metrics file too.
  const metricsFile = request.metricsFile;
  if (metricsFile) {
    ctx.watch?.onStall(() => {
      writeMetricsFile(metricsFile, { command, startedAt, endedAt: Date.now(), exitCode: 70, result, deletions, shard: shardLabel(request) });
      return `metrics written to ${metricsFile}`;
    });
  }
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
      const metrics: RunMetrics = { command, startedAt, endedAt: Date.now(), exitCode, result, deletions, shard: shardLabel(request) };
      try {
        if (request.metricsFile) writeMetricsFile(request.metricsFile, metrics);
        if (request.pushgateway) await pushMetrics(request.pushgateway, request.metricsJob, metrics);
      } catch (err) {
        notice(request, ctx, { level: 'error', message: `error: metrics could not be written: ${errorMessage(err)}` });
        ctx.setExitCode(5);
      }
    }
  }
}

/** `2/4`: the shard a run is, for its metrics. */
function shardLabel(request: TransferRequest): string | undefined {
  return request.shard ? `${request.shard.index}/${request.shard.count}` : undefined;
}

import type { Command } from 'commander';
import { ROOT_ARGUMENT } from './storage-options.js';
import { countReports, imagesExitCode, renderImageTable, renderPlan, renderPushSummary, reportDocument, reportRun, writeReport } from '../report/push-report.js';
import { pushStorage } from '../push/push.js';
import { assertWritable } from '../util/files.js';
import type { CliContext } from './context.js';
import { requireRoot } from './config.js';
import { OptionProblems } from './options.js';
import { withInterruption } from './signals.js';
import { stopGraceFromEnv } from '../tuning.js';
import { Stopper } from '../util/stop.js';
import { addTransferOptions, DESTINATION_GONE_EXIT, normalizeTransfer, pushOptions, openDestination, stopWhenGone, transferProgress, withMetrics, type TransferFlags, type TransferRequest } from './transfer-command.js';
import { warnIfEmptySource } from './selection.js';
import { watchTransfer } from './watch-transfer.js';

interface PushFlags extends TransferFlags {
  dryRun?: boolean;
  output?: string;
}

export interface PushRequest extends TransferRequest {
  readonly dryRun: boolean;
  readonly output: 'table' | 'json';
}

export function normalizePush(root: string, flags: PushFlags): PushRequest {
  const problems = new OptionProblems();
  const transfer = normalizeTransfer(root, flags, problems);
  const output = flags.output ?? 'table';
  if (output !== 'table' && output !== 'json') problems.add(`--output must be table or json, not "${output}"`);
  problems.throwIfAny();
  return { ...transfer, dryRun: flags.dryRun ?? false, output: output === 'json' ? 'json' : 'table' };
}

export async function runPush(request: PushRequest, ctx: CliContext): Promise<number> {
  if (request.report) assertWritable(request.report, '--report');
  // The report is the verified image list: a dry run verifies nothing (its plan goes to stdout, --output json).
  if (request.report && request.dryRun) ctx.stderr.write('regmigrate: --report is not written by a dry run; the plan is on stdout (--output json for a document)\n');
  return withMetrics(request, ctx, 'push', async (record) => {
    const stopper = new Stopper(stopGraceFromEnv(ctx.env));
    const destination = await openDestination(request, ctx, request.dryRun, stopper.signals);
    const { json, progress } = transferProgress(request, ctx, destination);
    const watched = watchTransfer(ctx, { command: 'push', root: request.root, destination, report: request.dryRun ? undefined : request.report }, progress.onEvent);
    stopWhenGone(destination, stopper, progress.log);
    try {
      // Rendering and the report are inside: a signal while they are written does not lose them.
      const { result: code, signal } = await withInterruption(ctx, stopper, async ({ stop, abort }) => {
        const result = await pushStorage(destination, pushOptions(request, ctx, { dryRun: request.dryRun, ...watched, signal: stop, abort }));
        progress.stop();
        record(result);
        warnIfEmptySource(ctx.stderr, result.source, request.logFormat);
        if (request.dryRun && result.plan) {
          if (request.output === 'json') ctx.stdout.write(JSON.stringify(result.plan, null, 2) + '\n');
          else ctx.stdout.write(renderPlan(result.plan, destination.harbor !== undefined, destination.credentials?.username));
          return result.plan.rejected.length > 0 ? 1 : result.plan.immutable.length > 0 ? 6 : 0;
        }
        // The image list first: if the report file cannot be written at the end, the list is not lost with it.
        const run = reportRun('push', result, request.root, destination.endpoint);
        if (request.output === 'json') ctx.stdout.write(JSON.stringify(reportDocument(result, run), null, 2) + '\n');
        else ctx.stdout.write(renderImageTable(result.reports));
        if (json) json.finished(result);
        else if (!request.quiet) ctx.stderr.write(renderPushSummary(result) + '\n'); // --quiet: only failures (printed as they happen)
        if (request.report) writeReport(request.report, result, run);
        if (result.destinationGone) return DESTINATION_GONE_EXIT;
        return imagesExitCode(countReports(result.reports));
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
    .argument('[root]', ROOT_ARGUMENT);
  addTransferOptions(command)
    .option('--dry-run', 'print the plan (projects, blobs, mounts, tags) and change nothing')
    .option('-o, --output <format>', 'stdout format of the image list: table or json')
    .action(async (root: string | undefined, flags: PushFlags) => {
      const source = requireRoot(root, 'push');
      ctx.setExitCode(await runPush(normalizePush(source, flags), ctx));
    });
}

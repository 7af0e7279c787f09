import type { Command } from 'commander';
import type { MapRule } from '../plan/map-names.js';
import { parseNameOptions } from './export.js';
import { createProgress } from '../report/progress.js';
import { countReports, renderImageTable, renderPlan, renderPushSummary, reportDocument, reportFormat, writeReport } from '../report/push-report.js';
import { connectDestination } from '../transfer/destination.js';
import { pushStorage } from '../transfer/push.js';
import { checkSkopeo } from '../transfer/skopeo.js';
import { parseSize } from '../util/format.js';
import type { CliContext } from './context.js';
import { addDestinationOptions, buildDestinationOptions, normalizeDestination, type DestinationFlags, type NormalizedDestination } from './destination-options.js';
import { collect, OptionProblems, parseGlobs, parsePositiveInt } from './options.js';
import { withInterruption } from './signals.js';

interface PushFlags extends DestinationFlags {
  dryRun?: boolean;
  include?: string[];
  exclude?: string[];
  map?: string[];
  defaultProject?: string;
  concurrency?: string;
  report?: string;
  output?: string;
  public?: boolean;
  storageLimit?: string;
  quiet?: boolean;
  via?: string;
  workDir?: string;
  keepWorkDir?: boolean;
}

export interface PushRequest {
  readonly root: string;
  readonly destination: NormalizedDestination;
  readonly dryRun: boolean;
  readonly include: readonly string[];
  readonly exclude: readonly string[];
  readonly maps: readonly MapRule[];
  readonly defaultProject: string;
  readonly concurrency: number;
  readonly report: string | undefined;
  readonly output: 'table' | 'json';
  readonly public: boolean;
  readonly storageLimit: number;
  readonly quiet: boolean;
  readonly via: 'oci' | 'skopeo';
  readonly workDir: string | undefined;
  readonly keepWorkDir: boolean;
}

export function normalizePush(root: string, flags: PushFlags): PushRequest {
  const problems = new OptionProblems();
  const destination = normalizeDestination(flags, problems);
  const { maps, defaultProject } = parseNameOptions(flags, problems);
  if (flags.report !== undefined && !reportFormat(flags.report)) problems.add(`--report ${flags.report}: the name must end in .json or .csv`);
  const output = flags.output ?? 'table';
  if (output !== 'table' && output !== 'json') problems.add(`--output must be table or json, not "${output}"`);
  const via = flags.via ?? 'oci';
  if (via !== 'oci' && via !== 'skopeo') problems.add(`--via must be oci or skopeo, not "${via}"`);
  if ((flags.workDir !== undefined || flags.keepWorkDir) && via !== 'skopeo') problems.add('--work-dir and --keep-work-dir go with --via skopeo');
  let storageLimit = -1;
  if (flags.storageLimit !== undefined && flags.storageLimit !== '-1') {
    const size = parseSize(flags.storageLimit);
    if (size === undefined) problems.add(`--storage-limit must be a size (like 500GiB) or -1, not "${flags.storageLimit}"`);
    else storageLimit = size;
  }
  const request: PushRequest = {
    root,
    destination,
    dryRun: flags.dryRun ?? false,
    include: parseGlobs('--include', flags.include, problems),
    exclude: parseGlobs('--exclude', flags.exclude, problems),
    maps,
    defaultProject,
    concurrency: parsePositiveInt('--concurrency', flags.concurrency, 8, problems, 256),
    report: flags.report,
    output: output === 'json' ? 'json' : 'table',
    public: flags.public ?? false,
    storageLimit,
    quiet: flags.quiet ?? false,
    via: via === 'skopeo' ? 'skopeo' : 'oci',
    workDir: flags.workDir,
    keepWorkDir: flags.keepWorkDir ?? false,
  };
  problems.throwIfAny();
  return request;
}

export async function runPush(request: PushRequest, ctx: CliContext): Promise<number> {
  if (request.via === 'skopeo' && !request.dryRun) await checkSkopeo();
  const destination = await connectDestination(await buildDestinationOptions(request.destination, ctx));
  const progress = createProgress({ stream: ctx.stderr, isTTY: ctx.stderrIsTTY && !ctx.env.REGMIGRATE_NO_PROGRESS, quiet: request.quiet });
  try {
    if (!request.quiet) {
      ctx.stderr.write(`destination ${destination.endpoint.origin}: ${destination.harborVersion ? `Harbor ${destination.harborVersion}` : 'plain OCI registry'}\n`);
    }
    const { result, signal } = await withInterruption(ctx, (abort) =>
      pushStorage(destination, {
        root: request.root,
        include: request.include,
        exclude: request.exclude,
        maps: request.maps,
        defaultProject: request.defaultProject,
        project: { public: request.public, storageLimit: request.storageLimit },
        dryRun: request.dryRun,
        concurrency: request.concurrency,
        requestConcurrency: Math.max(16, request.concurrency * 2),
        via: request.via,
        ...(request.workDir !== undefined ? { workDir: request.workDir } : {}),
        keepWorkDir: request.keepWorkDir,
        onEvent: progress.onEvent,
        onNotice: (message) => ctx.stderr.write(`regmigrate: ${message}\n`),
        signal: abort,
      }),
    );
    progress.stop();
    const target = destination.endpoint.host;
    if (request.dryRun) {
      if (request.output === 'json') ctx.stdout.write(JSON.stringify(result.plan, null, 2) + '\n');
      else ctx.stdout.write(renderPlan(result.plan, destination.harbor !== undefined));
      return result.plan.rejected.length > 0 ? 1 : 0;
    }
    if (request.report) writeReport(request.report, result, target);
    if (request.output === 'json') ctx.stdout.write(JSON.stringify(reportDocument(result, target), null, 2) + '\n');
    else ctx.stdout.write(renderImageTable(result.reports));
    ctx.stderr.write(renderPushSummary(result) + '\n');
    if (signal) return signal === 'SIGINT' ? 130 : 143;
    return countReports(result.reports).failed > 0 ? 1 : 0;
  } finally {
    progress.stop();
    await destination.close();
  }
}

export function registerPush(program: Command, ctx: CliContext): void {
  const command = program
    .command('push')
    .description('push every image of a registry storage into Harbor (or any OCI registry), verified')
    .argument('<root>', 'registry storage root (e.g. /var/lib/registry)');
  addDestinationOptions(command)
    .option('--via <transport>', 'oci (default: streams over HTTP) or skopeo (dir: layouts + skopeo copy)')
    .option('--work-dir <dir>', 'with --via skopeo: where the dir: layouts go (default: beside the storage, for hard links)')
    .option('--keep-work-dir', 'with --via skopeo: keep the dir: layouts afterwards')
    .option('--dry-run', 'print the plan (projects, blobs, mounts, tags) and change nothing')
    .option('--include <glob>', 'only source repositories matching this glob (repeatable)', collect)
    .option('--exclude <glob>', 'skip source repositories matching this glob (repeatable)', collect)
    .option('--map <from=to>', 'rename a source repository prefix (repeatable; longest match wins)', collect)
    .option('--default-project <name>', 'project for single-level names like busybox (default library)')
    .option('--concurrency <n>', 'blob uploads in flight (default 8)')
    .option('--report <file>', 'write the verified image list to FILE (.json or .csv)')
    .option('-o, --output <format>', 'stdout format of the image list: table or json')
    .option('--public', 'create missing Harbor projects as public (default private)')
    .option('--storage-limit <size>', 'storage quota for projects created (default -1, unlimited)')
    .option('-q, --quiet', 'no progress output; failures are still printed')
    .action(async (root: string, flags: PushFlags) => {
      ctx.setExitCode(await runPush(normalizePush(root, flags), ctx));
    });
}

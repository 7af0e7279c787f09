import type { Command } from 'commander';
import { ROOT_ARGUMENT } from './storage-options.js';
import { shortDigest } from '../storage/digest.js';
import { compareStorage, type CompareResult } from '../sync/compare.js';
import { connectDestination } from '../destination/destination.js';
import { openStorage } from '../storage/open.js';
import type { SourceSelection } from '../transfer/source.js';
import { count, csvLine, formatBytes, renderTable } from '../util/format.js';
import type { CliContext } from './context.js';
import { requireRoot } from './config.js';
import { addDestinationOptions, buildDestinationOptions, normalizeDestination, type DestinationFlags, type NormalizedDestination } from './destination-options.js';
import { OptionProblems, parseWholeOption } from './options.js';
import { addSelectionOptions, normalizeSelection, warnIfEmptySource, type SelectionFlags } from './selection.js';
import { convertedImages, loadState } from '../sync/sync-state.js';
import { DIFF_CONCURRENCY } from '../tuning.js';

interface DiffFlags extends DestinationFlags, SelectionFlags {
  output?: string;
  state?: string;
  concurrency?: string;
}

export interface DiffRequest extends SourceSelection {
  readonly destination: NormalizedDestination;
  readonly output: 'table' | 'json' | 'csv';
  readonly concurrency: number;
  readonly state: string | undefined;
}

export function normalizeDiff(root: string, flags: DiffFlags): DiffRequest {
  const problems = new OptionProblems();
  const request: DiffRequest = {
    ...normalizeSelection(root, flags, problems),
    destination: normalizeDestination(flags, problems),
    output: diffOutput(flags.output, problems),
    concurrency: parseWholeOption('concurrency', flags.concurrency, DIFF_CONCURRENCY, problems),
    state: flags.state,
  };
  problems.throwIfAny();
  return request;
}

/** `--output`: table, json or csv (a diff has no HTML page). */
function diffOutput(value: string | undefined, problems: OptionProblems): 'table' | 'json' | 'csv' {
  const format = value ?? 'table';
  if (format === 'table' || format === 'json' || format === 'csv') return format;
  problems.add(`--output must be table, json or csv, not "${format}"`);
  return 'table';
}

export const DIFF_JSON_VERSION = 1;

export function renderDiffSummary(result: CompareResult): string {
  const c = result.counts;
  return `${c.new} new, ${c.changed} changed, ${c.same} same, ${c.extra} extra, ${c.faulty} faulty; a push would upload ${formatBytes(result.bytesToUpload)} (${count(result.blobsToUpload, 'blob')})`;
}

function render(result: CompareResult, format: DiffRequest['output'], destination: string): string {
  if (format === 'json') {
    return (
      JSON.stringify(
        {
          schemaVersion: DIFF_JSON_VERSION,
          kind: 'regmigrate.diff',
          destination,
          summary: { ...result.counts, blobsToUpload: result.blobsToUpload, bytesToUpload: result.bytesToUpload },
          tags: result.rows.map((r) => ({
            status: r.status,
            source: r.source ?? null,
            destination: r.destination ?? null,
            sourceDigest: r.sourceDigest ?? null,
            destinationDigest: r.destinationDigest ?? null,
            reason: r.reason ?? null,
          })),
        },
        null,
        2,
      ) + '\n'
    );
  }
  if (format === 'csv') {
    let out = csvLine(['status', 'source', 'destination', 'source_digest', 'destination_digest', 'reason']);
    for (const r of result.rows) out += csvLine([r.status, r.source, r.destination, r.sourceDigest, r.destinationDigest, r.reason]);
    return out;
  }
  const rows = result.rows.map((r) => [r.status, r.source ?? '-', r.destination ?? '-', shortDigest(r.sourceDigest), shortDigest(r.destinationDigest), r.reason ?? '']);
  return renderTable(['STATUS', 'SOURCE', 'DESTINATION', 'SOURCE DIGEST', 'DEST DIGEST', 'REASON'], rows) + '\n' + renderDiffSummary(result) + '\n';
}

/** `diff`: exit 0 when in sync, 1 when anything differs (new, changed, extra or faulty). */
export async function runDiff(request: DiffRequest, ctx: CliContext): Promise<number> {
  await openStorage(request.root, request.storageOptions); // a source that is no storage fails before the destination is asked anything
  const destination = await connectDestination(await buildDestinationOptions(request.destination, ctx));
  try {
    // The sync journal, when given, tells which schema1 images were converted (their destination digest differs).
    const journal = request.state ? loadState(request.state, destination.endpoint.host) : undefined;
    const converted = journal ? convertedImages(journal) : undefined;
    const result = await compareStorage(destination, request, request.concurrency, converted);
    warnIfEmptySource(ctx.stderr, result.source);
    ctx.stdout.write(render(result, request.output, destination.endpoint.host));
    if (request.output !== 'table') ctx.stderr.write(renderDiffSummary(result) + '\n');
    const c = result.counts;
    return c.new + c.changed + c.extra + c.faulty > 0 ? 1 : 0;
  } finally {
    await destination.close();
  }
}

export function registerDiff(program: Command, ctx: CliContext): void {
  const command = program
    .command('diff')
    .description('compare the storage with the destination: new, changed, same, extra (read-only on both sides)')
    .argument('[root]', ROOT_ARGUMENT);
  addSelectionOptions(addDestinationOptions(command, false))
    .option('-o, --output <format>', 'table, json or csv')
    .option('--concurrency <n>', `destination requests in flight (default ${DIFF_CONCURRENCY})`)
    .option('--state <file>', "a sync journal: schema1 images it records as converted count as the same")
    .action(async (root: string | undefined, flags: DiffFlags) => {
      const source = requireRoot(root, 'diff');
      ctx.setExitCode(await runDiff(normalizeDiff(source, flags), ctx));
    });
}

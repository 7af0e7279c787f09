import type { ReadFault } from '../storage/storage.js';
import type { Command } from 'commander';
import { renderScanTable, renderSelectionSizes, renderSummaryLine, SCAN_CSV_HEADER, scanCsvFaults, scanCsvPieces, scanCsvTags, scanJsonHead, scanJsonPieces, scanJsonTags, scanJsonTail, type OutputFormat } from '../inventory/render.js';
import { selectionSizes, type TagSelection } from '../inventory/select.js';
import type { InventorySummary } from '../inventory/types.js';
import { renderInventoryHtml } from '../report/html.js';
import { repositoryBatches, resolveRepositories, scanStorage, summarize, SummaryCounter, walkSource, type ScanOptions } from '../inventory/scan.js';
import { BlobStore } from '../image/reader.js';
import { openStorage } from '../storage/open.js';
import type { Storage } from '../storage/storage.js';
import { csvLine } from '../util/format.js';
import { writePieces } from '../util/stream.js';
import { cachedMapper } from '../plan/map-names.js';
import { markNameCollisions } from '../plan/plan.js';
import { shardSelector, type Shard } from '../plan/shard.js';
import { addShardOptions, addTagOptions, normalizeShard, normalizeTagSelection, warnIfEmptySource, type SelectionFlags } from './selection.js';
import { collect, defaultConcurrency, OptionProblems, parseGlobs, parseOutputFormat, parseWholeOption } from './options.js';
import type { CliContext } from './context.js';
import { requireRoot } from './config.js';
import { addStorageOptions, normalizeStorageOptions, type StorageFlags, ROOT_ARGUMENT } from './storage-options.js';
import type { StorageOptions } from '../storage/open.js';
import { BATCH_TAGS, batchTagsFromEnv } from '../tuning.js';

interface ScanFlags extends StorageFlags, Pick<SelectionFlags, 'shard' | 'shards' | 'shardBy' | 'tagInclude' | 'tagExclude' | 'semver' | 'pushedAfter' | 'keepLatest'> {
  output?: string;
  verify?: boolean;
  include?: string[];
  exclude?: string[];
  concurrency?: string;
}

export interface ScanRequest {
  readonly root: string;
  readonly storageOptions?: StorageOptions;
  readonly output: OutputFormat;
  readonly verify: boolean;
  readonly include: readonly string[];
  readonly exclude: readonly string[];
  readonly concurrency: number;
  readonly shard?: Shard;
  readonly tags?: TagSelection;
}

export function normalizeScan(root: string, flags: ScanFlags): ScanRequest {
  const problems = new OptionProblems();
  const request: ScanRequest = {
    root,
    output: parseOutputFormat(flags.output, problems),
    verify: flags.verify ?? false,
    include: parseGlobs('--include', flags.include, problems),
    exclude: parseGlobs('--exclude', flags.exclude, problems),
    concurrency: parseWholeOption('concurrency', flags.concurrency, defaultConcurrency(), problems),
  };
  const storageOptions = normalizeStorageOptions(root, flags, problems, process.env);
  if (storageOptions) Object.assign(request, { storageOptions });
  const shard = normalizeShard(flags, process.env, problems);
  if (shard) Object.assign(request, { shard });
  const tags = normalizeTagSelection(flags, problems);
  if (tags) Object.assign(request, { tags });
  problems.throwIfAny();
  return request;
}

/**
 * Destination names as a push without --map gives them (single-level names under library/): what shards split by,
 * and where two source tags meeting at one name are a `name-collision` fault, as push finds them.
 */
const DEFAULT_MAPPING = { rules: [], defaultProject: 'library', harbor: false } as const;

/** `scan`: exit 0 when every tag is healthy, 1 when any is faulty. */
export async function runScan(request: ScanRequest, ctx: CliContext): Promise<number> {
  const storage = await openStorage(request.root, request.storageOptions);
  const options: ScanOptions = {
    include: request.include,
    exclude: request.exclude,
    verify: request.verify,
    concurrency: request.concurrency,
    countUntagged: true,
    ...(request.tags ? { tags: request.tags } : {}),
    // Without --map here, shards split by the default destination names (single-level names under library/).
    ...(request.shard ? { select: shardSelector(cachedMapper(DEFAULT_MAPPING), request.shard) } : {}),
    onProgress: (event) => {
      if (event.phase === 'verify' && ctx.stderrIsTTY) ctx.stderr.write(`\rverifying blobs ${event.done}/${event.total}`);
    },
  };
  // JSON and CSV are written a batch of repositories at a time: a 200,000-tag registry is never held whole.
  // Hashing (--verify, each blob once) and selection sizes (per project, over every tag) need the whole picture.
  if ((request.output === 'json' || request.output === 'csv') && !request.verify && !request.tags) return streamScan(storage, request.output, options, ctx);
  const inventory = await scanStorage(storage, options);
  markNameCollisions(inventory.tags, DEFAULT_MAPPING);
  if (request.verify && ctx.stderrIsTTY) ctx.stderr.write('\n');
  const summary = summarize(inventory);
  // What the selection keeps and drops, per destination project: what Harbor's quotas must hold.
  const mapper = cachedMapper(DEFAULT_MAPPING);
  const sizes = request.tags ? selectionSizes({ kept: [...inventory.tags], dropped: [...(inventory.deselected ?? [])] }, (r) => { const m = mapper(r); return m.ok ? m.project : r.split('/')[0]!; }) : undefined;
  if (request.output === 'json') await writePieces(ctx.stdout, scanJsonPieces(inventory, summary, sizes));
  else if (request.output === 'csv') await writePieces(ctx.stdout, scanCsvPieces(inventory));
  else if (request.output === 'html') ctx.stdout.write(renderInventoryHtml(inventory, summary, (r) => { const m = mapper(r); return m.ok ? m.project : r.split('/')[0]!; }));
  else ctx.stdout.write(renderScanTable(inventory, summary) + (sizes ? renderSelectionSizes(sizes) : ''));
  if (request.output !== 'table') ctx.stderr.write(renderSummaryLine(summary) + '\n' + (sizes ? renderSelectionSizes(sizes) : ''));
  return scanExit(summary, storage, ctx, inventory.foundTags ?? 0, inventory.readFaults);
}

/**
 * The warning for an empty result (an empty storage, or a selection that kept nothing: said so, with how many tags
 * the storage holds), and the exit status: 1 for any faulty tag or unreadable directory.
 */
function scanExit(summary: InventorySummary, storage: Storage, ctx: CliContext, foundTags: number, readFaults: readonly ReadFault[]): number {
  warnIfEmptySource(ctx.stderr, { name: storage.describe(), foundTags, tags: summary.tags, readFaults });
  return summary.faultyTags > 0 || summary.unreadableDirectories > 0 ? 1 : 0;
}

async function streamScan(storage: Storage, output: 'json' | 'csv', options: ScanOptions, ctx: CliContext): Promise<number> {
  const walk = await walkSource(storage, options);
  const counter = new SummaryCounter();
  const claimed = new Map<string, string>();
  const progress = { done: 0 };
  let first = true;
  await writePieces(ctx.stdout, output === 'json' ? [scanJsonHead(storage.root)] : [csvLine(SCAN_CSV_HEADER), ...scanCsvFaults(walk.readFaults)]);
  for (const repositories of repositoryBatches(walk, batchTagsFromEnv(ctx.env) ?? BATCH_TAGS)) {
    const batch = await resolveRepositories(walk, repositories, options, progress, new BlobStore(storage));
    markNameCollisions(batch.tags, DEFAULT_MAPPING, claimed);
    counter.add(batch);
    await writePieces(ctx.stdout, output === 'json' ? scanJsonTags(batch.tags, first) : scanCsvTags(batch.tags));
    if (batch.tags.length > 0) first = false;
  }
  const summary = counter.summary(walk.readFaults);
  if (output === 'json') await writePieces(ctx.stdout, [scanJsonTail(walk.readFaults, summary)]);
  ctx.stderr.write(renderSummaryLine(summary) + '\n');
  return scanExit(summary, storage, ctx, walk.foundTags, walk.readFaults);
}

export function registerScan(program: Command, ctx: CliContext): void {
  const command = program
    .command('scan')
    .description('inventory a registry storage: every tag, its digest, media type, platforms, size and faults')
    .argument('[root]', ROOT_ARGUMENT)
    .option('-o, --output <format>', 'table, json, csv, or html (one self-contained page with charts)')
    .option('--verify', 'hash every blob and report corrupt ones (reads all data)')
    .option('--include <glob>', 'only repositories matching this glob (repeatable)', collect)
    .option('--exclude <glob>', 'skip repositories matching this glob (repeatable)', collect)
    .option('--concurrency <n>', 'parallel blob hashing with --verify');
  addStorageOptions(addShardOptions(addTagOptions(command))).action(async (root: string | undefined, flags: ScanFlags) => {
      const source = requireRoot(root, 'scan');
      ctx.setExitCode(await runScan(normalizeScan(source, flags), ctx));
    });
}

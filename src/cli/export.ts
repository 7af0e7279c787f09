import type { Command } from 'commander';
import { PROJECT_NAME_RE } from '../harbor/schema.js';
import { parseMapRule, type MapRule } from '../plan/map-names.js';
import { exportStorage } from '../transfer/export.js';
import { renderTable } from '../util/format.js';
import type { CliContext } from './context.js';
import { collect, OptionProblems, parseGlobs, parsePositiveInt } from './options.js';
import path from 'node:path';

interface ExportFlags {
  out?: string;
  include?: string[];
  exclude?: string[];
  map?: string[];
  defaultProject?: string;
  concurrency?: string;
}

export interface ExportRequest {
  readonly root: string;
  readonly out: string;
  readonly include: readonly string[];
  readonly exclude: readonly string[];
  readonly maps: readonly MapRule[];
  readonly defaultProject: string;
  readonly concurrency: number;
}

/** `--map` rules and `--default-project`, checked the same way for every command that maps names. */
export function parseNameOptions(flags: { map?: string[]; defaultProject?: string }, problems: OptionProblems): { maps: MapRule[]; defaultProject: string } {
  const maps: MapRule[] = [];
  for (const text of flags.map ?? []) {
    const rule = parseMapRule(text);
    if (typeof rule === 'string') problems.add(rule);
    else maps.push(rule);
  }
  const defaultProject = flags.defaultProject ?? 'library';
  if (!PROJECT_NAME_RE.test(defaultProject)) problems.add(`--default-project "${defaultProject}" is not a valid project name`);
  return { maps, defaultProject };
}

export function normalizeExport(root: string, flags: ExportFlags): ExportRequest {
  const problems = new OptionProblems();
  if (!flags.out) problems.add('--out is required');
  const names = parseNameOptions(flags, problems);
  const request: ExportRequest = {
    root,
    out: flags.out ?? '',
    include: parseGlobs('--include', flags.include, problems),
    exclude: parseGlobs('--exclude', flags.exclude, problems),
    ...names,
    concurrency: parsePositiveInt('--concurrency', flags.concurrency, 8, problems, 256),
  };
  problems.throwIfAny();
  return request;
}

/** `export`: exit 0 when every tag was exported, 1 when some were faulty or failed. */
export async function runExport(request: ExportRequest, ctx: CliContext): Promise<number> {
  const result = await exportStorage({ ...request, onNotice: (message) => ctx.stderr.write(`regmigrate: ${message}\n`) });
  const out = path.resolve(request.out);
  const rows = [
    ...result.exported.map((e) => [e.image.source, path.relative(out, e.directory), e.ok ? 'exported' : `failed: ${e.reason}`]),
    ...result.rejected.map((r) => [r.source, '-', `failed: ${r.reason}`]),
  ].sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
  ctx.stdout.write(renderTable(['SOURCE', 'DIRECTORY', 'STATUS'], rows));
  const failed = result.rejected.length + result.exported.filter((e) => !e.ok).length;
  const l = result.links;
  ctx.stderr.write(
    `${result.exported.length - (failed - result.rejected.length)} images exported to ${out}, ${failed} failed; ` +
      `files: ${l.linked} hard-linked, ${l.copied} copied, ${l.kept} already there, ${l.removed} stale removed\n`,
  );
  return failed > 0 ? 1 : 0;
}

export function registerExport(program: Command, ctx: CliContext): void {
  program
    .command('export')
    .description('write every healthy tag as a skopeo dir: layout (hard links into the storage, copies across filesystems)')
    .argument('<root>', 'registry storage root (e.g. /var/lib/registry)')
    .option('--out <dir>', 'output directory: one <repository>:<tag>/ directory per image')
    .option('--include <glob>', 'only source repositories matching this glob (repeatable)', collect)
    .option('--exclude <glob>', 'skip source repositories matching this glob (repeatable)', collect)
    .option('--map <from=to>', 'rename a source repository prefix (repeatable; longest match wins)', collect)
    .option('--default-project <name>', 'project for single-level names like busybox (default library)')
    .option('--concurrency <n>', 'images written at once (default 8)')
    .action(async (root: string, flags: ExportFlags) => {
      ctx.setExitCode(await runExport(normalizeExport(root, flags), ctx));
    });
}

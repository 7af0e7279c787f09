import type { Command } from 'commander';
import { ROOT_ARGUMENT } from './storage-options.js';
import { exportStorage } from '../skopeo/export.js';
import { count, renderTable } from '../util/format.js';
import type { CliContext } from './context.js';
import { requireRoot } from './config.js';
import { OptionProblems, parseWholeOption } from './options.js';
import { addSelectionOptions, normalizeSelection, warnIfEmptySource, type SelectionFlags } from './selection.js';
import type { SourceSelection } from '../transfer/source.js';
import { TRANSFER_CONCURRENCY } from '../tuning.js';
import path from 'node:path';
import { existsSync, statSync } from 'node:fs';
import { UsageError } from '../errors.js';

interface ExportFlags extends SelectionFlags {
  out?: string;
  concurrency?: string;
}

export interface ExportRequest extends SourceSelection {
  readonly out: string;
  readonly concurrency: number;
}

export function normalizeExport(root: string, flags: ExportFlags): ExportRequest {
  const problems = new OptionProblems();
  if (!flags.out) problems.add('--out is required');
  const request: ExportRequest = {
    ...normalizeSelection(root, flags, problems),
    out: flags.out ?? '',
    concurrency: parseWholeOption('concurrency', flags.concurrency, TRANSFER_CONCURRENCY, problems),
  };
  problems.throwIfAny();
  return request;
}

/** `export`: exit 0 when every tag was exported, 1 when some were faulty or failed. */
export async function runExport(request: ExportRequest, ctx: CliContext): Promise<number> {
  // An existing file as --out would fail every image in turn (ENOTDIR): refused before any work.
  if (existsSync(request.out) && !statSync(request.out).isDirectory()) throw new UsageError(`--out ${request.out}: is a file, not a directory`, 'give a directory');
  const result = await exportStorage({ ...request, onNotice: ({ message }) => ctx.stderr.write(`regmigrate: ${message}\n`) });
  warnIfEmptySource(ctx.stderr, result.source);
  const out = path.resolve(request.out);
  const rows = [
    ...result.exported.map((e) => [e.image.source, path.relative(out, e.directory), e.ok ? 'exported' : `failed: ${e.reason}`]),
    ...result.rejected.map((r) => [r.source, '-', `failed: ${r.reason}`]),
  ].sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
  ctx.stdout.write(renderTable(['SOURCE', 'DIRECTORY', 'STATUS'], rows));
  const failed = result.rejected.length + result.exported.filter((e) => !e.ok).length;
  const l = result.links;
  ctx.stderr.write(
    `${count(result.exported.length - (failed - result.rejected.length), 'image')} exported to ${out}, ${failed} failed; ` +
      `files: ${l.linked} hard-linked, ${l.copied} copied, ${l.kept} already there, ${l.removed} stale removed\n`,
  );
  return failed > 0 ? 1 : 0;
}

export function registerExport(program: Command, ctx: CliContext): void {
  const command = program
    .command('export')
    .description('write every healthy tag as a skopeo dir: layout (hard links into the storage, copies across filesystems)')
    .argument('[root]', ROOT_ARGUMENT)
    .option('--out <dir>', 'output directory: one <repository>:<tag>/ directory per image');
  addSelectionOptions(command)
    .option('--concurrency <n>', `images written at once (default ${TRANSFER_CONCURRENCY})`)
    .action(async (root: string | undefined, flags: ExportFlags) => {
      const source = requireRoot(root, 'export');
      ctx.setExitCode(await runExport(normalizeExport(source, flags), ctx));
    });
}

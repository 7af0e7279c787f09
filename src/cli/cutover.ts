import type { Command } from 'commander';
import { checkHost, readReferenceMap } from '../cutover/reference-map.js';
import { findReferences, renderRewriteDiff, rewriteReferences, type FoundReference } from '../cutover/references.js';
import { referenceRows, renderReferenceCsv, renderReferenceJson, renderRegistriesConf } from '../cutover/rewrites.js';
import { count, csvLine, renderTable } from '../util/format.js';
import type { CliContext } from './context.js';
import { OptionProblems } from './options.js';

interface HostFlags {
  oldHost?: string;
  newHost?: string;
}

/** `--old-host` (required) and `--new-host` (default: the host the report or journal is of), checked together. */
function hosts(flags: HostFlags, problems: OptionProblems): { oldHost: string; newHost: string | undefined } {
  if (!flags.oldHost) problems.add('--old-host is required: the registry host clients still name (like old-registry:5000)');
  const bad = [flags.oldHost && checkHost('--old-host', flags.oldHost), flags.newHost && checkHost('--new-host', flags.newHost)];
  for (const b of bad) if (b) problems.add(b);
  return { oldHost: flags.oldHost ?? '', newHost: flags.newHost };
}

type RewritesFormat = 'registries.conf' | 'json' | 'csv';

/** `report rewrites FILE`: the old → new map as registries.conf rules, or as JSON/CSV for scripts. */
function runRewrites(file: string, flags: HostFlags & { format?: string; insecure?: boolean }, ctx: CliContext): number {
  const problems = new OptionProblems();
  const { oldHost, newHost: given } = hosts(flags, problems);
  const format = (flags.format ?? 'registries.conf') as RewritesFormat;
  if (!['registries.conf', 'json', 'csv'].includes(format)) problems.add(`--format must be registries.conf, json or csv, not "${flags.format}"`);
  if (flags.insecure && format !== 'registries.conf') problems.add('--insecure goes with --format registries.conf');
  problems.throwIfAny();
  const map = readReferenceMap(file);
  const newHost = given ?? map.destinationHost;
  // registries.conf reaches a `location` over plain HTTP only with `insecure = true`: a destination the run reached
  // over plain HTTP gets it, unless the nodes are told another host (which may well speak HTTPS).
  const plainHttp = map.destinationUrl?.startsWith('http://') ?? false;
  const sameHost = newHost === map.destinationHost;
  const insecure = (flags.insecure ?? false) || (format === 'registries.conf' && plainHttp && sameHost);
  if (format === 'registries.conf' && plainHttp && !flags.insecure) {
    ctx.stderr.write(
      sameHost
        ? `regmigrate: ${newHost} was reached over plain HTTP: each rule says insecure = true, which registries.conf needs for it\n`
        : `regmigrate: the run reached ${map.destinationHost} over plain HTTP; if the nodes reach ${newHost} over plain HTTP too, give --insecure (registries.conf needs insecure = true for it)\n`,
    );
  }
  if (format === 'registries.conf') ctx.stdout.write(renderRegistriesConf(map, oldHost, newHost, { insecure, source: file }));
  else if (format === 'json') ctx.stdout.write(renderReferenceJson(referenceRows(map, oldHost, newHost), oldHost, newHost));
  else ctx.stdout.write(renderReferenceCsv(referenceRows(map, oldHost, newHost)));
  const failed = [...map.tags.values()].filter((t) => t.status === 'failed');
  for (const t of failed) ctx.stderr.write(`regmigrate: ${t.repository}:${t.tag} was not migrated (${t.reason ?? 'failed'}): no rule sends clients to it\n`);
  return 0;
}

function where(r: FoundReference): string {
  return `${r.file}:${r.line}`;
}

/** `report references DIR`: every reference to the old registry in a tree, with its new form; `--write` rewrites. */
function runReferences(dir: string, flags: HostFlags & { from?: string; write?: boolean; output?: string }, ctx: CliContext): number {
  const problems = new OptionProblems();
  const { oldHost, newHost: given } = hosts(flags, problems);
  if (!flags.from) problems.add('--from is required: the --report file of a push or sync, or the sync journal');
  const output = flags.output ?? 'table';
  if (!['table', 'json', 'csv'].includes(output)) problems.add(`--output must be table, json or csv, not "${output}"`);
  if (flags.write && output !== 'table') problems.add('--write prints a diff: leave out --output');
  problems.throwIfAny();
  const map = readReferenceMap(flags.from!);
  const scan = findReferences(dir, map, oldHost, given ?? map.destinationHost);
  const flagged = scan.references.filter((r) => r.status !== 'migrated');
  for (const file of scan.refused) ctx.stderr.write(`regmigrate: ${file}: names ${oldHost} but is not UTF-8 text (binary): not read, not rewritten\n`);
  for (const what of scan.unreadable) ctx.stderr.write(`regmigrate: ${what}: cannot be read\n`);
  if (flags.write) {
    const { rewrites, changedMeanwhile } = rewriteReferences(dir, scan);
    ctx.stdout.write(renderRewriteDiff(rewrites));
    for (const r of flagged) ctx.stderr.write(`regmigrate: ${where(r)}: ${r.old} left as it is: ${r.reason}\n`);
    for (const file of changedMeanwhile) ctx.stderr.write(`regmigrate: ${file}: changed while it was read: not rewritten, run again\n`);
    const rewritten = rewrites.reduce((n, r) => n + scan.references.filter((f) => f.file === r.file && f.status === 'migrated').length, 0);
    ctx.stderr.write(`${count(rewritten, 'reference')} rewritten in ${count(rewrites.length, 'file')}; ${flagged.length} left (failed or unknown tags)\n`);
    return flagged.length + changedMeanwhile.length + scan.refused.length > 0 ? 1 : 0;
  }
  if (output === 'json') {
    const rows = scan.references.map((r) => ({ file: r.file, line: r.line, column: r.column, old: r.old, tag: r.tag ?? null, new: r.new ?? null, status: r.status, reason: r.reason ?? null }));
    ctx.stdout.write(JSON.stringify({ schemaVersion: 1, kind: 'regmigrate.references', oldHost, references: rows }, null, 2) + '\n');
  } else if (output === 'csv') {
    let out = csvLine(['file', 'line', 'column', 'old_reference', 'new_reference', 'status', 'reason', 'tag']);
    for (const r of scan.references) out += csvLine([r.file, r.line, r.column, r.old, r.new, r.status, r.reason, r.tag]);
    ctx.stdout.write(out);
  } else {
    ctx.stdout.write(renderTable(['FILE:LINE', 'OLD REFERENCE', 'NEW REFERENCE', 'STATUS'], scan.references.map((r) => [where(r), r.tag === undefined ? r.old : `${r.old} (tag: ${r.tag || '""'})`, r.new ?? '-', r.status === 'migrated' ? r.status : `${r.status}: ${r.reason}`])));
  }
  const files = new Set(scan.references.map((r) => r.file)).size;
  ctx.stderr.write(`${count(scan.references.length, 'reference')} to ${oldHost} in ${count(files, 'file')} (of ${scan.filesRead} read): ${scan.references.length - flagged.length} migrated, ${flagged.filter((r) => r.status === 'failed').length} failed, ${flagged.filter((r) => r.status === 'unknown').length} unknown\n`);
  return flagged.length + scan.refused.length > 0 ? 1 : 0;
}

/** The cut-over's report subcommands, under `report`. */
export function registerCutoverReports(report: Command, ctx: CliContext): void {
  report
    .command('rewrites')
    .description('turn a push/sync report (or the sync journal) into rewrite rules: registries.conf [[registry]] entries, or the old -> new reference map')
    .argument('<file>', 'a report written with --report FILE.json, or a sync journal (--state)')
    .option('--old-host <host>', 'the registry host clients still name (like old-registry:5000)')
    .option('--new-host <host>', "the destination's host as clients reach it (default: the one in the report)")
    .option('--format <format>', 'registries.conf, json or csv (default registries.conf)')
    .option('--insecure', 'registries.conf: mark the new locations insecure = true (plain HTTP or an unverified certificate)')
    .action((file: string, flags: HostFlags & { format?: string; insecure?: boolean }) => {
      ctx.setExitCode(runRewrites(file, flags, ctx));
    });
  report
    .command('references')
    .description('list every reference to the old registry in a directory (manifests, Helm values, Dockerfiles, compose and CI files) with its new form; --write rewrites them')
    .argument('<dir>', 'the directory to search (a checkout of manifests, say)')
    .option('--from <file>', 'a report written with --report FILE.json, or a sync journal (--state)')
    .option('--old-host <host>', 'the registry host the files name (like old-registry:5000)')
    .option('--new-host <host>', "the destination's host as clients reach it (default: the one in the report)")
    .option('--write', 'rewrite the migrated references in place and print the diff (other files are not touched)')
    .option('-o, --output <format>', 'table, json or csv (without --write)')
    .action((dir: string, flags: HostFlags & { from?: string; write?: boolean; output?: string }) => {
      ctx.setExitCode(runReferences(dir, flags, ctx));
    });
}

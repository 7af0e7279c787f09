import type { Command } from 'commander';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type * as Yaml from 'yaml';
import * as z from 'zod';
import { UsageError } from '../errors.js';
import type { CliContext } from './context.js';
import { VALUE_CHECKS } from './values.js';
import { lazyPackage } from '../util/lazy-package.js';

const yaml = lazyPackage<typeof Yaml>('yaml');

const whole = z.number({ error: 'expected a whole number' }).int({ error: 'expected a whole number' }).min(0, { error: 'expected a whole number' });
const text = z.string({ error: 'expected a string' });
const flag = z.boolean({ error: 'expected true or false' });
const list = z.array(text, { error: 'expected a list of strings' });
/** Sizes and rates: `16MiB`, `50MiB/s`, or a number of bytes. */
const size = z.union([text, whole], { error: 'expected a size like 16MiB (or a number of bytes)' });

const sections = {
  /** How to reach an `s3://` source (credentials are never here: the AWS chain finds them, docs/s3.md). */
  storage: z.strictObject({
    s3Endpoint: text,
    s3Region: text,
  }),
  destination: z.strictObject({
    to: text,
    username: text,
    dockerConfig: text,
    insecure: flag,
    caFile: text,
    timeout: whole,
    retries: whole,
    chunkSize: size,
  }),
  selection: z.strictObject({
    include: list,
    exclude: list,
    map: list,
    defaultProject: text,
    includeUntagged: flag,
    tagUntagged: text,
    tagInclude: list,
    tagExclude: list,
    semver: text,
    pushedAfter: text,
    keepLatest: whole,
    shard: text,
    shards: whole,
    shardBy: z.enum(['repository', 'project'], { error: 'expected repository or project' }),
  }),
  transfer: z.strictObject({
    via: z.enum(['oci', 'skopeo'], { error: 'expected oci or skopeo' }),
    concurrency: whole,
    maxRequests: whole,
    public: flag,
    storageLimit: size,
    schema1: z.enum(['keep', 'convert', 'skip'], { error: 'expected keep, convert or skip' }),
    workDir: text,
    keepWorkDir: flag,
    limitRate: size,
    /** scan --verify */
    verify: flag,
  }),
  sync: z.strictObject({
    state: text,
    lock: text,
    waitLock: whole,
    lockStale: whole,
    trustState: flag,
    fullRead: flag,
    deleteExtra: flag,
    yes: flag,
    maxDelete: whole,
  }),
  output: z.strictObject({
    output: text,
    report: text,
    quiet: flag,
    metricsFile: text,
    pushgateway: text,
    metricsJob: text,
    logFormat: z.enum(['human', 'json'], { error: 'expected human or json' }),
  }),
};

/**
 * `--config regmigrate.yaml`: every option of every command in one file, grouped as docs/selection.md, Config file
 * documents it. Keys are the options' names in camelCase (`--keep-latest` → `selection.keepLatest`). Validated with
 * zod before any work, every problem reported by its path in the file; command-line flags override the file;
 * secrets are refused. Exported for the reference (`npm run docs` lists every key).
 */
export const ConfigFile = z.strictObject({
  version: z.literal(1, { error: 'expected 1' }).optional(),
  /** The registry storage root, when the command line does not name one. */
  source: text.optional(),
  storage: sections.storage.partial().optional(),
  destination: sections.destination.partial().optional(),
  selection: sections.selection.partial().optional(),
  transfer: sections.transfer.partial().optional(),
  sync: sections.sync.partial().optional(),
  output: sections.output.partial().optional(),
});
export type ConfigFile = z.infer<typeof ConfigFile>;

const SECRET_KEY = /pass(word|wd)?$|secret|token|^auth$|credential|access_?key/i;

/** Every key that names a secret, wherever it sits: a config file is read by too many people and tools. */
function findSecrets(value: unknown, where: string[] = []): string[] {
  if (!value || typeof value !== 'object') return [];
  return Object.entries(value as Record<string, unknown>).flatMap(([key, v]) => {
    const at = [...where, key];
    return SECRET_KEY.test(key) ? [at.join('.')] : findSecrets(v, at);
  });
}

/**
 * Reads and validates a config file; every problem at once, each with its path in the file. `checkPaths` picks the
 * file settings (by key) whose directory must exist: those a command takes from the file for a run (`config check`
 * checks the file alone, and names missing directories apart: they are the machine's, not the file's). `named`: how
 * errors name the file (`--config FILE` when the flag gave it).
 */
export function loadConfig(file: string, checkPaths: (key: string) => boolean = () => false, named = `--config ${file}`): ConfigFile {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${named}: cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let doc: unknown;
  try {
    doc = yaml().parse(raw) ?? {};
  } catch (err) {
    // The parser's first line ends with a colon that introduces the excerpt on the next lines: not kept.
    throw new UsageError(`${named}: not valid YAML: ${(err as Error).message.split('\n')[0]!.replace(/:\s*$/, '')}`);
  }
  const problems = findSecrets(doc).map((p) => `${p}: secrets are not allowed in the config file (give destination.dockerConfig, REGMIGRATE_PASSWORD or --password-stdin instead; a bucket's credentials come from the AWS credential chain)`);
  const parsed = ConfigFile.safeParse(doc);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const at = issue.path.join('.');
      if (problems.some((p) => p.startsWith(`${at}:`))) continue;
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          const full = at ? `${at}.${key}` : key;
          if (!problems.some((p) => p.startsWith(`${full}:`))) problems.push(`${full}: not a known setting`);
        }
      } else {
        problems.push(`${at || '(top)'}: ${issue.message}`);
      }
    }
  }
  // The value and path checks run on whatever is well-typed, so a type error elsewhere hides none of theirs.
  const reported = (at: string): boolean => problems.some((p) => p.startsWith(`${at}:`) || p.startsWith(`${at}.`));
  problems.push(...valueProblems(doc).filter((p) => !reported(p.slice(0, p.indexOf(':')))));
  problems.push(...pathProblems(doc, checkPaths).filter((p) => !reported(p.slice(0, p.indexOf(':')))));
  if (problems.length > 0) {
    throw new UsageError(`${named}: ${problems.length === 1 ? problems[0] : `${problems.length} problems:\n  ${problems.join('\n  ')}`}`, 'see docs/selection.md, Config file');
  }
  return parsed.data!;
}

/**
 * Values of the right type that a run would still refuse (`semver: ">=1.0 <<<"`, `limitRate: fast`), by the same
 * checks the flags get (values.ts), each named by its path in the file.
 */
function valueProblems(doc: unknown): string[] {
  const problems: string[] = [];
  for (const [section, key, value] of settingsOf(doc)) {
    const check = VALUE_CHECKS[key];
    if (!check) continue;
    for (const item of Array.isArray(value) ? value : [value]) {
      // A value of the wrong type is the schema's to report.
      if (typeof item !== 'string' && typeof item !== 'number') continue;
      const problem = check(String(item));
      if (problem) problems.push(`${section}.${key}: ${JSON.stringify(item)} ${problem}`);
    }
  }
  return problems;
}

/** Settings that name a file the run writes: its directory must exist (the run refuses it otherwise, before any work). */
const OUTPUT_FILES = new Set(['output.report', 'output.metricsFile', 'sync.state', 'sync.lock']);

/** Output files whose directory is missing or not writable, named by their path in the config file. */
function pathProblems(doc: unknown, checkPaths: (key: string) => boolean): string[] {
  const problems: string[] = [];
  for (const [section, key, value] of settingsOf(doc)) {
    if (!OUTPUT_FILES.has(`${section}.${key}`) || typeof value !== 'string' || !checkPaths(key)) continue;
    const dir = path.dirname(path.resolve(value));
    try {
      if (!statSync(dir).isDirectory()) problems.push(`${section}.${key}: ${JSON.stringify(value)}: ${dir} is not a directory`);
      else accessSync(dir, constants.W_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      problems.push(`${section}.${key}: ${JSON.stringify(value)}: its directory ${dir} ${code === 'ENOENT' ? 'does not exist' : `cannot be written (${code})`}`);
    }
  }
  return problems;
}

/** Every `section.key: value` of a parsed document's sections, whatever their types (the schema judges those). */
function settingsOf(doc: unknown): Array<[string, string, unknown]> {
  const out: Array<[string, string, unknown]> = [];
  if (!doc || typeof doc !== 'object') return out;
  for (const section of ['storage', 'destination', 'selection', 'transfer', 'sync', 'output'] as const) {
    const values = (doc as Record<string, unknown>)[section];
    if (!values || typeof values !== 'object' || Array.isArray(values)) continue;
    for (const [key, value] of Object.entries(values)) if (value !== undefined && value !== null) out.push([section, key, value]);
  }
  return out;
}

/** The file's settings as option values (what commander would have parsed from flags). */
function asOptionValues(config: ConfigFile): Map<string, string | boolean | string[]> {
  const out = new Map<string, string | boolean | string[]>();
  for (const section of [config.storage, config.destination, config.selection, config.transfer, config.sync, config.output]) {
    for (const [key, value] of Object.entries(section ?? {})) {
      if (value === undefined) continue;
      out.set(key, typeof value === 'number' ? String(value) : (value as string | boolean | string[]));
    }
  }
  return out;
}

/**
 * Before a command runs: with `--config`, every option the command has and the command line did not set is taken
 * from the file, and a missing `<root>` from `source`. Flags always win.
 */
export function applyConfig(command: Command): void {
  const file = command.getOptionValue('config') as string | undefined;
  if (!file) return;
  // Output files the command takes from the file are checked here, so a missing directory is named by its path in
  // the file (output.report), not by the flag the user never typed.
  const fromFile = (key: string): boolean => command.options.some((o) => o.attributeName() === key) && command.getOptionValueSource(key) !== 'cli';
  const config = loadConfig(file, fromFile);
  for (const [key, value] of asOptionValues(config)) {
    const option = command.options.find((o) => o.attributeName() === key);
    if (!option || command.getOptionValueSource(key) === 'cli') continue;
    command.setOptionValueWithSource(key, value, 'config');
  }
  const args = command.processedArgs as unknown[];
  if (command.registeredArguments.length > 0 && args[0] === undefined && config.source) args[0] = config.source;
}

/** Commands that take `<root>` and read it from `source` when it is not given. */
export function requireRoot(root: string | undefined, command: string): string {
  if (!root) throw new UsageError(`${command}: give the registry storage root, or "source:" in --config`, `regmigrate ${command} /var/lib/registry …`);
  return root;
}

export function registerConfig(program: Command, ctx: CliContext): void {
  program
    .command('config')
    .description('work with config files')
    .command('check')
    .description('validate a config file without running anything')
    .argument('<file>', 'the YAML file')
    .action((file: string) => {
      // Named as given: `config check` takes the file as its argument, not as --config.
      const config = loadConfig(file, undefined, file);
      const settings = asOptionValues(config).size + (config.source ? 1 : 0);
      // An empty file (or one of `version: 1` alone) is valid, and almost certainly not what was meant.
      if (settings === 0) ctx.stderr.write(`regmigrate: warning: ${file} holds no settings\n`);
      else ctx.stdout.write(`${file}: valid (${settings} settings)\n`);
      // A directory that does not exist yet is this machine's state, not a fault of the file: the example's
      // /var/lib/regmigrate is made by systemd (StateDirectory=) at the first start, or by the admin.
      const here = pathProblems(config, () => true);
      if (here.length > 0) {
        ctx.stderr.write(`regmigrate: warning: on this machine, a run would refuse ${here.length === 1 ? 'this file' : `these ${here.length} files`}:\n  ${here.join('\n  ')}\n`);
        ctx.stderr.write(`hint: the directories must exist and be writable by the user that runs it (the systemd unit's StateDirectory= makes /var/lib/regmigrate when it starts)\n`);
      }
    });
}

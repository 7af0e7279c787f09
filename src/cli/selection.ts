import type { ReadFault } from '../storage/storage.js';
import type { Command } from 'commander';
import { parseMapRule, PROJECT_NAME_RE, type MapRule } from '../plan/map-names.js';
import type { SourceSelection } from '../transfer/source.js';
import { collect, OptionProblems, parseGlobs, parseWholeOption } from './options.js';
import { parseTagPattern, tagSelectionActive, validSemverRange, type TagPattern, type TagSelection } from '../inventory/select.js';
import { parseShard, type Shard } from '../plan/shard.js';
import { count } from '../util/format.js';
import type { Writable } from 'node:stream';
import { writeJsonLog, type LogFormat } from '../report/log.js';
import { addStorageOptions, normalizeStorageOptions, type StorageFlags } from './storage-options.js';

export interface SelectionFlags extends StorageFlags {
  include?: string[];
  exclude?: string[];
  map?: string[];
  defaultProject?: string;
  includeUntagged?: boolean;
  shard?: string;
  shards?: string;
  shardBy?: string;
  tagInclude?: string[];
  tagExclude?: string[];
  semver?: string;
  pushedAfter?: string;
  keepLatest?: string;
}

/** `--include/--exclude/--map/--default-project`: which source repositories, under which destination names. */
export function addSelectionOptions(command: Command): Command {
  command
    .option('--include <glob>', 'only source repositories matching this glob (repeatable)', collect)
    .option('--exclude <glob>', 'skip source repositories matching this glob (repeatable)', collect)
    .option('--map <from=to>', 'rename a source repository prefix (repeatable; longest match wins)', collect)
    .option('--default-project <name>', 'project for single-level names like busybox (default library)')
    .option('--include-untagged', 'also migrate manifests no tag points at (by digest)');
  return addStorageOptions(addShardOptions(addTagOptions(command)));
}

/** Tag selection, for every command: signatures and referrers follow the image they belong to. */
export function addTagOptions(command: Command): Command {
  return command
    .option('--tag-include <pattern>', 'only tags matching this glob or /regex/ (repeatable)', collect)
    .option('--tag-exclude <pattern>', 'skip tags matching this glob or /regex/ (repeatable)', collect)
    .option('--semver <range>', "only tags that parse as versions within this range (e.g. '>=1.2 <2')")
    .option('--pushed-after <when>', 'only tags pushed since a date (2024-01-01) or for a duration (90d, 12h, 2w)')
    .option('--keep-latest <n>', 'per repository, only the n most recently pushed tags');
}

/** `2024-01-01` (or any ISO date-time), or a duration back from `now`: `90d`, `12h`, `2w`, `30m`. */
export function parseWhen(text: string, now = Date.now()): number | undefined {
  const duration = /^(\d+)([mhdw])$/.exec(text.trim());
  if (duration) {
    const unit = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[duration[2] as 'm' | 'h' | 'd' | 'w'];
    return now - Number(duration[1]) * unit;
  }
  if (!/^\d{4}-\d{2}-\d{2}/.test(text)) return undefined;
  const t = Date.parse(text);
  return Number.isNaN(t) ? undefined : t;
}

export function normalizeTagSelection(flags: SelectionFlags, problems: OptionProblems): TagSelection | undefined {
  const patterns = (name: string, values: string[] | undefined): TagPattern[] =>
    (values ?? []).flatMap((text) => {
      const p = parseTagPattern(text);
      if (typeof p === 'string') {
        problems.add(`${name} "${text}": ${p}`);
        return [];
      }
      return [p];
    });
  const selection: TagSelection = {
    tagInclude: patterns('--tag-include', flags.tagInclude),
    tagExclude: patterns('--tag-exclude', flags.tagExclude),
  };
  if (flags.semver !== undefined) {
    if (!validSemverRange(flags.semver)) problems.add(`--semver "${flags.semver}" is not a version range (like '>=1.2 <2' or '^3')`);
    else Object.assign(selection, { semver: flags.semver });
  }
  if (flags.pushedAfter !== undefined) {
    const when = parseWhen(flags.pushedAfter);
    if (when === undefined) problems.add(`--pushed-after "${flags.pushedAfter}" is neither a date (2024-01-01) nor a duration (90d, 12h, 2w, 30m)`);
    else Object.assign(selection, { pushedAfter: when });
  }
  if (flags.keepLatest !== undefined) Object.assign(selection, { keepLatest: parseWholeOption('keepLatest', flags.keepLatest, 1, problems) });
  return tagSelectionActive(selection) ? selection : undefined;
}

/** `--shard/--shards/--shard-by`: for every command, scan included. */
export function addShardOptions(command: Command): Command {
  return command
    .option('--shard <k/n>', 'only shard k of n (0-based), split by destination repository')
    .option('--shards <n>', 'with JOB_COMPLETION_INDEX set (a Kubernetes Indexed Job): --shard $JOB_COMPLETION_INDEX/n')
    .option('--shard-by <unit>', 'repository (default) or project: keep a project in one shard (fewer blobs wait for another shard)');
}

export function normalizeShard(flags: SelectionFlags, env: NodeJS.ProcessEnv, problems: OptionProblems): Shard | undefined {
  const by = flags.shardBy ?? 'repository';
  if (by !== 'repository' && by !== 'project') problems.add(`--shard-by must be repository or project, not "${by}"`);
  const unit = by === 'project' ? 'project' : 'repository';
  let text = flags.shard;
  if (flags.shards !== undefined) {
    if (text !== undefined) problems.add('--shard and --shards do not go together');
    const index = env.JOB_COMPLETION_INDEX;
    const count = parseWholeOption('shards', flags.shards, undefined, problems);
    if (index === undefined || !/^\d+$/.test(index)) problems.add('--shards needs JOB_COMPLETION_INDEX set to a number (a Kubernetes Indexed Job sets it)');
    else if (count !== undefined) text = `${index}/${count}`;
  }
  if (text === undefined) return undefined;
  const shard = parseShard(text, unit);
  if (typeof shard === 'string') {
    problems.add(shard);
    return undefined;
  }
  return shard;
}

export function normalizeSelection(root: string, flags: SelectionFlags, problems: OptionProblems, env: NodeJS.ProcessEnv = process.env): SourceSelection {
  const shard = normalizeShard(flags, env, problems);
  const tags = normalizeTagSelection(flags, problems);
  const maps: MapRule[] = [];
  for (const text of flags.map ?? []) {
    const rule = parseMapRule(text);
    if (typeof rule === 'string') problems.add(rule);
    else maps.push(rule);
  }
  const storageOptions = normalizeStorageOptions(root, flags, problems, env);
  const defaultProject = flags.defaultProject ?? 'library';
  if (!PROJECT_NAME_RE.test(defaultProject)) problems.add(`--default-project "${defaultProject}" is not a valid project name`);
  return {
    root,
    ...(storageOptions ? { storageOptions } : {}),
    include: parseGlobs('--include', flags.include, problems),
    exclude: parseGlobs('--exclude', flags.exclude, problems),
    maps,
    defaultProject,
    includeUntagged: flags.includeUntagged ?? false,
    ...(shard ? { shard } : {}),
    ...(tags ? { tags } : {}),
  };
}

/**
 * The warning of every command whose source gives no tag: none in the storage, or none that the selection
 * (`--include`, `--exclude`, the tag options, `--shard`) kept. A warning only: the exit status stays the command's.
 * `name` is the storage as a sentence names it (src/storage/storage.ts describe).
 */
export function warnIfEmptySource(stderr: Writable, source: { readonly name: string; readonly foundTags: number; readonly tags: number; readonly readFaults?: readonly ReadFault[] }, logFormat?: LogFormat): void {
  // A storage that could not be read whole is not empty: its read faults are said instead (and fail the run).
  if (source.tags > 0 || (source.readFaults?.length ?? 0) > 0) return;
  const message = source.foundTags === 0 ? `no tags found in ${source.name}` : `the selection kept none of the ${count(source.foundTags, 'tag')} in ${source.name}`;
  if (logFormat === 'json') writeJsonLog(stderr, { level: 'warn', event: 'notice', message });
  else stderr.write(`regmigrate: warning: ${message}\n`);
}

import type { Command } from 'commander';
import { PROJECT_NAME_RE } from '../harbor/schema.js';
import { parseMapRule, type MapRule } from '../plan/map-names.js';
import type { SourceSelection } from '../transfer/push.js';
import { collect, OptionProblems, parseGlobs } from './options.js';
import { parseShard, type Shard } from '../plan/shard.js';

export interface SelectionFlags {
  include?: string[];
  exclude?: string[];
  map?: string[];
  defaultProject?: string;
  includeUntagged?: boolean;
  shard?: string;
  shards?: string;
  shardBy?: string;
}

/** `--include/--exclude/--map/--default-project`: which source repositories, under which destination names. */
export function addSelectionOptions(command: Command): Command {
  command
    .option('--include <glob>', 'only source repositories matching this glob (repeatable)', collect)
    .option('--exclude <glob>', 'skip source repositories matching this glob (repeatable)', collect)
    .option('--map <from=to>', 'rename a source repository prefix (repeatable; longest match wins)', collect)
    .option('--default-project <name>', 'project for single-level names like busybox (default library)')
    .option('--include-untagged', 'also migrate manifests no tag points at (by digest)');
  return addShardOptions(command);
}

/** `--shard/--shards/--shard-by`: for every command, scan included. */
export function addShardOptions(command: Command): Command {
  return command
    .option('--shard <k/n>', 'only shard k of n (0-based), split by destination repository')
    .option('--shards <n>', 'with JOB_COMPLETION_INDEX set (a Kubernetes Indexed Job): --shard $JOB_COMPLETION_INDEX/n')
    .option('--shard-by <unit>', 'repository (default) or project: keep a project in one shard (its shared layers sent once)');
}

export function normalizeShard(flags: SelectionFlags, env: NodeJS.ProcessEnv, problems: OptionProblems): Shard | undefined {
  const by = flags.shardBy ?? 'repository';
  if (by !== 'repository' && by !== 'project') problems.add(`--shard-by must be repository or project, not "${by}"`);
  const unit = by === 'project' ? 'project' : 'repository';
  let text = flags.shard;
  if (flags.shards !== undefined) {
    if (text !== undefined) problems.add('--shard and --shards do not go together');
    const index = env.JOB_COMPLETION_INDEX;
    if (index === undefined || !/^\d+$/.test(index)) problems.add('--shards needs JOB_COMPLETION_INDEX set to a number (a Kubernetes Indexed Job sets it)');
    else text = `${index}/${flags.shards}`;
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
  const maps: MapRule[] = [];
  for (const text of flags.map ?? []) {
    const rule = parseMapRule(text);
    if (typeof rule === 'string') problems.add(rule);
    else maps.push(rule);
  }
  const defaultProject = flags.defaultProject ?? 'library';
  if (!PROJECT_NAME_RE.test(defaultProject)) problems.add(`--default-project "${defaultProject}" is not a valid project name`);
  return {
    root,
    include: parseGlobs('--include', flags.include, problems),
    exclude: parseGlobs('--exclude', flags.exclude, problems),
    maps,
    defaultProject,
    includeUntagged: flags.includeUntagged ?? false,
    ...(shard ? { shard } : {}),
  };
}

import type { Command } from 'commander';
import { PROJECT_NAME_RE } from '../harbor/schema.js';
import { parseMapRule, type MapRule } from '../plan/map-names.js';
import type { SourceSelection } from '../transfer/push.js';
import { collect, OptionProblems, parseGlobs } from './options.js';

export interface SelectionFlags {
  include?: string[];
  exclude?: string[];
  map?: string[];
  defaultProject?: string;
  includeUntagged?: boolean;
}

/** `--include/--exclude/--map/--default-project`: which source repositories, under which destination names. */
export function addSelectionOptions(command: Command): Command {
  return command
    .option('--include <glob>', 'only source repositories matching this glob (repeatable)', collect)
    .option('--exclude <glob>', 'skip source repositories matching this glob (repeatable)', collect)
    .option('--map <from=to>', 'rename a source repository prefix (repeatable; longest match wins)', collect)
    .option('--default-project <name>', 'project for single-level names like busybox (default library)')
    .option('--include-untagged', 'also migrate manifests no tag points at (by digest)');
}

export function normalizeSelection(root: string, flags: SelectionFlags, problems: OptionProblems): SourceSelection {
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
  };
}

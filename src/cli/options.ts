import { availableParallelism } from 'node:os';
import { UsageError } from '../errors.js';
import type { OutputFormat } from '../inventory/render.js';
import { globProblem } from '../util/glob.js';
import { scanConcurrency } from '../tuning.js';
import { flagOf, inRange, WHOLE_RANGES, type WholeSetting } from './ranges.js';

/** commander collector for repeatable options (`--include a --include b`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * Option problems are gathered and reported together (docs/architecture.md, Options handling): a user fixing a command line should see every
 * mistake at once, not one per run.
 */
export class OptionProblems {
  readonly #problems: string[] = [];

  add(problem: string): void {
    this.#problems.push(problem);
  }

  throwIfAny(): void {
    if (this.#problems.length === 0) return;
    throw new UsageError(this.#problems.join('; '), 'see --help');
  }
}

export function parseOutputFormat(value: string | undefined, problems: OptionProblems): OutputFormat {
  const format = value ?? 'table';
  if (format === 'table' || format === 'json' || format === 'csv' || format === 'html') return format;
  problems.add(`--output must be table, json, csv or html, not "${format}"`);
  return 'table';
}

export function defaultConcurrency(): number {
  return scanConcurrency(availableParallelism());
}

/**
 * A whole-number flag, checked against its setting's range (ranges.ts WHOLE_RANGES, which the config file's key is
 * checked against too); `fallback` when the flag is absent or wrong (then a problem says so).
 */
export function parseWholeOption<F extends number | undefined>(setting: WholeSetting, value: string | undefined, fallback: F, problems: OptionProblems): number | F {
  if (value === undefined) return fallback;
  if (!inRange(setting, value)) {
    const { min, max } = WHOLE_RANGES[setting];
    problems.add(`${flagOf(setting)} must be a whole number from ${min} to ${max}, not "${value}"`);
    return fallback;
  }
  return Number(value);
}

export function parseGlobs(name: string, values: string[] | undefined, problems: OptionProblems): string[] {
  const globs = values ?? [];
  for (const glob of globs) {
    if (glob.trim() === '' || /[\s\\]/.test(glob)) problems.add(`${name} "${glob}" is not a repository glob`);
    else if (globProblem(glob)) problems.add(`${name} "${glob}" ${globProblem(glob)}`);
  }
  return globs;
}

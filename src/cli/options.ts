import { availableParallelism } from 'node:os';
import { UsageError } from '../errors.js';
import type { OutputFormat } from '../inventory/render.js';
import { globProblem } from '../util/glob.js';

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
  return Math.max(4, Math.min(16, availableParallelism() * 4));
}

export function parsePositiveInt(name: string, value: string | undefined, fallback: number, problems: OptionProblems, max = 1024, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    problems.add(`${name} must be a whole number from ${min} to ${max}, not "${value}"`);
    return fallback;
  }
  return n;
}

export function parseGlobs(name: string, values: string[] | undefined, problems: OptionProblems): string[] {
  const globs = values ?? [];
  for (const glob of globs) {
    if (glob.trim() === '' || /[\s\\]/.test(glob)) problems.add(`${name} "${glob}" is not a repository glob`);
    else if (globProblem(glob)) problems.add(`${name} "${glob}" ${globProblem(glob)}`);
  }
  return globs;
}

/** `REGMIGRATE_SHARD_WAIT_SECONDS`: how long a shard waits for a blob another shard uploads (SHARD_WAIT_MS), in ms. */
export function shardWaitFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const text = env.REGMIGRATE_SHARD_WAIT_SECONDS ?? '';
  return /^\d+(\.\d+)?$/.test(text) ? Math.round(Number(text) * 1000) : undefined;
}

/** `REGMIGRATE_BATCH_TAGS`: tags a push, sync or streaming scan holds at once (a tuning knob; tests make it small). */
export function batchTagsFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const text = env.REGMIGRATE_BATCH_TAGS ?? '';
  return /^[1-9]\d*$/.test(text) ? Number(text) : undefined;
}

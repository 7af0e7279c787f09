import { MAX_SHARDS } from '../plan/shard.js';

/**
 * Every whole-number setting and the one range it is checked against, as a flag (`--concurrency 300`, options.ts
 * parseWholeOption) and as a key of the config file (`transfer.concurrency: 300`, values.ts VALUE_CHECKS): one
 * table, so `config check` and a run can never disagree about a value. Keys are the settings' names in the config
 * file (camelCase of the flag).
 */
export const WHOLE_RANGES = {
  /** Seconds without progress before a connection counts as dead. */
  timeout: { min: 1, max: 3600 },
  retries: { min: 1, max: 100 },
  keepLatest: { min: 1, max: 1_000_000 },
  shards: { min: 1, max: MAX_SHARDS },
  /** Uploads (push, sync, export) or tags resolved (scan) or probes (diff) in flight. */
  concurrency: { min: 1, max: 256 },
  /** The request budget's cap; its floor is the minimum (one slot for the batch under way, one for the next's probes). */
  maxRequests: { min: 2, max: 1024 },
  waitLock: { min: 0, max: 86_400 },
  lockStale: { min: 1, max: 86_400 },
  maxDelete: { min: 1, max: 10_000_000 },
  /** Not a config key: `sync --final` is asked for on the command line. */
  finalRounds: { min: 1, max: 100 },
} as const satisfies Record<string, { readonly min: number; readonly max: number }>;

export type WholeSetting = keyof typeof WHOLE_RANGES;

/** The flag of a setting: `keepLatest` → `--keep-latest`. */
export function flagOf(setting: string): string {
  return `--${setting.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Whether `value` is a whole number in the setting's range; the range is what a message names. */
export function inRange(setting: WholeSetting, value: string): boolean {
  const { min, max } = WHOLE_RANGES[setting];
  const n = Number(value);
  return value.trim() !== '' && Number.isInteger(n) && n >= min && n <= max;
}

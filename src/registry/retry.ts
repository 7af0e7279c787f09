import { setTimeout as sleep } from 'node:timers/promises';
import { RegistryError } from './errors.js';

export interface RetryPolicy {
  /** Attempts in all, first included. */
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** The longest `Retry-After` we honour; a server asking for more gets this. */
  readonly maxRetryAfterMs?: number;
  /** How to wait between attempts (tests record the delays instead of sleeping through them). */
  readonly wait?: (ms: number) => Promise<void>;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 500, maxDelayMs: 30_000, maxRetryAfterMs: 60_000 };

/**
 * Runs an idempotent step, repeating it on transient failures (429, 5xx, resets: STYLE.md §4) with jittered
 * exponential backoff, or as long as `Retry-After` asks. Registry and Harbor API calls share it.
 */
export async function retryTransient<T>(policy: RetryPolicy, step: () => Promise<T>, onRetry?: () => void): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      if (!(err instanceof RegistryError) || err.failure !== 'transient' || attempt >= policy.attempts) throw err;
      onRetry?.();
      const backoff = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      const jittered = backoff / 2 + Math.random() * (backoff / 2);
      await (policy.wait ?? sleep)(err.retryAfterMs !== undefined ? Math.min(err.retryAfterMs, policy.maxRetryAfterMs ?? 60_000) : jittered);
    }
  }
}

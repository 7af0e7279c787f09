import { setTimeout as sleep } from 'node:timers/promises';
import { RegistryError } from './errors.js';
import { Interrupted } from '../util/stop.js';
import { MAX_RETRY_AFTER_MS, RETRY_ATTEMPTS, RETRY_BASE_DELAY_MS, RETRY_MAX_DELAY_MS } from '../tuning.js';

export interface RetryPolicy {
  /** Attempts in all, first included. */
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** The longest `Retry-After` we honour; a server asking for more gets this. */
  readonly maxRetryAfterMs?: number;
  /** How to wait between attempts (tests record the delays instead of sleeping through them). */
  readonly wait?: (ms: number) => Promise<void>;
  /** The run is stopping (SIGINT/SIGTERM): a wait ends at once and nothing is retried; the failure is Interrupted. */
  readonly signal?: AbortSignal;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: RETRY_ATTEMPTS, baseDelayMs: RETRY_BASE_DELAY_MS, maxDelayMs: RETRY_MAX_DELAY_MS, maxRetryAfterMs: MAX_RETRY_AFTER_MS };

/**
 * Runs an idempotent step, repeating it on transient failures (429, 5xx, resets: docs/architecture.md, Error model) with jittered
 * exponential backoff, or as long as `Retry-After` asks. Registry and Harbor API calls share it.
 */
export async function retryTransient<T>(policy: RetryPolicy, step: () => Promise<T>, onRetry?: () => void): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      if (!(err instanceof RegistryError) || err.failure !== 'transient' || attempt >= policy.attempts) throw err;
      if (policy.signal?.aborted) throw notRetried(err);
      onRetry?.();
      const backoff = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      const jittered = backoff / 2 + Math.random() * (backoff / 2);
      const delay = err.retryAfterMs !== undefined ? Math.min(err.retryAfterMs, policy.maxRetryAfterMs ?? MAX_RETRY_AFTER_MS) : jittered;
      // A `Retry-After: 60` would otherwise hold a Ctrl-C for a minute.
      if (policy.wait) await policy.wait(delay);
      else await sleep(delay, undefined, policy.signal ? { signal: policy.signal } : {}).catch(() => undefined);
      if (policy.signal?.aborted) throw notRetried(err);
    }
  }
}

function notRetried(err: RegistryError): Interrupted {
  return new Interrupted(`${err.message} (not retried: the run is stopping)`, { cause: err });
}

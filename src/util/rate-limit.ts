import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A shared bandwidth cap (`--limit-rate`): every upload of the run takes its bytes from one budget, so N parallel
 * uploads together stay under the rate, not each of them. Each chunk reserves its slot on a virtual clock (GCRA, a
 * token bucket's exact form) and waits for it; an idle limiter lets at most `burstMs` worth through at once (which
 * also lets a late timer catch up), so the rate holds within a few percent over any window of ten seconds.
 */
export class RateLimiter {
  readonly bytesPerSecond: number;
  readonly #burstMs: number;
  #next = 0;

  constructor(bytesPerSecond: number, burstMs = 500) {
    this.bytesPerSecond = bytesPerSecond;
    this.#burstMs = burstMs;
  }

  /** Waits for the slot of `bytes`; an aborted `signal` ends the wait with its AbortError. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    const now = performance.now();
    const start = Math.max(this.#next, now - this.#burstMs);
    this.#next = start + (bytes / this.bytesPerSecond) * 1000;
    const wait = start - now;
    if (wait > 1) await sleep(wait, undefined, signal ? { signal } : {});
  }
}

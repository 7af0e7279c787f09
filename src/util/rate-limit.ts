import { setTimeout as sleep } from 'node:timers/promises';
import { MIN_THROTTLED_STEP_BYTES, THROTTLED_UPLOAD_BLOCK_BYTES } from '../tuning.js';

/** What a body under a bandwidth cap waits on: `take` before each piece of at most `step` bytes goes out. */
export interface Throttle {
  readonly step: number;
  take(bytes: number, signal?: AbortSignal): Promise<void>;
}

/**
 * A shared bandwidth cap (`--limit-rate`): every upload of the run takes its bytes from one budget, so N parallel
 * uploads together stay under the rate, not each of them. Each piece reserves its slot on a virtual clock (GCRA, a
 * token bucket's exact form) and waits for the slot's start; an idle limiter lets at most `burstMs` worth through
 * at once (which also lets a late timer catch up). A piece goes out whole at its slot's start, so pieces are at most
 * a tenth of a second's worth (`step`, down to MIN_THROTTLED_STEP_BYTES): any window of ten seconds then carries at
 * most the rate's share plus the burst and one piece, within 10% at the lowest rate accepted (1 KiB/s).
 */
export class RateLimiter implements Throttle {
  readonly bytesPerSecond: number;
  /** The most bytes one `take` should cover. */
  readonly step: number;
  readonly #burstMs: number;
  readonly #clock: LimiterClock;
  #next = 0;

  constructor(bytesPerSecond: number, burstMs = 500, clock: LimiterClock = REAL_CLOCK) {
    this.bytesPerSecond = bytesPerSecond;
    this.step = Math.max(MIN_THROTTLED_STEP_BYTES, Math.min(THROTTLED_UPLOAD_BLOCK_BYTES, Math.floor(bytesPerSecond / 10)));
    this.#burstMs = burstMs;
    this.#clock = clock;
  }

  /** Waits for the slot of `bytes`; an aborted `signal` ends the wait with its AbortError. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    const now = this.#clock.now();
    const start = Math.max(this.#next, now - this.#burstMs);
    this.#next = start + (bytes / this.bytesPerSecond) * 1000;
    const wait = start - now;
    if (wait > 1) await this.#clock.sleep(wait, signal);
  }
}

/** Milliseconds and waits: the process's, or a test's virtual clock. */
export interface LimiterClock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

const REAL_CLOCK: LimiterClock = {
  now: () => performance.now(),
  sleep: (ms, signal) => sleep(ms, undefined, signal ? { signal } : {}),
};

/**
 * `chunks` as they may go out under `throttle`: cut into its steps, each taken from the budget first, counted by
 * `onBytes` as it is handed on.
 */
export async function* paced(chunks: AsyncIterable<Uint8Array>, throttle: Throttle | undefined, signal?: AbortSignal, onBytes?: (n: number) => void): AsyncGenerator<Buffer> {
  for await (const chunk of chunks) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const step = throttle ? throttle.step : buffer.length;
    for (let at = 0; at < buffer.length; at += step) {
      const piece = step >= buffer.length ? buffer : buffer.subarray(at, at + step);
      if (throttle) await throttle.take(piece.length, signal);
      onBytes?.(piece.length);
      yield piece;
    }
  }
}

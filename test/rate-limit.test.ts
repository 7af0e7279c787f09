/**
 * The bandwidth cap (`--limit-rate`, src/util/rate-limit.ts) on a virtual clock: what goes out, when, through
 * `paced` as an upload body sends it, checked against docs/selection.md ("within 10% over any 10 s window").
 */
import { describe, expect, it } from 'vitest';
import { MIN_THROTTLED_STEP_BYTES, THROTTLED_UPLOAD_BLOCK_BYTES } from '../src/tuning.js';
import { paced, RateLimiter, type LimiterClock } from '../src/util/rate-limit.js';

/**
 * A clock that moves only when everything waits on it: each turn of the event loop wakes the earliest sleeper and
 * sets the time to its wake-up (a discrete-event clock, so sleepers overlap as they would in real time). A sleep
 * cut by its signal rejects with the signal's reason, like the real one.
 */
function virtualClock(): LimiterClock {
  const sleepers: Array<{ at: number; wake: () => void }> = [];
  let now = 0;
  let turning = false;
  const turn = (): void => {
    if (turning) return;
    turning = true;
    setImmediate(() => {
      turning = false;
      sleepers.sort((a, b) => a.at - b.at);
      const first = sleepers.shift();
      if (!first) return;
      now = Math.max(now, first.at);
      first.wake();
      if (sleepers.length > 0) turn();
    });
  };
  return {
    now: () => now,
    sleep: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason as Error);
        const sleeper = { at: now + ms, wake: resolve };
        sleepers.push(sleeper);
        signal?.addEventListener('abort', () => {
          const i = sleepers.indexOf(sleeper);
          if (i >= 0) sleepers.splice(i, 1);
          reject(signal.reason as Error);
        });
        turn();
      }),
  };
}

/** Blobs of `sizes` bytes sent through one limiter, `parallel` at a time: [time, bytes] of each piece handed on. */
async function send(limiter: RateLimiter, clock: LimiterClock, sizes: readonly number[], parallel: number): Promise<Array<[number, number]>> {
  const sent: Array<[number, number]> = [];
  const zeros = Buffer.alloc(Math.max(...sizes));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < sizes.length) {
      const size = sizes[next++]!;
      async function* blob(): AsyncGenerator<Buffer> {
        yield zeros.subarray(0, size);
      }
      for await (const piece of paced(blob(), limiter)) sent.push([clock.now(), piece.length]);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return sent;
}

/** The most bytes handed on within any window of `ms` that starts at a piece. */
function busiestWindow(sent: Array<[number, number]>, ms: number): number {
  const sorted = [...sent].sort((a, b) => a[0] - b[0]);
  let most = 0;
  for (let i = 0; i < sorted.length; i++) {
    let bytes = 0;
    for (let j = i; j < sorted.length && sorted[j]![0] < sorted[i]![0] + ms; j++) bytes += sorted[j]![1];
    most = Math.max(most, bytes);
  }
  return most;
}

describe('the bandwidth cap', () => {
  it('cuts bodies into pieces of at most a tenth of a second of the rate, between the two bounds', () => {
    expect(new RateLimiter(1024).step).toBe(MIN_THROTTLED_STEP_BYTES);
    expect(new RateLimiter(20 * 1024).step).toBe(2048);
    expect(new RateLimiter(50 * 1024 * 1024).step).toBe(THROTTLED_UPLOAD_BLOCK_BYTES);
  });

  for (const [name, rate] of [
    ['1 KiB/s (the lowest rate accepted)', 1024],
    ['2 KiB/s', 2048],
    ['4 MiB/s', 4 * 1024 * 1024],
  ] as const) {
    it(`${name}: eight uploads of blobs larger than a second's worth stay within 10% of the rate over any 10 s window`, async () => {
      const clock = virtualClock();
      const limiter = new RateLimiter(rate, 500, clock);
      // Blobs of 15 s worth each, the largest a demo image has at 2 KiB/s: a blob handed on whole at its slot's
      // start was a burst of all of it.
      const sizes = Array.from({ length: 12 }, () => rate * 15);
      const sent = await send(limiter, clock, sizes, 8);
      expect(sent.reduce((n, [, b]) => n + b, 0)).toBe(rate * 15 * 12);
      expect(busiestWindow(sent, 10_000)).toBeLessThanOrEqual(rate * 10 * 1.1);
    });
  }

  it('a wait cut by its signal ends the body with the signal reason', async () => {
    const clock = virtualClock();
    const limiter = new RateLimiter(1024, 0, clock);
    const stop = new AbortController();
    async function* blob(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(4096);
    }
    const pieces: number[] = [];
    const reading = (async () => {
      for await (const piece of paced(blob(), limiter, stop.signal)) {
        pieces.push(piece.length);
        stop.abort(new Error('cut'));
      }
    })();
    await expect(reading).rejects.toThrow('cut');
    expect(pieces).toEqual([MIN_THROTTLED_STEP_BYTES]);
  });
});

/**
 * Transfer rate for progress output: the current rate (the last WINDOW_SECONDS), a smoothed one (an exponentially
 * weighted mean of whole seconds, time constant SMOOTHING_SECONDS) and the time left at the smoothed rate. A
 * multi-hour migration swings between small and large layers; the current rate shows a stall at once, the smoothed
 * one gives an ETA that does not jump with every layer.
 */

/** Seconds the current rate looks back. */
const WINDOW_SECONDS = 10;
/** Time constant of the smoothed rate: a change of rate shows 63% in this many seconds. */
const SMOOTHING_SECONDS = 60;
const ALPHA = 1 - Math.exp(-1 / SMOOTHING_SECONDS);

export interface RateSnapshot {
  /** Bytes per second over the last seconds. */
  readonly current: number;
  /** Bytes per second, exponentially smoothed. */
  readonly smoothed: number;
  /** Seconds left for `remaining` bytes at the smoothed rate; undefined before any byte moved. */
  readonly etaSeconds: number | undefined;
}

export class RateMeter {
  private readonly started: number;
  /** Bytes per whole second since `started` (second index → bytes), the last WINDOW_SECONDS + 1 of them. */
  private readonly buckets = new Map<number, number>();
  /** Seconds folded into `mean` so far, and the weighted mean before its bias correction. */
  private folded = 0;
  private mean = 0;

  /**
   * `cap`: `--limit-rate` in bytes per second, an upper bound of the smoothed rate and so of the ETA's speed. The
   * first seconds can measure above it (an idle limiter lets a burst through, src/util/rate-limit.ts), and the
   * smoothed mean's bias correction weighs those seconds fully: unbounded, the first ETAs promise several times
   * the allowed rate.
   */
  constructor(
    private readonly now: () => number = Date.now,
    private readonly cap?: number,
  ) {
    this.started = now();
  }

  add(bytes: number): void {
    const second = this.second();
    this.fold(second);
    this.buckets.set(second, (this.buckets.get(second) ?? 0) + bytes);
  }

  snapshot(remaining: number): RateSnapshot {
    const now = this.now();
    const second = this.second(now);
    this.fold(second);
    const elapsedMs = now - this.started;
    const from = Math.max(0, second - WINDOW_SECONDS + 1);
    let bytes = 0;
    for (const [s, n] of this.buckets) if (s >= from) bytes += n;
    const spanMs = Math.min(elapsedMs, now - (this.started + from * 1000));
    const current = spanMs > 0 ? (bytes * 1000) / spanMs : 0;
    // A fresh mean starts at 0: divided by the weight it has gathered (1 - (1-α)^n), it is unbiased from the start.
    const measured = this.folded > 0 ? this.mean / (1 - (1 - ALPHA) ** this.folded) : current;
    const smoothed = this.cap !== undefined && this.cap > 0 ? Math.min(measured, this.cap) : measured;
    const etaSeconds = smoothed > 0 ? Math.max(0, remaining) / smoothed : undefined;
    return { current, smoothed, etaSeconds };
  }

  private second(now = this.now()): number {
    return Math.floor((now - this.started) / 1000);
  }

  /** Folds every whole second before `second` into the smoothed mean, idle ones as 0 B/s. */
  private fold(second: number): void {
    while (this.folded < second) {
      const bytes = this.buckets.get(this.folded) ?? 0;
      this.mean += ALPHA * (bytes - this.mean);
      this.folded++;
      // A long idle stretch is folded in closed form: each idle second multiplies the mean by (1 - α).
      if (bytes === 0 && !this.hasBucketsFrom(this.folded, second)) {
        this.mean *= (1 - ALPHA) ** (second - this.folded);
        this.folded = second;
      }
    }
    for (const s of this.buckets.keys()) if (s < second - WINDOW_SECONDS) this.buckets.delete(s);
  }

  private hasBucketsFrom(from: number, to: number): boolean {
    for (const s of this.buckets.keys()) if (s >= from && s < to) return true;
    return false;
  }
}

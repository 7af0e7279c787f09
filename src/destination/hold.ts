/**
 * The "not before" time of one destination: the latest `Retry-After` it sent holds back new work and retries until
 * then (destination/budget.ts). Ended by its own timer, or at once by `lift()` when the run stops.
 */

/** Time, as the budget sees it: tests give their own clock and fire its timers by hand. */
export interface BudgetClock {
  now(): number;
  /** Calls `fn` after `ms`; may return a way to cancel it. */
  later(ms: number, fn: () => void): (() => void) | void;
}

export const SYSTEM_CLOCK: BudgetClock = {
  // Monotonic: a wall clock set back by an hour while a hold is on would make it last an hour more.
  now: () => performance.now(),
  // Kept referenced: work queued behind a `Retry-After` is all a run may be waiting for.
  later: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/** The longest `Retry-After` that holds new work back, as the retry layer's (registry/retry.ts DEFAULT_RETRY). */
export const MAX_HOLD_MS = 60_000;

export class Hold {
  readonly #clock: BudgetClock;
  /** Called when the hold ends by itself (its time passed), not when it is lifted. */
  readonly #onEnd: () => void;
  /** Nothing new starts before this time (ms, the clock's); 0: no hold. */
  #until = 0;
  /** The time the pending timer was set for (0: none). */
  #timerAt = 0;
  #cancelTimer: (() => void) | void = undefined;

  constructor(clock: BudgetClock, onEnd: () => void) {
    this.#clock = clock;
    this.#onEnd = onEnd;
  }

  /** The time before which nothing new starts here (0: none). */
  get until(): number {
    return this.#until;
  }

  /** How long the hold still lasts, in ms (0: none). */
  remaining(): number {
    return Math.max(0, this.#until - this.#clock.now());
  }

  passed(): boolean {
    return this.#clock.now() >= this.#until;
  }

  /** The destination asked for `ms` without new work (`Retry-After`, capped at MAX_HOLD_MS); a shorter ask changes nothing. */
  extend(ms: number): void {
    const time = this.#clock.now() + Math.min(ms, MAX_HOLD_MS);
    if (time <= this.#until) return;
    this.#until = time;
    this.#arm();
  }

  /** Ends the hold at once, without `onEnd` (the caller wakes what waits). */
  lift(): void {
    this.#until = 0;
    this.#timerAt = 0;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
  }

  /**
   * A timer for the end of the hold, the only thing that ends it: what waits behind it (new work, and retries once
   * nothing is in flight) is woken by nothing else. A timer may fire before the clock reads its time: Node's run on
   * libuv's loop time, kept in whole milliseconds, and about one in fifty fires when `Date.now()` is still a
   * millisecond short of it (none of 2,000 against `performance.now()`, measured here; nothing promises it). One
   * that fires early sets another for the rest of the hold.
   */
  #arm(): void {
    const at = this.#until;
    if (this.#timerAt === at) return;
    this.#timerAt = at;
    this.#cancelTimer?.();
    this.#cancelTimer = this.#clock.later(at - this.#clock.now(), () => {
      if (this.#timerAt !== at) return;
      this.#timerAt = 0;
      this.#cancelTimer = undefined;
      if (!this.passed()) return this.#arm();
      this.#onEnd();
    });
  }
}

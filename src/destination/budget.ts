/**
 * The request budget of one destination: how many requests of each kind a run keeps in flight there, shared by every
 * batch and stage of the run. Created once, when the destination is connected (destination.ts).
 *
 * The budget adapts as TCP's congestion window does: it starts in slow start, growing by one slot per success while
 * work waits for a slot (doubling every window, so a run across a long round trip reaches its cap within a few
 * round trips); after the first push-back it grows by one slot per window (as many successful completions as it
 * has slots: AIMD). When the destination answers 429 or 503, or errors rise, it halves, at most once per window:
 * only a push-back to a request sent after the last halving halves again (a burst of 429s to the requests in flight
 * when it halved halves it once). It never goes below its floor or above its cap. A `Retry-After` sets a time before which nothing new starts at this destination, and retries then go first,
 * each only when the halved budget has room for it (retry.ts waits through `pauseForRetry`).
 */

import { requestCap, requestConcurrency, TRANSFER_CONCURRENCY } from '../tuning.js';

/** Time, as the budget sees it: tests give their own clock and fire its timers by hand. */
export interface BudgetClock {
  now(): number;
  /** Calls `fn` after `ms`; may return a way to cancel it. */
  later(ms: number, fn: () => void): (() => void) | void;
}

const SYSTEM_CLOCK: BudgetClock = {
  now: () => Date.now(),
  // Kept referenced: work queued behind a `Retry-After` is all a run may be waiting for.
  later: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/** The longest `Retry-After` that holds new work back, as the retry layer's (registry/retry.ts DEFAULT_RETRY). */
const MAX_HOLD_MS = 60_000;

/** How a budget may move: it starts at `initial` and stays within `floor`..`cap`. */
export interface BudgetLimits {
  readonly initial: number;
  readonly floor: number;
  readonly cap: number;
}

/** What halves a budget: a 429 or 503, or a window in which errors (5xx, resets) reached the error share. */
export type BudgetReason = 429 | 503 | 'errors';

/** A budget halved: reported in the JSON log as a `budget` event. */
export interface BudgetChange {
  readonly budget: 'requests' | 'uploads';
  readonly from: number;
  readonly to: number;
  readonly reason: BudgetReason;
}

/** Where a budget's start of new work is held back: the destination's "not before" time and retries waiting. */
interface Gate {
  /** New work may start now (no `Retry-After` pending, no retry waiting for room). */
  open(): boolean;
  /** A slot was freed: a waiting retry may go. */
  freed(): void;
}

/** Slots of one kind, handed out first come first served; `probe` work waits behind `run` work and has a share. */
export class RequestBudget {
  #size: number;
  readonly #floor: number;
  readonly #cap: number;
  /** Fixed when given; otherwise half of the current size. */
  readonly #probeShare: number | undefined;
  #active = 0;
  #activeProbes = 0;
  readonly #waiting: Array<() => void> = [];
  readonly #waitingFirst: Array<() => void> = [];
  readonly #waitingProbes: Array<() => void> = [];
  #gate: Gate | undefined;

  // The window under way (AIMD): successes since the size last moved; whether work waited for a slot (only then
  // does a larger budget hide more round trips); whether the destination pushed back.
  #successes = 0;
  #wanted = false;
  #congested = false;
  /** Until the first push-back: one slot more per success while work waits (TCP's slow start). */
  #slowStart = true;
  // After a halving, the next completions, as many as were in flight then, answer from the old window: they count
  // toward no growth.
  #oldInFlight = 0;

  /**
   * `size` slots (fixed), or limits to adapt within. Probes (asking what the destination holds, for a batch still to
   * come) take at most `probeShare` of them (half of the current size by default) while work of the batch under way
   * (mounts, manifest PUTs, verification) is in flight or waiting, so that work always finds a slot within a few
   * requests; with none, they may take every slot.
   */
  constructor(size: number | BudgetLimits, probeShare?: number) {
    const limits = typeof size === 'number' ? { initial: size, floor: size, cap: size } : size;
    if (!(limits.floor >= 1)) throw new RangeError(`a request budget needs at least one slot, not ${limits.floor}`);
    if (!(limits.cap >= limits.floor)) throw new RangeError(`a request budget's cap (${limits.cap}) is below its floor (${limits.floor})`);
    this.#floor = Math.floor(limits.floor);
    this.#cap = Math.floor(limits.cap);
    this.#size = Math.min(this.#cap, Math.max(this.#floor, Math.floor(limits.initial)));
    this.#probeShare = probeShare === undefined ? undefined : Math.max(1, Math.floor(probeShare));
  }

  get size(): number {
    return this.#size;
  }

  get floor(): number {
    return this.#floor;
  }

  get cap(): number {
    return this.#cap;
  }

  /** Requests in flight now. */
  get active(): number {
    return this.#active;
  }

  /** Work of the batch under way: it goes before any probe waiting. */
  run<T>(work: () => Promise<T>): Promise<T> {
    return this.#enter(work, this.#waiting);
  }

  /**
   * Work that finishes an image already under way (its manifests, its verification): it goes before all other
   * waiting work, so images land in a steady stream instead of all at the end of a batch.
   */
  runFirst<T>(work: () => Promise<T>): Promise<T> {
    return this.#enter(work, this.#waitingFirst);
  }

  /** Asking ahead (the next batch's probes): within the probe share, and only when no `run` work waits. */
  probe<T>(work: () => Promise<T>): Promise<T> {
    return this.#enter(work, this.#waitingProbes);
  }

  /** Joins the destination's gate (DestinationBudget): its "not before" time and waiting retries hold new work. */
  attach(gate: Gate): void {
    this.#gate = gate;
  }

  /**
   * The destination pushed back (429/503, or errors rose): halve, unless nothing of this budget is in flight (an
   * idle budget adds no load). Returns the change, or undefined. Once per window: DestinationBudget asks only for
   * push-backs to requests sent after the last halving.
   */
  halve(reason: BudgetReason, budget: BudgetChange['budget']): BudgetChange | undefined {
    this.#congested = true;
    this.#slowStart = false;
    if (this.#active === 0) return undefined;
    const from = this.#size;
    this.#size = Math.max(this.#floor, Math.floor(from / 2));
    this.#oldInFlight = this.#active;
    this.#newWindow();
    return this.#size === from ? undefined : { budget, from, to: this.#size, reason };
  }

  #newWindow(): void {
    this.#successes = 0;
    this.#wanted = false;
    this.#congested = false;
  }

  /**
   * Slow start: one slot more for each success while work waits. Then additive increase: one slot more after a
   * window of successes in which work waited and nobody pushed back.
   */
  #succeeded(): void {
    if (this.#slowStart) {
      if (this.#waitingFirst.length + this.#waiting.length + this.#waitingProbes.length > 0 && this.#size < this.#cap) this.#size++;
      return;
    }
    if (++this.#successes < this.#size) return;
    if (this.#wanted && !this.#congested && this.#size < this.#cap) this.#size++;
    this.#newWindow();
  }

  #enter<T>(work: () => Promise<T>, queue: Array<() => void>): Promise<T> {
    const probe = queue === this.#waitingProbes;
    return new Promise<T>((resolve, reject) => {
      const start = (): void => {
        this.#active++;
        if (probe) this.#activeProbes++;
        const release = (ok: boolean): void => {
          this.#active--;
          if (probe) this.#activeProbes--;
          // What ends while the old window drains tells nothing of the halved size.
          const recovering = this.#oldInFlight > 0;
          if (recovering) this.#oldInFlight--;
          if (ok && !recovering) this.#succeeded();
          this.#gate?.freed();
          this.#next();
        };
        // The slot is free before the caller hears back, so what it starts next can have it.
        void (async () => work())().then(
          (value) => {
            release(true);
            resolve(value);
          },
          (err: unknown) => {
            release(false);
            reject(err);
          },
        );
      };
      queue.push(start);
      this.#next();
    });
  }

  /** Starts what may start: waiting `run` work first, then probes within their share; nothing while the gate is shut. */
  next(): void {
    this.#next();
  }

  #next(): void {
    if (this.#gate && !this.#gate.open()) return;
    // With no work of the batch under way or waiting, probes may have every slot: what comes next waits for one
    // request at most, and then goes first.
    const idle = this.#active === this.#activeProbes && this.#waiting.length + this.#waitingFirst.length === 0;
    const share = idle ? this.#size : (this.#probeShare ?? Math.max(1, Math.floor(this.#size / 2)));
    while (this.#active < this.#size) {
      const start = this.#waitingFirst.shift() ?? this.#waiting.shift() ?? (this.#activeProbes < share ? this.#waitingProbes.shift() : undefined);
      if (!start) return;
      start();
    }
    if (this.#waitingFirst.length + this.#waiting.length + this.#waitingProbes.length > 0) this.#wanted = true;
  }
}

/** The limits `--concurrency` and `--max-requests` give (transfer-command.ts budgetLimits). */
export interface BudgetSizes {
  readonly uploads: BudgetLimits | number;
  readonly requests: BudgetLimits | number;
}

/**
 * The defaults when no transfer sizes them (`--concurrency` 8). Requests start at twice the uploads (at least 16)
 * and may grow to their cap: the connection pool connectDestination opens has a connection for every slot.
 */
export const DEFAULT_BUDGET = {
  uploads: { initial: TRANSFER_CONCURRENCY, floor: 1, cap: TRANSFER_CONCURRENCY },
  requests: { initial: requestConcurrency(TRANSFER_CONCURRENCY), floor: 2, cap: requestCap(TRANSFER_CONCURRENCY) },
} as const satisfies BudgetSizes;

/** In a window of responses, errors (5xx but 503, resets, timeouts) at this share or more halve the budgets. */
const ERROR_SHARE = 0.25;
/** ... and at least this many: one reset among four requests is no trend. */
const MIN_ERRORS = 2;

/**
 * What a run sends to one destination at once: the request budget (HEADs, mounts, manifest PUTs, tag probes, Harbor
 * artifact reads and verification GETs) and the smaller upload budget (blob uploads or skopeo copies: the bytes in
 * flight). Both hear every response the registry client gets (`onResponse`, `onError`), halve together when the
 * destination pushes back, and share one "not before" time.
 */
export class DestinationBudget {
  readonly requests: RequestBudget;
  readonly uploads: RequestBudget;
  readonly #clock: BudgetClock;
  readonly #listeners: Array<(change: BudgetChange) => void> = [];
  /** Nothing new starts before this time (ms, the clock's): the latest `Retry-After` heard. */
  #notBefore = 0;
  #timerAt = 0;
  #cancelTimer: (() => void) | void = undefined;
  /** Slots whose work sleeps before a retry, and retries that slept and wait for room. */
  #parked = 0;
  readonly #retries: Array<() => void> = [];
  #responses = 0;
  #errors = 0;
  /** Halvings so far: each request carries the count from when it went out (onSend), and only a 429 or 503 to a
   * request sent after the last halving halves again (TCP's once per round trip). Retries waiting in their slots
   * are sent after it, so a throttling destination that keeps refusing them halves the budget again. */
  #window = 0;

  constructor(sizes: BudgetSizes = DEFAULT_BUDGET, clock: BudgetClock = SYSTEM_CLOCK) {
    this.requests = new RequestBudget(sizes.requests);
    this.uploads = new RequestBudget(sizes.uploads);
    this.#clock = clock;
    const gate: Gate = { open: () => this.#open(), freed: () => this.#admit() };
    this.requests.attach(gate);
    this.uploads.attach(gate);
  }

  /** The time before which nothing new starts here (0: none). */
  get notBefore(): number {
    return this.#notBefore;
  }

  /**
   * The run is stopping: a `Retry-After` holds nothing back any more, so work queued behind it starts and sees the
   * stop at once (it starts no request) instead of waiting out the hold.
   */
  lift(): void {
    this.#notBefore = 0;
    this.#timerAt = 0;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#admit();
    this.#wake();
  }

  /** Hears each halving (the JSON log's `budget` event). */
  onChange(listener: (change: BudgetChange) => void): void {
    this.#listeners.push(listener);
  }

  /** A request goes out to the destination: what its response is to hand back to `onResponse`. */
  onSend(): number {
    return this.#window;
  }

  /**
   * Every response the registry client gets (registry/http.ts), with its `Retry-After` in ms when it had one, and
   * what `onSend` gave its request.
   */
  onResponse(status: number, retryAfterMs: number | undefined, sent: number): void {
    if (status === 429 || status === 503) {
      if (retryAfterMs !== undefined && retryAfterMs > 0) this.#holdUntil(this.#clock.now() + Math.min(retryAfterMs, MAX_HOLD_MS));
      if (sent === this.#window) this.#pushBack(status);
      return;
    }
    this.#count(status >= 500);
  }

  /** A request that got no response (reset, refused, timed out). */
  onError(): void {
    this.#count(true);
  }

  /**
   * Between two attempts of one step (retry.ts `wait`): the step's slot is parked while it sleeps `ms`, then the
   * retry waits until the "not before" time has passed and the budgets have room for one more request in flight;
   * waiting retries go before new work. Ends at once when `signal` aborts (the run is stopping).
   */
  async pauseForRetry(ms: number, sleep: (ms: number) => Promise<void>, signal?: AbortSignal): Promise<void> {
    this.#parked++;
    // A slot parked is one request fewer in flight: room, maybe, for a retry that waits.
    this.#admit();
    let parked = true;
    const unpark = (): void => {
      if (!parked) return;
      parked = false;
      this.#parked--;
    };
    try {
      await sleep(ms);
      if (signal?.aborted) return;
      await new Promise<void>((resolve) => {
        const cancel = (): void => {
          const at = this.#retries.indexOf(go);
          if (at >= 0) this.#retries.splice(at, 1);
          resolve();
        };
        // Called by #admit: the retry is in flight from here on, no longer parked.
        const go = (): void => {
          unpark();
          signal?.removeEventListener('abort', cancel);
          resolve();
        };
        signal?.addEventListener('abort', cancel, { once: true });
        this.#retries.push(go);
        this.#admit();
      });
    } finally {
      unpark();
      this.#wake();
    }
  }

  /** Requests in flight, parked retries left out: what the destination is serving now. */
  #inFlight(): number {
    return this.requests.active + this.uploads.active - this.#parked;
  }

  #open(): boolean {
    return this.#retries.length === 0 && this.#clock.now() >= this.#notBefore;
  }

  /**
   * Lets waiting retries go, one per free slot of the two budgets together, once the "not before" time passed. A
   * budget counts only the slots it has taken (up to its size): an idle upload budget's slots were never tried on the
   * destination and let no retry of a request through.
   */
  #admit(): void {
    if (this.#clock.now() < this.#notBefore) return;
    const room = Math.min(this.requests.size, this.requests.active) + Math.min(this.uploads.size, this.uploads.active);
    while (this.#retries.length > 0 && this.#inFlight() < room) this.#retries.shift()!();
  }

  #holdUntil(time: number): void {
    if (time <= this.#notBefore) return;
    this.#notBefore = time;
    this.#arm();
  }

  /**
   * A timer for the end of the hold, the only thing that ends it: what waits behind it (new work, and retries once
   * nothing is in flight) is woken by nothing else. A timer may fire before the clock reads its time (Node's run on
   * libuv's loop time, kept in whole milliseconds, not on `Date.now()`: about one in fifty fires a millisecond
   * early), so one that fires early sets another for the rest of the hold.
   */
  #arm(): void {
    const at = this.#notBefore;
    if (this.#timerAt === at) return;
    this.#timerAt = at;
    this.#cancelTimer?.();
    this.#cancelTimer = this.#clock.later(at - this.#clock.now(), () => {
      if (this.#timerAt !== at) return;
      this.#timerAt = 0;
      this.#cancelTimer = undefined;
      if (this.#clock.now() < this.#notBefore) return this.#arm();
      this.#admit();
      this.#wake();
    });
  }

  #wake(): void {
    this.requests.next();
    this.uploads.next();
  }

  #pushBack(reason: BudgetReason): void {
    this.#window++;
    for (const [name, budget] of [['requests', this.requests], ['uploads', this.uploads]] as const) {
      const change = budget.halve(reason, name);
      if (change) for (const listener of this.#listeners) listener(change);
    }
    this.#responses = 0;
    this.#errors = 0;
  }

  /** A window of responses (as many as both budgets have slots): errors at the error share halve the budgets. */
  #count(error: boolean): void {
    this.#responses++;
    if (error) this.#errors++;
    if (this.#responses < this.requests.size + this.uploads.size) return;
    const rising = this.#errors >= MIN_ERRORS && this.#errors >= this.#responses * ERROR_SHARE;
    this.#responses = 0;
    this.#errors = 0;
    if (rising) this.#pushBack('errors');
  }
}

/** A destination's budget; `sizes` from the transfer's flags. */
export function createBudget(sizes: BudgetSizes = DEFAULT_BUDGET, clock?: BudgetClock): DestinationBudget {
  return new DestinationBudget(sizes, clock);
}

/**
 * The request budget of one destination: how many requests of each kind a run keeps in flight there, shared by every
 * batch and stage of the run. Created once, when the destination is connected (destination.ts).
 *
 * Two budgets of slots (request-budget.ts) adapt as TCP's congestion window does: slow start, then one slot more per
 * window of successes (AIMD). When the destination answers 429 or 503, or errors rise, both halve, at most once per
 * window: only a push-back to a request sent after the last halving halves again (a burst of 429s to the requests in
 * flight when it halved halves them once). A `Retry-After` sets a time before which nothing new starts at this
 * destination (hold.ts), and retries then go first, each only when the halved budgets have room for it
 * (retry-room.ts; retry.ts waits through `pauseForRetry`).
 */

import { requestCap, requestConcurrency, TRANSFER_CONCURRENCY } from '../tuning.js';
import { Hold, SYSTEM_CLOCK, type BudgetClock } from './hold.js';
import { RequestBudget, type BudgetChange, type BudgetLimits, type BudgetReason, type Gate } from './request-budget.js';
import { RetryRoom } from './retry-room.js';

export type { BudgetClock } from './hold.js';
export { RequestBudget, type BudgetChange, type BudgetLimits, type BudgetReason } from './request-budget.js';

/** The limits `--concurrency` and `--max-requests` give (cli/transfer-command.ts budgetSizes). */
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

/** DestinationBudget.pending(): what a run that stopped making progress names (cli/stall.ts). */
export interface BudgetPending {
  /** Retries that slept and wait for room (new work waits behind them). */
  readonly retriesWaiting: number;
  /** Steps sleeping in their slots before a retry. */
  readonly retriesSleeping: number;
  /** How much longer a `Retry-After` holds new work back (0: none). */
  readonly heldMs: number;
}

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
  readonly #listeners: Array<(change: BudgetChange) => void> = [];
  /** Nothing new starts before its time: the latest `Retry-After` heard. */
  readonly #hold: Hold;
  readonly #retries: RetryRoom;
  #responses = 0;
  #errors = 0;
  /** Halvings so far: each request carries the count from when it went out (onSend), and only a 429 or 503 to a
   * request sent after the last halving halves again (TCP's once per round trip). Retries waiting in their slots
   * are sent after it, so a throttling destination that keeps refusing them halves the budget again. */
  #window = 0;

  constructor(sizes: BudgetSizes = DEFAULT_BUDGET, clock: BudgetClock = SYSTEM_CLOCK) {
    this.requests = new RequestBudget(sizes.requests);
    this.uploads = new RequestBudget(sizes.uploads);
    this.#hold = new Hold(clock, () => {
      this.#retries.admit();
      this.#wake();
    });
    this.#retries = new RetryRoom([this.requests, this.uploads], this.#hold, () => this.#wake());
    // New work waits while a retry waits for room, and until the hold has passed.
    const gate: Gate = { open: () => this.#retries.waiting === 0 && this.#hold.passed(), freed: () => this.#retries.admit() };
    this.requests.attach(gate);
    this.uploads.attach(gate);
  }

  /** The time before which nothing new starts here (0: none). */
  get notBefore(): number {
    return this.#hold.until;
  }

  /** What waits here besides the budgets' queues: retries, and how long the hold still lasts (ms). */
  pending(): BudgetPending {
    return { retriesWaiting: this.#retries.waiting, retriesSleeping: this.#retries.sleeping, heldMs: this.#hold.remaining() };
  }

  /**
   * The run is stopping: a `Retry-After` holds nothing back any more, so work queued behind it starts and sees the
   * stop at once (it starts no request) instead of waiting out the hold.
   */
  lift(): void {
    this.#hold.lift();
    this.#retries.admit();
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
      if (retryAfterMs !== undefined && retryAfterMs > 0) this.#hold.extend(retryAfterMs);
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
  pauseForRetry(ms: number, sleep: (ms: number) => Promise<void>, signal?: AbortSignal): Promise<void> {
    return this.#retries.pause(ms, sleep, signal);
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

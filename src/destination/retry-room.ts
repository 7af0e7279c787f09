/**
 * Retries at one destination (retry.ts `wait`, through DestinationBudget.pauseForRetry): a step keeps its slot
 * while it sleeps before its next attempt, parked (the destination is not serving it); then the retry waits until
 * the hold has passed and the budgets have room for one more request in flight, and goes before any new work (the
 * budgets' gate stays shut while a retry waits).
 */
import type { Hold } from './hold.js';
import type { RequestBudget } from './request-budget.js';

export class RetryRoom {
  readonly #budgets: readonly RequestBudget[];
  readonly #hold: Hold;
  /** Wakes the budgets: once no retry waits, their new work may start. */
  readonly #wake: () => void;
  /** Slots whose work sleeps before a retry, and retries that slept and wait for room. */
  #parked = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(budgets: readonly RequestBudget[], hold: Hold, wake: () => void) {
    this.#budgets = budgets;
    this.#hold = hold;
    this.#wake = wake;
  }

  /** Retries that slept and wait for room. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Steps sleeping before their retry (their slots parked). */
  get sleeping(): number {
    return this.#parked - this.#waiting.length;
  }

  /**
   * Parks the step's slot while it sleeps `ms`, then waits for the hold to pass and for room. Ends at once when
   * `signal` aborts (the run is stopping).
   */
  async pause(ms: number, sleep: (ms: number) => Promise<void>, signal?: AbortSignal): Promise<void> {
    this.#parked++;
    // A slot parked is one request fewer in flight: room, maybe, for a retry that waits.
    this.admit();
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
          const at = this.#waiting.indexOf(go);
          if (at >= 0) this.#waiting.splice(at, 1);
          resolve();
        };
        // Called by admit: the retry is in flight from here on, no longer parked.
        const go = (): void => {
          unpark();
          signal?.removeEventListener('abort', cancel);
          resolve();
        };
        signal?.addEventListener('abort', cancel, { once: true });
        this.#waiting.push(go);
        this.admit();
      });
    } finally {
      unpark();
      this.#wake();
    }
  }

  /**
   * Lets waiting retries go, one per free slot of the budgets together, once the hold has passed. A budget counts
   * only the slots it has taken (up to its size): an idle upload budget's slots were never tried on the destination
   * and let no retry of a request through.
   */
  admit(): void {
    if (!this.#hold.passed()) return;
    let room = 0;
    for (const budget of this.#budgets) room += Math.min(budget.size, budget.active);
    while (this.#waiting.length > 0 && this.#inFlight() < room) this.#waiting.shift()!();
  }

  /** Requests in flight, parked slots left out: what the destination is serving now. */
  #inFlight(): number {
    let active = 0;
    for (const budget of this.#budgets) active += budget.active;
    return active - this.#parked;
  }
}

/**
 * Slots of one kind at one destination, handed out first come first served, and how many there are: the size adapts
 * as TCP's congestion window does. It starts in slow start, growing by one slot per success while work waits for a
 * slot (doubling every window, so a run across a long round trip reaches its cap within a few round trips); after the
 * first push-back it grows by one slot per window (as many successful completions as it has slots: AIMD). When the
 * destination pushes back it halves (`halve`, called by DestinationBudget in destination/budget.ts at most once per
 * window), never below its floor nor above its cap.
 */

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
export interface Gate {
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

  /** Work waiting for a slot (or for the gate). */
  get waiting(): number {
    return this.#waitingFirst.length + this.#waiting.length + this.#waitingProbes.length;
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
      if (this.waiting > 0 && this.#size < this.#cap) this.#size++;
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
        let running: Promise<T>;
        try {
          running = work();
        } catch (err) {
          running = Promise.reject(err);
        }
        running.then(
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
    if (this.waiting > 0) this.#wanted = true;
  }
}

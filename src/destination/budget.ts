/**
 * The request budget of one destination: how many requests of each kind a run keeps in flight there, shared by every
 * batch and stage of the run. Created once, when the destination is connected (destination.ts).
 */

/** Slots of one kind, handed out first come first served; `probe` work waits behind `run` work and has a share. */
export class RequestBudget {
  #size: number;
  readonly #probeShare: number;
  #active = 0;
  #activeProbes = 0;
  readonly #waiting: Array<() => void> = [];
  readonly #waitingProbes: Array<() => void> = [];

  /**
   * `size` slots in all; probes (asking what the destination holds, for a batch still to come) take at most
   * `probeShare` of them, so the work of the batch under way (mounts, manifest PUTs, verification) always finds a
   * slot within a few requests.
   */
  constructor(size: number, probeShare: number = Math.max(1, Math.floor(size / 2))) {
    if (!(size >= 1)) throw new RangeError(`a request budget needs at least one slot, not ${size}`);
    this.#size = Math.floor(size);
    this.#probeShare = Math.max(1, Math.min(Math.floor(probeShare), this.#size));
  }

  get size(): number {
    return this.#size;
  }

  /** Requests in flight now. */
  get active(): number {
    return this.#active;
  }

  /** Work of the batch under way: it goes before any probe waiting. */
  run<T>(work: () => Promise<T>): Promise<T> {
    return this.#enter(work, false);
  }

  /** Asking ahead (the next batch's probes): within the probe share, and only when no `run` work waits. */
  probe<T>(work: () => Promise<T>): Promise<T> {
    return this.#enter(work, true);
  }

  #enter<T>(work: () => Promise<T>, probe: boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = (): void => {
        this.#active++;
        if (probe) this.#activeProbes++;
        const release = (): void => {
          this.#active--;
          if (probe) this.#activeProbes--;
          this.#next();
        };
        // The slot is free before the caller hears back, so what it starts next can have it.
        void (async () => work())().then(
          (value) => {
            release();
            resolve(value);
          },
          (err: unknown) => {
            release();
            reject(err);
          },
        );
      };
      (probe ? this.#waitingProbes : this.#waiting).push(start);
      this.#next();
    });
  }

  /** Starts what may start: waiting `run` work first, then probes within their share. */
  #next(): void {
    while (this.#active < this.#size) {
      const start = this.#waiting.shift() ?? (this.#activeProbes < this.#probeShare ? this.#waitingProbes.shift() : undefined);
      if (!start) return;
      start();
    }
  }
}

/** What a run sends to one destination at once. */
export interface DestinationBudget {
  /** HEADs, mounts, manifest PUTs, tag probes, Harbor artifact reads and verification GETs. */
  readonly requests: RequestBudget;
  /** Blob uploads (or skopeo copies): the bytes in flight. */
  readonly uploads: RequestBudget;
}

/** The defaults when no transfer sizes them (`--concurrency` 8, and twice that, at least 16, for requests). */
export const DEFAULT_BUDGET = { uploads: 8, requests: 16 } as const;

export function createBudget(sizes: { readonly uploads: number; readonly requests: number } = DEFAULT_BUDGET): DestinationBudget {
  return { requests: new RequestBudget(sizes.requests), uploads: new RequestBudget(sizes.uploads) };
}

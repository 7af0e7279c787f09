import { setMaxListeners } from 'node:events';
import { STOP_GRACE_MS } from '../tuning.js';

/**
 * How a run stops (SIGINT/SIGTERM, src/cli/signals.ts): first nothing new starts (`stop`), then, a grace period
 * later or at a second signal, what is still under way is cut (`abort`). Core code only sees the two signals.
 */

export interface StopSignals {
  /** Fires at the first signal: start no new upload or mount, retry nothing, wait for no backoff. */
  readonly stop: AbortSignal;
  /** Fires when the grace is over (or at a second signal): requests and copies under way are cut. */
  readonly abort: AbortSignal;
}

/** A step that did not run, or was cut, because the run is stopping: its image is reported `interrupted`. */
export class Interrupted extends Error {}

export class Stopper {
  readonly graceMs: number;
  readonly #stop = new AbortController();
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;

  constructor(graceMs = STOP_GRACE_MS) {
    this.graceMs = graceMs;
    // Every request and backoff wait under way listens on these: hundreds at once are normal, not a leak.
    setMaxListeners(0, this.#stop.signal, this.#abort.signal);
  }

  get signals(): StopSignals {
    return { stop: this.#stop.signal, abort: this.#abort.signal };
  }

  /** Starts nothing new from now on; cuts what still runs once the grace is over. */
  stop(): void {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort();
    this.#timer = setTimeout(() => this.abortNow(), this.graceMs);
    this.#timer.unref();
  }

  /** Cuts what runs now. */
  abortNow(): void {
    this.#stop.abort();
    this.dispose();
    this.#abort.abort();
  }

  /** The run ended: no grace timer is left behind. */
  dispose(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * Whether the destination still answers (docs/architecture.md, A destination that stops answering). Every request
 * the registry and Harbor clients send passes through here on its way to the budget (it is their RequestFeedback):
 * a run of requests that got no answer at all — refused, reset or timed-out connections, with no HTTP answer of any
 * kind between them — that lasts GONE_AFTER_MS and counts GONE_AFTER_FAILURES (tuning.ts) means the registry
 * process is gone, not hiccuping. From then on no request goes out and none that fails is retried: each fails as
 * DestinationGone, an Interrupted, so its image is reported `interrupted`; retries' waits end (`signal`); the run
 * is told once (`onGone`). Watching starts after the first contact (`arm`), which has its own retries and exit 3.
 */
import { setMaxListeners } from 'node:events';
import { classifyNetworkError } from '../registry/errors.js';
import { describeNetworkError, type RequestFeedback } from '../registry/http.js';
import { Interrupted } from '../util/stop.js';
import { GONE_AFTER_FAILURES, GONE_AFTER_MS } from '../tuning.js';

/** Work that did not start, or was cut short, because the destination stopped answering. */
export class DestinationGone extends Interrupted {}

export interface HealthOptions {
  /** The destination's `host:port`, named in the line. */
  readonly host: string;
  /** Where every request's outcome goes on to (the destination's budget). */
  readonly next: RequestFeedback;
  readonly failures?: number;
  readonly afterMs?: number;
  /** The clock (tests give their own). */
  readonly now?: () => number;
}

export class DestinationHealth implements RequestFeedback {
  readonly #host: string;
  readonly #next: RequestFeedback;
  readonly #failures: number;
  readonly #afterMs: number;
  readonly #now: () => number;
  readonly #stopped = new AbortController();
  readonly #listeners: Array<(gone: DestinationGone) => void> = [];
  #armed = false;
  /** Requests in a row that got no answer, and when the first of them failed. */
  #run = 0;
  #runSince = 0;
  #gone: DestinationGone | undefined;

  constructor(options: HealthOptions) {
    this.#host = options.host;
    this.#next = options.next;
    this.#failures = options.failures ?? GONE_AFTER_FAILURES;
    this.#afterMs = options.afterMs ?? GONE_AFTER_MS;
    this.#now = options.now ?? Date.now;
    // Every retry's wait and every step of the run listen on it (through the run's stop signals).
    setMaxListeners(0, this.#stopped.signal);
  }

  /** Aborts (its reason the DestinationGone) when the destination is declared gone. */
  get signal(): AbortSignal {
    return this.#stopped.signal;
  }

  /** Set once the destination is declared gone: its message is the line that says so. */
  get gone(): DestinationGone | undefined {
    return this.#gone;
  }

  /** The first contact answered: from now on a run of unanswered requests means the destination went away. */
  arm(): void {
    this.#armed = true;
  }

  /** Told once, when the destination is declared gone, before the request that tipped it fails. */
  onGone(listener: (gone: DestinationGone) => void): void {
    this.#listeners.push(listener);
  }

  onSend(): number {
    if (this.#gone) throw this.#gone;
    return this.#next.onSend();
  }

  onResponse(status: number, retryAfterMs: number | undefined, sent: number): void {
    // Any answer, a 5xx included: something listens there.
    this.#run = 0;
    this.#next.onResponse(status, retryAfterMs, sent);
  }

  /**
   * A request got no answer. Once the destination is gone (this failure may be the one that says so), the request
   * fails as DestinationGone instead of its own error: its image is interrupted, not failed with a raw
   * `connect ECONNREFUSED` line of its own.
   */
  onError(err: unknown): void {
    // Gone already: the budget has nothing more to learn (no halving is reported after the line).
    if (this.#gone) throw this.#gone;
    this.#next.onError(err);
    // A TLS or DNS failure is no sign of a process gone away: it fails its request as it is.
    if (this.#armed && classifyNetworkError(err) === 'transient') this.#count(err);
    if (this.#gone) throw this.#gone;
  }

  #count(err: unknown): void {
    const now = this.#now();
    if (this.#run++ === 0) this.#runSince = now;
    if (this.#run < this.#failures || now - this.#runSince < this.#afterMs) return;
    const seconds = ((now - this.#runSince) / 1000).toFixed(1);
    this.#gone = new DestinationGone(`the destination stopped answering: ${this.#host}: ${describeNetworkError(err)} (${this.#run} requests in a row over ${seconds} s got no answer)`);
    this.#stopped.abort(this.#gone);
    for (const listener of this.#listeners) listener(this.#gone);
  }
}

import type { Dispatcher } from 'undici';
import { headerNames, pickHeaders } from '../util/headers.js';

/**
 * One HTTP exchange through the dispatcher's own `dispatch`, for registry/http.ts. undici's `request()` wraps every
 * response body in a Readable stream and adds a listener to the abort signal per request; on the small requests a
 * push is made of, that cost as much CPU as the HTTP itself (bench/cpu.ts holds regmigrate against a client that
 * dispatches directly, bench/push-undici.ts). Here the body arrives as chunks into one Buffer, or is dropped, and
 * one listener per signal cuts every exchange under way. Only the headers the registry code reads are decoded
 * (ANSWER_HEADERS).
 */
export interface Exchange {
  readonly status: number;
  /** ANSWER_HEADERS, by lower-case name. */
  readonly headers: Readonly<Record<string, string | undefined>>;
  /** The whole body: empty when `keep` said to drop it. Rejects when the body is cut (the headers came). */
  readonly body: Promise<Buffer>;
}

/**
 * Every response header a reader of a registry's answer looks at: registry/blobs.ts (`location`), manifests.ts
 * (`content-type`, `docker-content-digest`), tags.ts (`link`), http.ts and auth.ts (`retry-after`,
 * `www-authenticate`, `x-request-id`). A header not named here reads as absent.
 */
export const ANSWER_HEADERS = headerNames(['content-type', 'docker-content-digest', 'link', 'location', 'retry-after', 'www-authenticate', 'x-request-id']);

/**
 * Resolves with the status and headers as soon as they arrive, and rejects when no answer comes (a refused
 * connection, a timeout, `signal`). `keep(status)` says whether the body is wanted.
 */
export function exchange(dispatcher: Dispatcher, options: Dispatcher.DispatchOptions, keep: (status: number) => boolean, signal?: AbortSignal): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    let unwatch: (() => void) | undefined;
    let chunks: Buffer[] | undefined;
    let answered: { resolve: (body: Buffer) => void; reject: (err: Error) => void } | undefined;
    const done = (): void => {
      unwatch?.();
      unwatch = undefined;
    };
    // The handler interface undici's client calls itself (node_modules/undici/lib/core/request.js): one given
    // onRequestStart and the rest is wrapped per request (lib/handler/unwrap-handler.js) in an adapter and a
    // controller object that parse the same raw headers.
    dispatcher.dispatch(options, {
      onConnect: (abort) => {
        done();
        if (!signal) return;
        // A request that waited for a connection while the signal fired is cut as it starts.
        if (signal.aborted) abort(signal.reason as Error);
        else unwatch = watch(signal, (reason) => abort(reason as Error));
      },
      onHeaders: (status, rawHeaders) => {
        chunks = keep(status) ? [] : undefined;
        const body = new Promise<Buffer>((resolveBody, rejectBody) => (answered = { resolve: resolveBody, reject: rejectBody }));
        // Seen by the caller when it reads the body; never an unhandled rejection if it does not.
        body.catch(() => undefined);
        resolve({ status, headers: pickHeaders(rawHeaders, ANSWER_HEADERS), body });
        return true;
      },
      onData: (chunk) => {
        chunks?.push(chunk);
        return true;
      },
      onComplete: () => {
        done();
        answered?.resolve(chunks === undefined ? EMPTY : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
      },
      onError: (err) => {
        done();
        if (answered) answered.reject(err);
        else reject(err);
      },
    });
  });
}

const EMPTY = Buffer.alloc(0);

/** Each signal's exchanges under way, cut by one listener on it. */
const underWay = new WeakMap<AbortSignal, Set<(reason: unknown) => void>>();

function watch(signal: AbortSignal, cut: (reason: unknown) => void): () => void {
  let cuts = underWay.get(signal);
  if (!cuts) {
    const all = new Set<(reason: unknown) => void>();
    signal.addEventListener('abort', () => {
      for (const c of [...all]) c(signal.reason);
      all.clear();
    }, { once: true });
    underWay.set(signal, (cuts = all));
  }
  cuts.add(cut);
  const set = cuts;
  return () => set.delete(cut);
}

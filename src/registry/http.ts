import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { Authenticator, headerValue, TOKEN_NEEDED } from './auth.js';
import { exchange, type Exchange } from './exchange.js';
import type { Credentials } from './credentials.js';
import type { Endpoint } from './endpoint.js';
import { classifyNetworkError, classifyStatus, parseErrorBody, parseRetryAfter, RegistryError, type FailureClass } from './errors.js';
import { DEFAULT_RETRY, retryTransient, type RetryPolicy } from './retry.js';
import { Interrupted } from '../util/stop.js';

/**
 * The request machinery under the protocol code (blobs.ts, manifests.ts, tags.ts): auth challenges and tokens,
 * retries of idempotent steps, counting, and the sorting of every HTTP failure into a RegistryError
 * (docs/architecture.md, Error model). The endpoint files say what to ask; this file says how.
 */

export interface HttpOptions {
  readonly endpoint: Endpoint;
  readonly credentials: Credentials | undefined;
  readonly dispatcher: Dispatcher;
  readonly retry?: RetryPolicy;
  readonly userAgent?: string;
  /** Cuts every request under way, token fetches included (a stopping run's grace is over); the caller sees Interrupted. */
  readonly abort?: AbortSignal;
  /** Hears the outcome of every request: the destination's budget adapts to it (destination/budget.ts). */
  readonly feedback?: RequestFeedback;
}

/**
 * Told of each request as it goes out (the number it returns comes back with the response), of each response (its
 * status, and `Retry-After` in ms on a 429 or 503) and of each request that got none (with undici's error).
 * `onSend` may throw: the request is not sent; `onError` may throw: the request fails with that error instead of
 * its own (a destination that stopped answering, destination/health.ts).
 */
export interface RequestFeedback {
  onSend(): number;
  onResponse(status: number, retryAfterMs: number | undefined, sent: number): void;
  onError(err: unknown): void;
}

/** Tells `feedback` of a response: its status, and the `Retry-After` of a 429 or 503 (registry and Harbor API alike). */
export function hearResponse(feedback: RequestFeedback | undefined, status: number, headers: Record<string, string | string[] | undefined>, sent: number): void {
  feedback?.onResponse(status, status === 429 || status === 503 ? parseRetryAfter(headerValue(headers['retry-after'])) : undefined, sent);
}

export interface ClientStats {
  requests: number;
  retries: number;
  bytesSent: number;
}

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** What a request sends: bytes at once, a stream, or blocks asked for one at a time (src/storage/file-range.ts). */
export type RequestBody = Buffer | Readable | AsyncIterable<Buffer>;

/** What an endpoint knows about a failure that the status alone does not tell (a schema1 refusal, say). */
export interface Explanation {
  readonly failure: FailureClass;
  /** Appended to the error's line. */
  readonly note: string;
}

export interface RequestOptions {
  readonly method: Method;
  readonly url: URL;
  readonly scopes: readonly string[];
  readonly headers?: Record<string, string>;
  /**
   * A factory, so the body can be produced again when the request is repeated with a fresh token. `over` fires once
   * the request is over, however it ended: a body that waits on something (a bandwidth cap) stops waiting then.
   */
  readonly body?: (over: AbortSignal) => RequestBody;
  /** Statuses that are success; anything else throws a RegistryError. */
  readonly ok: readonly number[];
  /** Keep the body for the caller instead of discarding it. */
  readonly keepBody?: boolean;
  readonly bodySize?: number;
  /** Milliseconds to wait for the answer, instead of the dispatcher's no-progress timeout (the first contact). */
  readonly timeoutMs?: number;
  /** Reads a refusal's status and body before it is sorted by status alone. */
  readonly explain?: (status: number, text: string) => Explanation | undefined;
}

export interface Response {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}
export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}

export class RegistryHttp {
  readonly endpoint: Endpoint;
  readonly auth: Authenticator;
  readonly stats: ClientStats = { requests: 0, retries: 0, bytesSent: 0 };
  /** The run's abort signal, for the waits the endpoint code does itself (a bandwidth cap's). */
  readonly abort: AbortSignal | undefined;
  readonly #dispatcher: Dispatcher;
  readonly #retry: RetryPolicy;
  readonly #userAgent: string;
  readonly #feedback: RequestFeedback | undefined;

  constructor(options: HttpOptions) {
    this.#feedback = options.feedback;
    this.endpoint = options.endpoint;
    this.#dispatcher = options.dispatcher;
    this.#retry = options.retry ?? DEFAULT_RETRY;
    this.#userAgent = options.userAgent ?? 'regmigrate';
    this.abort = options.abort;
    this.auth = new Authenticator(options.credentials, options.dispatcher, options.endpoint, options.abort);
  }

  url(path: string): URL {
    return new URL(path, this.endpoint.origin);
  }

  /** Runs an idempotent step, repeating it on transient failures with backoff and `Retry-After`. */
  async retrying<T>(step: () => Promise<T>): Promise<T> {
    return retryTransient(this.#retry, step, () => this.stats.retries++);
  }

  /** One request, answered again once with credentials after a 401 challenge. Throws a RegistryError unless `ok`. */
  async request(options: RequestOptions): Promise<Response> {
    // Credentials go only to the destination's own origin: an absolute Location to another host gets none.
    const sameOrigin = options.url.origin === this.endpoint.origin;
    for (let authAttempt = 0; ; authAttempt++) {
      // First, so that nothing (a token fetch included) goes to a destination that stopped answering.
      const sent = this.#feedback?.onSend() ?? 0;
      const headers: Record<string, string> = { 'user-agent': this.#userAgent, ...options.headers };
      if (sameOrigin) {
        const now = this.auth.authorizationNow(options.scopes);
        const authorization = now === TOKEN_NEEDED ? await this.#authorization(options) : now;
        if (authorization) headers.authorization = authorization;
      }
      this.stats.requests++;
      const over = options.body ? new AbortController() : undefined;
      try {
        let res: Exchange;
        try {
          // What is wanted of the body: the caller's when it keeps it, a refusal's text to sort it by.
          const keep = (status: number): boolean => options.method !== 'HEAD' && (options.keepBody === true || !options.ok.includes(status));
          res = await exchange(this.#dispatcher, {
            origin: options.url.origin,
            path: `${options.url.pathname}${options.url.search}`,
            method: options.method,
            headers,
            // undici's types leave iterables out of a dispatch's body; its requests take them (node_modules/undici/lib/
            // core/request.js: "a Readable stream, an iterable, or an async iterable").
            body: (options.body && over ? options.body(over.signal) : undefined) as Dispatcher.DispatchOptions['body'],
            // undici closes the connection after every HEAD unless told not to (node_modules/undici/lib/dispatcher/
            // client-h1.js, writeH1: "Close after a HEAD request to interop with misbehaving servers that may send a
            // body"), so each blob probe cost a new TCP connection. Registries answer HEAD without a body: distribution
            // and Harbor are Go servers, whose net/http drops a handler's writes on HEAD (src/net/http/server.go,
            // chunkWriter.Write: "Eat writes"), and RFC 9110 9.3.2 forbids one.
            ...(options.method === 'HEAD' ? { reset: false } : {}),
            ...(options.timeoutMs !== undefined ? { headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs } : {}),
          }, keep, this.abort);
        } catch (err) {
          if (this.abort?.aborted) throw this.#cut(options);
          // The body's source stopped because the run is stopping (a bucket read not retried after the signal): the
          // image is interrupted, not failed.
          const interrupted = stoppedSource(err);
          if (interrupted) throw interrupted;
          this.#feedback?.onError(err);
          throw new RegistryError(`${options.method} ${options.url.pathname}: ${describeNetworkError(err, options.timeoutMs)}`, this.#details(options, undefined, classifyNetworkError(err)), err);
        }
        const status = res.status;
        hearResponse(this.#feedback, status, res.headers, sent);
        if (options.ok.includes(status)) {
          const body = await res.body.catch((err: unknown) => {
            throw this.abort?.aborted ? this.#cut(options) : err;
          });
          if (options.bodySize !== undefined) this.stats.bytesSent += options.bodySize;
          return { status, headers: res.headers, body };
        }
        const text = (await res.body.catch(() => Buffer.alloc(0))).toString('utf8');
        if (status === 401 && sameOrigin && authAttempt === 0) {
          // First contact, or a token that expired: learn the challenge, drop the token and go once more.
          this.auth.learn(headerValue(res.headers['www-authenticate']));
          this.auth.invalidate(options.scopes);
          if (this.auth.scheme) continue;
        }
        if (status === 401 && sameOrigin && authAttempt > 0) throw await this.#refusal(options, res.headers, text);
        throw this.#httpError(options, status, res.headers, text);
      } finally {
        over?.abort();
      }
    }
  }

  /** A reply the protocol does not allow (an upload session without a Location, a redirect loop): never retried. */
  protocolError(method: string, url: URL, what: string): RegistryError {
    return new RegistryError(`${method} ${url.pathname}: ${what}`, { method, path: url.pathname, status: undefined, registryCode: undefined, failure: 'permanent', requestId: undefined, retryAfterMs: undefined });
  }

  /** The Authorization header; a token fetch the abort signal cut is this request cut. */
  async #authorization(options: RequestOptions): Promise<string | undefined> {
    try {
      return await this.auth.authorization(options.scopes);
    } catch (err) {
      if (this.abort?.aborted) throw this.#cut(options);
      throw err;
    }
  }

  /**
   * A fresh token was refused too. Its `access` claim tells "no permission on this repository" (the token service
   * left the action out: a guest pushing, a robot of another project) from "credentials refused".
   */
  async #refusal(options: RequestOptions, headers: Response['headers'], text: string): Promise<RegistryError> {
    const plain = this.#httpError(options, 401, headers, text);
    const scope = /^repository:(.+):([a-z*,]+)$/.exec(options.scopes[0] ?? '');
    if (!scope) return plain;
    const granted = await this.auth.granted(options.scopes, scope[1]!).catch(() => undefined);
    if (granted === undefined) return plain;
    const missing = scope[2]!.split(',').filter((a) => !granted.includes(a) && !granted.includes('*'));
    const details = { method: plain.method, path: plain.path, status: 401, requestId: plain.requestId, retryAfterMs: undefined, failure: 'auth' as const };
    if (missing.length === 0) {
      return new RegistryError(`${options.method} ${options.url.pathname}: 401: the registry refused a token that grants ${scope[2]} on ${scope[1]} (credentials refused, or a clock out of step)`, { ...details, registryCode: 'CREDENTIALS_REFUSED' });
    }
    const has = granted.length ? `only ${granted.join(', ')}` : 'nothing';
    return new RegistryError(`${options.method} ${options.url.pathname}: 401: no ${missing.join(', ')} permission on repository ${scope[1]}: the account was granted ${has}`, { ...details, registryCode: 'NO_PERMISSION' });
  }

  #httpError(options: RequestOptions, status: number, headers: Response['headers'], text: string): RegistryError {
    const { code, message } = parseErrorBody(text);
    const requestId = headerValue(headers['x-request-id']);
    const parts = [`${options.method} ${options.url.pathname}: ${status}`];
    if (code) parts.push(code);
    let line = parts.join(' ');
    if (message) line += `: ${message}`;
    const explained = options.explain?.(status, text);
    if (explained) line += `: ${explained.note}`;
    if (requestId && status >= 500) line += ` (X-Request-Id ${requestId})`;
    // An upload session that vanished (several registry replicas behind a balancer, a restart) is worth a new
    // session: the upload restarts from the beginning.
    const failure = code === 'BLOB_UPLOAD_UNKNOWN' ? 'transient' : (explained?.failure ?? classifyStatus(status));
    return new RegistryError(line, { ...this.#details(options, status, failure), registryCode: code, requestId, retryAfterMs: parseRetryAfter(headerValue(headers['retry-after'])) });
  }

  #details(options: RequestOptions, status: number | undefined, failure: FailureClass) {
    return { method: options.method, path: options.url.pathname, status, registryCode: undefined, failure, requestId: undefined, retryAfterMs: undefined };
  }

  #cut(options: RequestOptions): Interrupted {
    return new Interrupted(`${options.method} ${options.url.pathname}: cut: the run is stopping`);
  }
}

/** The Interrupted a request body's source threw (undici passes it on as it is, or as the cause of its own). */
function stoppedSource(err: unknown): Interrupted | undefined {
  if (err instanceof Interrupted) return err;
  const cause = (err as { cause?: unknown } | undefined)?.cause;
  return cause instanceof Interrupted ? cause : undefined;
}

/** undici's error in one line: `connect ECONNREFUSED 127.0.0.1:5000`, `UND_ERR_SOCKET: other side closed`. */
export function describeNetworkError(err: unknown, timeoutMs?: number): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e.cause?.code ?? e.code;
  // undici says only `Headers Timeout Error`: name the wait when this request set its own.
  if (code === 'UND_ERR_HEADERS_TIMEOUT' && timeoutMs !== undefined) return `no answer within ${timeoutMs / 1000} s (${code})`;
  // One line, the code once: `connect ECONNREFUSED 127.0.0.1:1` names it already; OpenSSL's text ends in a newline.
  const message = (e.cause?.message ?? e.message ?? String(err)).trim().split('\n')[0]!;
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

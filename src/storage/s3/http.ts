/**
 * The request machinery under the S3 reader (client.ts): addressing, SigV4 signing, retries with backoff, counting,
 * and the sorting of every failure into an S3Error (errors.ts). It can send only GET and HEAD: the source store is
 * never written, and no code path here could write it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import type { CredentialSource } from './credentials.js';
import type { SigningCredentials } from './sigv4.js';
import { CredentialsUnavailable, CREDENTIAL_CHAIN_HINT } from './credentials.js';
import { classifyS3Failure, S3Error, type S3FailureKind } from './errors.js';
import { canonicalQuery, encodeRfc3986, encodeS3Path, SigV4Signer } from './sigv4.js';
import { parseErrorBody } from './xml.js';
import { isTransientNetworkError } from '../../util/network-errors.js';
import { Interrupted } from '../../util/stop.js';
import { headerNames, pickHeaders } from '../../util/headers.js';
import { RETRY_ATTEMPTS, RETRY_BASE_DELAY_MS, RETRY_MAX_DELAY_MS } from '../../tuning.js';

export interface S3RetryPolicy {
  /** Attempts in all, first included. */
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** How to wait between attempts (tests record the delays instead of sleeping through them). */
  readonly wait?: (ms: number) => Promise<void>;
  /** The run is stopping: nothing is retried, a wait ends at once. */
  readonly signal?: AbortSignal;
}

export const DEFAULT_S3_RETRY: S3RetryPolicy = { attempts: RETRY_ATTEMPTS, baseDelayMs: RETRY_BASE_DELAY_MS, maxDelayMs: RETRY_MAX_DELAY_MS };

export interface S3HttpOptions {
  readonly bucket: string;
  /** Path-style requests to this URL (MinIO, Ceph RGW, GCS); without it, AWS S3's virtual-hosted endpoint of the region. */
  readonly endpoint?: string | undefined;
  readonly region: string;
  readonly credentials: CredentialSource;
  readonly dispatcher: Dispatcher;
  readonly retry?: S3RetryPolicy;
  /** Cuts every request under way; the caller sees Interrupted. */
  readonly abort?: AbortSignal;
}

/** Requests sent, by operation (`list`, `get`, `range`, `head`), and how many were repeats. */
export interface S3Stats {
  readonly requests: Record<string, number>;
  retries: number;
  /** Body bytes read from successful answers (an answer refused as too large counts what was read of it). */
  bytes: number;
}

export interface S3Request {
  readonly method: 'GET' | 'HEAD';
  /** The object's key; undefined for a request on the bucket (a listing). */
  readonly key: string | undefined;
  readonly query?: ReadonlyArray<readonly [string, string]>;
  readonly headers?: Readonly<Record<string, string>>;
  /** For counting: `list`, `get`, `range`, `head`. */
  readonly operation: string;
}

export type S3Response = Dispatcher.ResponseData;

/** Response headers by lower-case name. */
export type S3Headers = Readonly<Record<string, string | string[] | undefined>>;

/** An answer read whole (S3Http.sendWhole). */
export interface S3Answer {
  readonly statusCode: number;
  /** Only the headers the reader looks at (ANSWER_HEADERS), by lower-case name. */
  readonly headers: Readonly<Record<string, string | undefined>>;
  /** The body, or its first `limit` bytes when it was longer. */
  readonly body: Buffer;
  /** The body's length (declared, or read so far) when it was longer than the limit: the rest was not read. */
  readonly over: number | undefined;
}

const ERROR_BODY_LIMIT = 64 * 1024;

type Outcome<T> = { value: T } | { failure: Error; retry: boolean };

/**
 * The headers an answer read whole is read for: sizes, times, ETags, and what an error says beyond its body (a
 * HEAD's error has no body: its code and request id are only in the headers). A ranged read goes through `send`,
 * with all its headers (Content-Range included).
 */
const ANSWER_HEADERS = headerNames(['content-length', 'etag', 'last-modified', 'x-amz-bucket-region', 'x-amz-error-code', 'x-amz-request-id']);

/** Thrown into the request (and caught by its own handler) to stop reading a body past its limit. */
class BodyPastLimit extends Error {}

/**
 * Collects one answer through undici's handler interface: the status, the ANSWER_HEADERS (other headers are never
 * decoded), and the body up to `limit` bytes; past the limit (declared or read), the request is cut and the answer
 * is the part read. An error body is read up to ERROR_BODY_LIMIT. Failures (network, timeouts, the run cutting
 * requests) reject, as `request()` would.
 */
class WholeAnswerHandler implements Dispatcher.DispatchHandler {
  readonly #ok: readonly number[];
  readonly #okLimit: number;
  readonly #resolve: (answer: S3Answer) => void;
  readonly #reject: (err: unknown) => void;
  readonly #signal: AbortSignal | undefined;
  #abort: ((err?: Error) => void) | undefined;
  #status = 0;
  #headers: Record<string, string | undefined> = {};
  #limit = 0;
  #chunks: Buffer[] = [];
  #size = 0;
  #over: number | undefined;
  readonly #onAbort = (): void => this.#abort?.(new Error('cut: the run is stopping'));

  constructor(ok: readonly number[], limit: number, resolve: (answer: S3Answer) => void, reject: (err: unknown) => void, signal: AbortSignal | undefined) {
    this.#ok = ok;
    this.#okLimit = limit;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#signal = signal;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (!this.#signal) return;
    if (this.#signal.aborted) this.#onAbort();
    else this.#signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[]): boolean {
    // 1xx answers come before the real one.
    if (statusCode < 200) return true;
    this.#status = statusCode;
    const headers = pickHeaders(rawHeaders, ANSWER_HEADERS);
    this.#headers = headers;
    this.#limit = this.#ok.includes(statusCode) ? this.#okLimit : ERROR_BODY_LIMIT;
    const declared = Number(headers['content-length'] ?? NaN);
    if (declared > this.#limit) {
      this.#over = declared;
      this.#abort?.(new BodyPastLimit());
      return false;
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#over !== undefined) return false;
    const room = this.#limit - this.#size;
    if (chunk.length > room) {
      if (room > 0) this.#chunks.push(chunk.subarray(0, room));
      this.#over = this.#size + chunk.length;
      this.#size = this.#limit;
      this.#abort?.(new BodyPastLimit());
      return false;
    }
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    return true;
  }

  onComplete(): void {
    this.#done();
    this.#resolve(this.#answer());
  }

  onError(err: Error): void {
    this.#done();
    if (this.#over !== undefined) this.#resolve(this.#answer());
    else this.#reject(err);
  }

  #answer(): S3Answer {
    const chunks = this.#chunks;
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.#size);
    return { statusCode: this.#status, headers: this.#headers, body, over: this.#over };
  }

  #done(): void {
    this.#signal?.removeEventListener('abort', this.#onAbort);
  }
}

function networkCode(err: unknown): string {
  const e = err as { code?: string; cause?: { code?: string }; message?: string };
  return e.code ?? e.cause?.code ?? 'network error';
}

export class S3Http {
  readonly bucket: string;
  readonly stats: S3Stats = { requests: {}, retries: 0, bytes: 0 };
  readonly #options: S3HttpOptions;
  readonly #signer: SigV4Signer;
  readonly #origin: string;
  readonly #host: string;
  /** Path of the bucket: `/BUCKET` on an endpoint (path-style), empty on AWS (the bucket is in the host name). */
  readonly #bucketPath: string;
  readonly #retry: S3RetryPolicy;

  constructor(options: S3HttpOptions) {
    this.#options = options;
    this.bucket = options.bucket;
    this.#signer = new SigV4Signer(options.region);
    this.#retry = options.retry ?? DEFAULT_S3_RETRY;
    if (options.endpoint) {
      // distribution's s3 driver forces path-style whenever `regionendpoint` is set (registry/storage/driver/s3-aws/s3.go, New).
      const url = new URL(options.endpoint);
      this.#origin = url.origin;
      this.#host = url.host;
      this.#bucketPath = `${url.pathname.replace(/\/+$/, '')}/${encodeRfc3986(options.bucket)}`;
    } else {
      const suffix = options.region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
      // A dotted bucket name does not match the wildcard certificate of a virtual host: AWS SDKs use path-style for it.
      if (options.bucket.includes('.')) {
        this.#host = `s3.${options.region}.${suffix}`;
        this.#bucketPath = `/${options.bucket}`;
      } else {
        this.#host = `${options.bucket}.s3.${options.region}.${suffix}`;
        this.#bucketPath = '';
      }
      this.#origin = `https://${this.#host}`;
    }
  }

  /** `s3://BUCKET/KEY`, for messages. */
  where(key: string | undefined): string {
    return key ? `s3://${this.bucket}/${key}` : `s3://${this.bucket}`;
  }

  /**
   * Sends `request` and hands a successful answer (`ok` statuses) to `use`, repeating the whole step on 5xx,
   * SlowDown and network failures, including those that happen while `use` reads the body.
   */
  send<T>(request: S3Request, ok: readonly number[], use: (response: S3Response) => Promise<T>): Promise<T> {
    return this.#repeat(request, (attempt) => this.#attempt(request, ok, use, attempt));
  }

  /**
   * Sends `request` and hands a successful answer, read whole, to `use`: what listings, links, manifests and HEADs
   * take. The body is collected by a handler of undici's dispatcher: no stream, async iterator or parse of every
   * header per answer, as `request()` has (a scan sends two small GETs a tag); the retries are those of `send`. A
   * body longer than `limit` is read no further: the answer says how long it was (`over`).
   */
  sendWhole<T>(request: S3Request, ok: readonly number[], limit: number, use: (answer: S3Answer) => T): Promise<T> {
    return this.#repeat(request, (attempt) => this.#attemptWhole(request, ok, limit, use, attempt));
  }

  async #repeat<T>(request: S3Request, attemptOnce: (attempt: number) => Promise<Outcome<T>>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await attemptOnce(attempt);
      if ('value' in outcome) return outcome.value;
      const { failure, retry } = outcome;
      if (!retry || attempt >= this.#retry.attempts) throw failure;
      if (this.#retry.signal?.aborted) throw new Interrupted(`${failure.message} (not retried: the run is stopping)`, { cause: failure });
      this.stats.retries++;
      await this.backoff(attempt);
      if (this.#retry.signal?.aborted) throw new Interrupted(`${failure.message} (not retried: the run is stopping)`, { cause: failure });
    }
  }

  async #attempt<T>(request: S3Request, ok: readonly number[], use: (response: S3Response) => Promise<T>, attempt: number): Promise<Outcome<T>> {
    let response: S3Response;
    try {
      response = await this.#dispatch(request);
    } catch (err) {
      return { failure: this.#unsent(request, err, attempt), retry: isTransientNetworkError(err) && !this.#options.abort?.aborted };
    }
    if (ok.includes(response.statusCode)) {
      try {
        return { value: await use(response) };
      } catch (err) {
        // Only a cut body is repeated; what `use` found wrong with a complete answer is not.
        if (!isTransientNetworkError(err) || this.#options.abort?.aborted) throw this.#options.abort?.aborted ? this.#unsent(request, err, attempt) : err;
        return { failure: this.#networkError(request, err, attempt), retry: true };
      }
    }
    let text = '';
    try {
      if (request.method === 'HEAD') await response.body.dump();
      else text = await readLimited(response.body, ERROR_BODY_LIMIT);
    } catch (err) {
      return { failure: this.#unsent(request, err, attempt), retry: isTransientNetworkError(err) && !this.#options.abort?.aborted };
    }
    return this.#refused(request, response.statusCode, response.headers, text, attempt);
  }

  async #attemptWhole<T>(request: S3Request, ok: readonly number[], limit: number, use: (answer: S3Answer) => T, attempt: number): Promise<Outcome<T>> {
    let answer: S3Answer;
    try {
      const credentials = await this.#options.credentials.get();
      const { path, headers } = this.#prepare(request, credentials);
      answer = await new Promise<S3Answer>((resolve, reject) => {
        const handler = new WholeAnswerHandler(ok, limit, resolve, reject, this.#options.abort);
        try {
          this.#options.dispatcher.dispatch({ origin: this.#origin, path, method: request.method, headers }, handler);
        } catch (err) {
          reject(err);
        }
      });
    } catch (err) {
      return { failure: this.#unsent(request, err, attempt), retry: isTransientNetworkError(err) && !this.#options.abort?.aborted };
    }
    // What `use` finds wrong with a complete answer (too large, not a listing) is not repeated.
    if (ok.includes(answer.statusCode)) return { value: use(answer) };
    return this.#refused(request, answer.statusCode, answer.headers, request.method === 'HEAD' ? '' : answer.body.toString('utf8'), attempt);
  }

  /** A status not in `ok`: the failure it makes, and whether it is worth repeating. */
  #refused(request: S3Request, status: number, headers: S3Headers, text: string, attempt: number): { failure: Error; retry: boolean } {
    const body = parseErrorBody(text);
    const kind = classifyS3Failure(request.method, status, body.code ?? headerText(headers['x-amz-error-code']));
    return { failure: this.#statusError(request, status, headers, body, kind, attempt), retry: kind === 'retry' };
  }

  /**
   * A request that got no answer: Interrupted when the run is cutting requests, a `denied` S3Error when no
   * credentials could be had, else a network failure, marked for a retry when it is transient (the caller's loop
   * catches only what it can repeat).
   */
  #unsent(request: S3Request, err: unknown, attempt: number): Error {
    if (err instanceof S3Error || err instanceof Interrupted) return err;
    if (this.#options.abort?.aborted) return new Interrupted(`${this.where(request.key)}: cut, the run is stopping`, { cause: err });
    if (err instanceof CredentialsUnavailable) {
      return new S3Error(`${this.where(undefined)}: ${err.message}`, { kind: 'denied', bucket: this.bucket, key: request.key, status: undefined, s3Code: undefined, requestId: undefined }, { hint: CREDENTIAL_CHAIN_HINT, cause: err });
    }
    return this.#networkError(request, err, attempt);
  }

  /** The jittered exponential wait before attempt `attempt + 1`. */
  async backoff(attempt: number): Promise<void> {
    const policy = this.#retry;
    const backoff = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
    const delay = backoff / 2 + Math.random() * (backoff / 2);
    if (policy.wait) await policy.wait(delay);
    else await sleep(delay, undefined, policy.signal ? { signal: policy.signal } : {}).catch(() => undefined);
  }

  get retryAttempts(): number {
    return this.#retry.attempts;
  }

  get stopping(): boolean {
    return this.#retry.signal?.aborted === true || this.#options.abort?.aborted === true;
  }

  async #dispatch(request: S3Request): Promise<S3Response> {
    const credentials = await this.#options.credentials.get();
    const { path, headers } = this.#prepare(request, credentials);
    return this.#options.dispatcher.request({
      origin: this.#origin,
      path,
      method: request.method,
      headers,
      ...(this.#options.abort ? { signal: this.#options.abort } : {}),
    });
  }

  /** The path and query as sent, and every header, signed; counts the request. */
  #prepare(request: S3Request, credentials: SigningCredentials): { path: string; headers: Record<string, string> } {
    const path = request.key === undefined ? this.#bucketPath || '/' : `${this.#bucketPath}/${encodeS3Path(request.key)}`;
    const query = request.query && request.query.length > 0 ? canonicalQuery(request.query) : '';
    const headers = this.#signer.sign({ method: request.method, host: this.#host, path, query: [], canonicalQuery: query, headers: request.headers ?? {} }, credentials);
    if (request.headers) Object.assign(headers, request.headers);
    this.stats.requests[request.operation] = (this.stats.requests[request.operation] ?? 0) + 1;
    return { path: query ? `${path}?${query}` : path, headers };
  }

  #statusError(request: S3Request, status: number, headers: S3Headers, body: ReturnType<typeof parseErrorBody>, kind: S3FailureKind | 'retry', attempt: number): S3Error {
    const code = body.code ?? headerText(headers['x-amz-error-code']);
    const requestId = body.requestId ?? headerText(headers['x-amz-request-id']);
    const region = headerText(headers['x-amz-bucket-region']) ?? body.region;
    const answer = `${status}${code ? ` ${code}` : ''}`;
    const details = { bucket: this.bucket, key: request.key, status, s3Code: code, requestId, region };
    const where = this.where(request.key);
    switch (kind) {
      case 'absent':
        return new S3Error(`${where}: no such key`, { ...details, kind });
      case 'no-bucket':
        return new S3Error(`${this.where(undefined)}: no such bucket at ${this.#origin}`, { ...details, kind }, { hint: 'check the bucket name, --s3-endpoint and --s3-region' });
      case 'denied':
        return new S3Error(`${where}: access denied (${answer}) with credentials from ${this.#options.credentials.describe()}`, { ...details, kind }, { hint: deniedHint(code) });
      case 'wrong-region':
        return new S3Error(
          `${this.where(undefined)}: ${region ? `the bucket is in region ${region}, not ${this.#signer.region}` : `the store sends requests elsewhere (${answer})`}`,
          { ...details, kind },
          { hint: region ? `pass --s3-region ${region}` : 'check --s3-endpoint and --s3-region' },
        );
      case 'retry':
        return new S3Error(`${where}: the store did not answer after ${attempt} attempt${attempt === 1 ? '' : 's'} (${answer})`, { ...details, kind: 'unavailable' });
      default:
        return new S3Error(`${where}: unexpected answer ${answer}${body.message ? `: ${body.message}` : ''}`, { ...details, kind });
    }
  }

  #networkError(request: S3Request, err: unknown, attempt: number): S3Error {
    const code = networkCode(err);
    const tls = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code);
    return new S3Error(
      `${this.where(request.key)}: ${isTransientNetworkError(err) ? `the store did not answer after ${attempt} attempt${attempt === 1 ? '' : 's'}` : `cannot reach ${this.#origin}`} (${code})`,
      { kind: 'unavailable', bucket: this.bucket, key: request.key, status: undefined, s3Code: undefined, requestId: undefined },
      { cause: err, hint: tls ? "the endpoint's certificate is not trusted: pass --ca-file or set AWS_CA_BUNDLE" : `no S3 answer from ${this.#origin}: check --s3-endpoint (or --s3-region) and the network` },
    );
  }
}

function deniedHint(code: string | undefined): string {
  switch (code) {
    case 'SignatureDoesNotMatch':
      return 'the secret access key does not belong to this access key ID';
    case 'InvalidAccessKeyId':
      return 'the store does not know this access key ID';
    case 'ExpiredToken':
    case 'TokenRefreshRequired':
      return 'the session token has expired';
    case 'RequestTimeTooSkewed':
      return "this machine's clock is too far from the store's";
    default:
      return 'the credentials need s3:ListBucket and s3:GetObject on the bucket and its root';
  }
}

export function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The body as text, at most `limit` bytes; the rest is discarded. */
export async function readLimited(body: S3Response['body'], limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buffer = chunk as Buffer;
    if (size < limit) chunks.push(buffer.subarray(0, limit - size));
    size += buffer.length;
    if (size >= limit) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}

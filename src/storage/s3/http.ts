/**
 * The request machinery under the S3 reader (client.ts): addressing, SigV4 signing, retries with backoff, counting,
 * and the sorting of every failure into an S3Error (errors.ts). It can send only GET and HEAD: the source store is
 * never written, and no code path here could write it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import type { CredentialSource } from './credentials.js';
import { CredentialsUnavailable, CREDENTIAL_CHAIN_HINT } from './credentials.js';
import { classifyS3Failure, S3Error, type S3FailureKind } from './errors.js';
import { canonicalQuery, encodeRfc3986, encodeS3Path, SigV4Signer } from './sigv4.js';
import { parseErrorBody } from './xml.js';
import { isTransientNetworkError } from '../../util/network-errors.js';
import { Interrupted } from '../../util/stop.js';
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

function networkCode(err: unknown): string {
  const e = err as { code?: string; cause?: { code?: string }; message?: string };
  return e.code ?? e.cause?.code ?? 'network error';
}

const ERROR_BODY_LIMIT = 64 * 1024;

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
  async send<T>(request: S3Request, ok: readonly number[], use: (response: S3Response) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.#attempt(request, ok, use, attempt);
      if ('value' in outcome) return outcome.value;
      const { failure, retry } = outcome;
      if (!retry || attempt >= this.#retry.attempts) throw failure;
      if (this.#retry.signal?.aborted) throw new Interrupted(`${failure.message} (not retried: the run is stopping)`, { cause: failure });
      this.stats.retries++;
      await this.backoff(attempt);
      if (this.#retry.signal?.aborted) throw new Interrupted(`${failure.message} (not retried: the run is stopping)`, { cause: failure });
    }
  }

  async #attempt<T>(request: S3Request, ok: readonly number[], use: (response: S3Response) => Promise<T>, attempt: number): Promise<{ value: T } | { failure: Error; retry: boolean }> {
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
    const body = parseErrorBody(text);
    const kind = classifyS3Failure(request.method, response.statusCode, body.code ?? headerText(response.headers['x-amz-error-code']));
    return { failure: this.#statusError(request, response, body, kind, attempt), retry: kind === 'retry' };
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
    const path = request.key === undefined ? this.#bucketPath || '/' : `${this.#bucketPath}/${encodeS3Path(request.key)}`;
    const query = request.query ?? [];
    const signed = this.#signer.sign({ method: request.method, host: this.#host, path, query, headers: request.headers ?? {} }, credentials);
    const search = query.length > 0 ? `?${canonicalQuery(query)}` : '';
    this.stats.requests[request.operation] = (this.stats.requests[request.operation] ?? 0) + 1;
    return this.#options.dispatcher.request({
      origin: this.#origin,
      path: path + search,
      method: request.method,
      headers: { ...request.headers, ...signed },
      ...(this.#options.abort ? { signal: this.#options.abort } : {}),
    });
  }

  #statusError(request: S3Request, response: S3Response, body: ReturnType<typeof parseErrorBody>, kind: S3FailureKind | 'retry', attempt: number): S3Error {
    const status = response.statusCode;
    const code = body.code ?? headerText(response.headers['x-amz-error-code']);
    const requestId = body.requestId ?? headerText(response.headers['x-amz-request-id']);
    const region = headerText(response.headers['x-amz-bucket-region']) ?? body.region;
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

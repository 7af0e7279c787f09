import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { MANIFEST_MEDIA_TYPES } from '../image/media-types.js';
import { Authenticator, headerValue } from './auth.js';
import type { Credentials } from './credentials.js';
import type { Endpoint } from './endpoint.js';
import { DEFAULT_RETRY, retryTransient, type RetryPolicy } from './retry.js';
import { classifyNetworkError, classifyStatus, isSchema1Refusal, parseErrorBody, parseRetryAfter, RegistryError } from './errors.js';
import { Interrupted } from '../util/stop.js';

export type { RetryPolicy } from './retry.js';
export { DEFAULT_RETRY } from './retry.js';

export interface ClientOptions {
  readonly endpoint: Endpoint;
  readonly credentials: Credentials | undefined;
  readonly dispatcher: Dispatcher;
  readonly retry?: RetryPolicy;
  /** Upload in chunks of this many bytes (`--chunk-size`); undefined: one PUT per blob until a 413 says otherwise. */
  readonly chunkSize?: number;
  readonly userAgent?: string;
  /** Blob bodies wait here for their bytes (`--limit-rate`); manifests, mounts and small requests do not. */
  readonly throttle?: (bytes: number) => Promise<void>;
  /** Cuts every request under way (a stopping run's grace is over); the caller sees Interrupted. */
  readonly abort?: AbortSignal;
}

export interface ClientStats {
  requests: number;
  retries: number;
  bytesSent: number;
}

interface SendOptions {
  readonly method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly url: URL;
  readonly scopes: readonly string[];
  readonly headers?: Record<string, string>;
  /** A factory, so the body can be produced again when the request is repeated with a fresh token. */
  readonly body?: () => Buffer | Readable;
  /** Statuses that are success; anything else throws a RegistryError. */
  readonly ok: readonly number[];
  /** Keep the body for the caller instead of discarding it. */
  readonly keepBody?: boolean;
  readonly bodySize?: number;
}

interface SendResult {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

export type MountResult = { mounted: true } | { mounted: false; location: URL | undefined };

/** Chunk size used after a proxy refused a whole blob with 413 and no --chunk-size was given. */
const FALLBACK_CHUNK_SIZE = 16 * 1024 * 1024;
/** Below this a proxy's limit is not a body limit any more: the 413 is reported. */
const MIN_CHUNK_SIZE = 64 * 1024;

const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');
/** Redirect statuses a blob GET or HEAD may answer (object storage). */
const REDIRECTS = [301, 302, 303, 307, 308] as const;

export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}
export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}

/**
 * The one OCI distribution client (docs/registry-behaviour.md, Push and Auth): auth, retries, uploads, mounts, manifests, errors.
 * Every HTTP failure is sorted here (docs/architecture.md, Error model); callers see typed RegistryErrors.
 */
export class RegistryClient {
  readonly endpoint: Endpoint;
  readonly auth: Authenticator;
  readonly stats: ClientStats = { requests: 0, retries: 0, bytesSent: 0 };
  readonly #dispatcher: Dispatcher;
  readonly #retry: RetryPolicy;
  readonly #userAgent: string;
  readonly #throttle: ((bytes: number) => Promise<void>) | undefined;
  readonly #abort: AbortSignal | undefined;
  #chunkSize: number | undefined;

  constructor(options: ClientOptions) {
    this.endpoint = options.endpoint;
    this.#dispatcher = options.dispatcher;
    this.#retry = options.retry ?? DEFAULT_RETRY;
    this.#chunkSize = options.chunkSize;
    this.#userAgent = options.userAgent ?? 'regmigrate';
    this.#throttle = options.throttle;
    this.#abort = options.abort;
    this.auth = new Authenticator(options.credentials, options.dispatcher, options.endpoint);
  }

  url(path: string): URL {
    return new URL(path, this.endpoint.origin);
  }

  /** `GET /v2/`: reachability and credentials, before any work. Throws on anything but 200. */
  async ping(): Promise<void> {
    await this.#send({ method: 'GET', url: this.url('/v2/'), scopes: [], ok: [200] });
  }

  async hasBlob(repository: string, digest: string): Promise<boolean> {
    return this.retrying(async () => {
      // Object storage (S3, GCS, Azure; distribution's `redirect` middleware) answers 307 to where the bytes are:
      // the registry found the blob before redirecting, so any 3xx means present (docs/registry-behaviour.md, Push).
      const res = await this.#send({ method: 'HEAD', url: this.url(`/v2/${repository}/blobs/${digest}`), scopes: [pullScope(repository)], ok: [200, ...REDIRECTS, 404] });
      return res.status !== 404;
    });
  }

  /**
   * A blob's bytes, following the registry's redirect to object storage. `Authorization` goes only to the
   * registry's own origin: a pre-signed URL elsewhere carries its own credentials, and S3 refuses a request that
   * carries both.
   */
  async readBlob(repository: string, digest: string): Promise<Buffer> {
    return this.retrying(async () => {
      let url = this.url(`/v2/${repository}/blobs/${digest}`);
      for (let hops = 0; ; hops++) {
        const res = await this.#send({ method: 'GET', url, scopes: [pullScope(repository)], ok: [200, ...REDIRECTS], keepBody: true });
        if (res.status === 200) return res.body;
        const location = headerValue(res.headers.location);
        if (!location || hops >= 5) throw this.#protocolError('GET', url, location ? 'too many redirects' : 'redirect without a Location header');
        url = new URL(location, url);
      }
    });
  }

  /**
   * Cross-repository mount: 201 = mounted; 202 = the registry opened an upload session instead (its Location is
   * returned to upload into); 401 = not allowed to pull from `from` (Harbor): the caller uploads. A 403 DENIED
   * (quota, a read-only Harbor, a proxy-cache project) would refuse an upload the same way: it is thrown.
   */
  async mountBlob(repository: string, digest: string, from: string): Promise<MountResult> {
    return this.retrying(async () => {
      const url = this.url(`/v2/${repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`);
      try {
        const res = await this.#send({ method: 'POST', url, scopes: [pushScope(repository), pullScope(from)], ok: [201, 202], headers: { 'content-length': '0' } });
        if (res.status === 201) return { mounted: true };
        const location = headerValue(res.headers.location);
        return { mounted: false, location: location ? new URL(location, url) : undefined };
      } catch (err) {
        if (err instanceof RegistryError && err.failure === 'auth') return { mounted: false, location: undefined };
        throw err;
      }
    });
  }

  /**
   * Gives up an upload session nothing will be sent to (a mount that opened one instead): 204, or 404 when the
   * registry forgot it already (distribution registry/handlers/blobupload.go, CancelBlobUpload). A DELETE needs the
   * `delete` action, like a manifest's (registry/handlers/app.go appendAccessRecords; Harbor
   * src/server/middleware/v2auth/access.go getAction): an account without it is refused.
   */
  async cancelUpload(repository: string, session: URL): Promise<void> {
    await this.retrying(() => this.#send({ method: 'DELETE', url: session, scopes: [`repository:${repository}:delete,pull,push`], ok: [204, 404] }));
  }

  /**
   * Uploads one blob from a file, streaming (no whole blob in memory): POST, then one PUT with Content-Length,
   * or PATCH chunks when a chunk size is set or a proxy answered 413. A transient failure restarts the whole
   * upload as a new session (a half-sent session cannot be trusted behind several registry replicas).
   */
  /** `start`: where the blob begins in `file` (a tar of the storage holds many blobs). */
  async uploadBlob(repository: string, digest: string, file: string, size: number, session?: URL, onBytes?: (n: number) => void, start = 0): Promise<void> {
    let first = session;
    let attempts = 0;
    // Progress counts each byte once: a repeated attempt reports only what goes beyond the furthest one.
    let reported = 0;
    let sent = 0;
    const count = onBytes
      ? (n: number): void => {
          sent += n;
          if (sent > reported) {
            onBytes(sent - reported);
            reported = sent;
          }
        }
      : undefined;
    await this.retrying(async () => {
      // A repeated attempt first asks whether the last one landed after all (its final PUT timed out, say).
      if (attempts++ > 0 && (await this.hasBlob(repository, digest))) return;
      for (;;) {
        sent = 0;
        const location = first ?? (await this.#startUpload(repository));
        first = undefined;
        const chunk = this.#chunkSize;
        try {
          if (chunk !== undefined && size > chunk) {
            await this.#uploadChunked(repository, digest, file, size, location, chunk, count, start);
          } else {
            await this.#send({
              method: 'PUT',
              url: withDigest(location, digest),
              scopes: [pushScope(repository)],
              headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
              body: () => (size === 0 ? Buffer.alloc(0) : Readable.from(readFile(file, start, start + size - 1, count, this.#throttle), { objectMode: false })),
              bodySize: size,
              ok: [201],
            });
          }
          return;
        } catch (err) {
          if (!(err instanceof RegistryError) || err.status !== 413) throw err;
          // A proxy with a body-size limit (nginx's client_max_body_size, 1 MiB by default): switch to chunks,
          // smaller each time one is still refused, for the rest of the run; the upload starts again.
          const next = chunk === undefined ? FALLBACK_CHUNK_SIZE : Math.floor(chunk / 4);
          if (next < MIN_CHUNK_SIZE) throw err;
          this.#chunkSize = next;
        }
      }
    });
  }

  /** Uploads a small blob held in memory (a config made by a conversion). */
  async uploadBuffer(repository: string, digest: string, bytes: Buffer): Promise<void> {
    await this.retrying(async () => {
      const start = await this.#startUpload(repository);
      await this.#send({
        method: 'PUT',
        url: withDigest(start, digest),
        scopes: [pushScope(repository)],
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) },
        body: () => bytes,
        bodySize: bytes.length,
        ok: [201],
      });
    });
  }

  get chunkSize(): number | undefined {
    return this.#chunkSize;
  }

  async #startUpload(repository: string): Promise<URL> {
    const url = this.url(`/v2/${repository}/blobs/uploads/`);
    const res = await this.#send({ method: 'POST', url, scopes: [pushScope(repository)], ok: [202], headers: { 'content-length': '0' } });
    const location = headerValue(res.headers.location);
    if (!location) throw this.#protocolError('POST', url, 'upload session opened without a Location header');
    return new URL(location, url);
  }

  async #uploadChunked(repository: string, digest: string, file: string, size: number, first: URL, chunkSize: number, onBytes?: (n: number) => void, base = 0): Promise<void> {
    let location = first;
    for (let offset = 0; offset < size; offset += chunkSize) {
      const end = Math.min(size, offset + chunkSize) - 1;
      const length = end - offset + 1;
      const res = await this.#send({
        method: 'PATCH',
        url: location,
        scopes: [pushScope(repository)],
        // Distribution wants `start-end` inclusive, without the `bytes ` prefix (docs/registry-behaviour.md, Push).
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${end}`, 'content-length': String(length) },
        body: () => Readable.from(readFile(file, base + offset, base + end, onBytes, this.#throttle), { objectMode: false }),
        bodySize: length,
        ok: [202],
      });
      const next = headerValue(res.headers.location);
      if (!next) throw this.#protocolError('PATCH', location, 'chunk accepted without a Location header');
      location = new URL(next, location);
    }
    await this.#send({
      method: 'PUT',
      url: withDigest(location, digest),
      scopes: [pushScope(repository)],
      headers: { 'content-length': '0' },
      ok: [201],
    });
  }

  /**
   * A manifest's digest and media type, or undefined when absent. A GET, not a HEAD, though the body is thrown
   * away: undici closes the connection after every HEAD (for servers that send a body anyway), and a new TCP
   * connection per tag costs three times the request; a manifest body is a few hundred bytes.
   */
  async probeManifest(repository: string, reference: string): Promise<{ digest: string | undefined; mediaType: string | undefined } | undefined> {
    const got = await this.getManifest(repository, reference);
    return got && { digest: got.digestHeader, mediaType: got.mediaType };
  }

  /** GET a manifest's bytes: verification hashes what the destination really serves. */
  async getManifest(repository: string, reference: string): Promise<{ bytes: Buffer; mediaType: string | undefined; digestHeader: string | undefined } | undefined> {
    return this.retrying(async () => {
      const res = await this.#send({
        method: 'GET',
        url: this.url(`/v2/${repository}/manifests/${reference}`),
        scopes: [pullScope(repository)],
        headers: { accept: MANIFEST_ACCEPT },
        ok: [200, 404],
        keepBody: true,
      });
      if (res.status === 404) return undefined;
      return {
        bytes: res.body,
        mediaType: headerValue(res.headers['content-type'])?.split(';')[0],
        digestHeader: headerValue(res.headers['docker-content-digest']),
      };
    });
  }

  /** PUT the exact stored bytes with their media type; returns the digest the registry computed. */
  async putManifest(repository: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
    return this.retrying(async () => {
      const res = await this.#send({
        method: 'PUT',
        url: this.url(`/v2/${repository}/manifests/${reference}`),
        scopes: [pushScope(repository)],
        headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
        body: () => bytes,
        bodySize: bytes.length,
        ok: [201],
      });
      const digest = headerValue(res.headers['docker-content-digest']);
      return digest ?? `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    });
  }

  /** `GET /v2/_catalog`, every page (`Link: <…?last=x&n=1000>; rel="next"`). Needs catalog rights. */
  async catalog(pageSize = 1000): Promise<string[]> {
    return this.#paginate(`/v2/_catalog?n=${pageSize}`, ['registry:catalog:*'], 'repositories');
  }

  /** `GET /v2/<name>/tags/list`, every page; an unknown repository has no tags. */
  async listTags(repository: string, pageSize = 1000): Promise<string[]> {
    try {
      return await this.#paginate(`/v2/${repository}/tags/list?n=${pageSize}`, [pullScope(repository)], 'tags');
    } catch (err) {
      if (err instanceof RegistryError && err.failure === 'absent') return [];
      throw err;
    }
  }

  async #paginate(first: string, scopes: readonly string[], field: 'repositories' | 'tags'): Promise<string[]> {
    const out: string[] = [];
    let next: URL | undefined = this.url(first);
    for (let pages = 0; next && pages < 100_000; pages++) {
      const url: URL = next;
      const res = await this.retrying(() => this.#send({ method: 'GET', url, scopes, ok: [200], keepBody: true }));
      const body = JSON.parse(res.body.toString('utf8') || '{}') as Record<string, unknown>;
      const items = body[field];
      if (Array.isArray(items)) for (const item of items) if (typeof item === 'string') out.push(item);
      const link = headerValue(res.headers.link);
      const match = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
      next = match ? new URL(match[1]!, url) : undefined;
    }
    return out;
  }

  /** Deletes a manifest by digest (every tag pointing at it goes with it). */
  async deleteManifest(repository: string, digest: string): Promise<void> {
    await this.retrying(() => this.#send({ method: 'DELETE', url: this.url(`/v2/${repository}/manifests/${digest}`), scopes: [`repository:${repository}:delete,pull,push`], ok: [202, 200] }));
  }

  /** Runs an idempotent step, repeating it on transient failures with backoff and `Retry-After`. */
  async retrying<T>(step: () => Promise<T>): Promise<T> {
    return retryTransient(this.#retry, step, () => this.stats.retries++);
  }

  async #send(options: SendOptions): Promise<SendResult> {
    // Credentials go only to the destination's own origin: an absolute Location to another host gets none.
    const sameOrigin = options.url.origin === this.endpoint.origin;
    for (let authAttempt = 0; ; authAttempt++) {
      const headers: Record<string, string> = { 'user-agent': this.#userAgent, ...options.headers };
      if (sameOrigin) {
        const authorization = await this.auth.authorization(options.scopes);
        if (authorization) headers.authorization = authorization;
      }
      this.stats.requests++;
      let res: Dispatcher.ResponseData;
      try {
        res = await request(options.url, {
          method: options.method,
          headers,
          body: options.body?.(),
          dispatcher: this.#dispatcher,
          ...(this.#abort ? { signal: this.#abort } : {}),
        });
      } catch (err) {
        if (this.#abort?.aborted) throw this.#cut(options);
        throw new RegistryError(
          `${options.method} ${options.url.pathname}: ${describeNetworkError(err)}`,
          {
            method: options.method,
            path: options.url.pathname,
            status: undefined,
            registryCode: undefined,
            failure: classifyNetworkError(err),
            requestId: undefined,
            retryAfterMs: undefined,
          },
          err,
        );
      }
      const status = res.statusCode;
      if (options.ok.includes(status)) {
        const body = await (options.keepBody ? res.body.arrayBuffer().then((b) => Buffer.from(b)) : res.body.dump().then(() => Buffer.alloc(0))).catch((err: unknown) => {
          throw this.#abort?.aborted ? this.#cut(options) : err;
        });
        if (options.bodySize !== undefined) this.stats.bytesSent += options.bodySize;
        return { status, headers: res.headers, body };
      }
      const text = options.method === 'HEAD' ? '' : await res.body.text().catch(() => '');
      if (options.method === 'HEAD') await res.body.dump().catch(() => undefined);
      if (status === 401 && sameOrigin && authAttempt === 0) {
        // First contact, or a token that expired: learn the challenge, drop the token and go once more.
        this.auth.learn(headerValue(res.headers['www-authenticate']));
        this.auth.invalidate(options.scopes);
        if (this.auth.scheme) continue;
      }
      if (status === 401 && sameOrigin && authAttempt > 0) throw await this.#refusal(options, res.headers, text);
      throw this.#httpError(options, status, res.headers, text);
    }
  }

  /**
   * A fresh token was refused too. Its `access` claim tells "no permission on this repository" (the token service
   * left the action out: a guest pushing, a robot of another project) from "credentials refused".
   */
  async #refusal(options: SendOptions, headers: Record<string, string | string[] | undefined>, text: string): Promise<RegistryError> {
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

  #httpError(options: SendOptions, status: number, headers: Record<string, string | string[] | undefined>, text: string): RegistryError {
    const { code, message } = parseErrorBody(text);
    const requestId = headerValue(headers['x-request-id']);
    const parts = [`${options.method} ${options.url.pathname}: ${status}`];
    if (code) parts.push(code);
    let line = parts.join(' ');
    if (message) line += `: ${message}`;
    const schema1Refused = options.method === 'PUT' && isSchema1Refusal(status, options.headers?.['content-type'], text);
    if (schema1Refused) line += ': manifest schema v1 unsupported (a registry without schema1 support)';
    if (requestId && status >= 500) line += ` (X-Request-Id ${requestId})`;
    return new RegistryError(line, {
      method: options.method,
      path: options.url.pathname,
      status,
      registryCode: code,
      // An upload session that vanished (several registry replicas behind a balancer, a restart) is worth a new
      // session: the upload restarts from the beginning.
      failure: code === 'BLOB_UPLOAD_UNKNOWN' ? 'transient' : schema1Refused ? 'permanent' : classifyStatus(status),
      requestId,
      retryAfterMs: parseRetryAfter(headerValue(headers['retry-after'])),
    });
  }

  #cut(options: SendOptions): Interrupted {
    return new Interrupted(`${options.method} ${options.url.pathname}: cut: the run is stopping`);
  }

  #protocolError(method: string, url: URL, what: string): RegistryError {
    return new RegistryError(`${method} ${url.pathname}: ${what}`, {
      method,
      path: url.pathname,
      status: undefined,
      registryCode: undefined,
      failure: 'permanent',
      requestId: undefined,
      retryAfterMs: undefined,
    });
  }
}

/**
 * The bytes `start..end` (inclusive) of a file as a stream that reports progress. An async generator: undici
 * sends it with the Content-Length we set, and no whole blob is ever held in memory.
 */
async function* readFile(file: string, start: number, end: number, onBytes?: (n: number) => void, throttle?: (bytes: number) => Promise<void>): AsyncGenerator<Buffer> {
  let sent = 0;
  // 256 KiB blocks: measured on the bench's 0.5 GiB push, 1 MiB blocks took 1.5× the CPU (each a fresh buffer
  // outside the heap, and a socket write the kernel takes in pieces); 64 KiB under a bandwidth cap, so it is smooth.
  for await (const chunk of createReadStream(file, { start, end, highWaterMark: throttle ? 64 * 1024 : 256 * 1024 })) {
    const buffer = chunk as Buffer;
    if (throttle) await throttle(buffer.length);
    sent += buffer.length;
    onBytes?.(buffer.length);
    yield buffer;
  }
  const expected = end - start + 1;
  // A blob that shrank while being read would otherwise end in a confusing socket error.
  if (sent !== expected) throw new Error(`${file} changed while being read: ${sent} bytes instead of ${expected}`);
}

/** `Location` keeps its `_state` query untouched; the digest is appended (docs/registry-behaviour.md, Push). */
export function withDigest(location: URL, digest: string): URL {
  const href = location.href;
  return new URL(`${href}${href.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`);
}

function describeNetworkError(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e.cause?.code ?? e.code;
  // One line, the code once: `connect ECONNREFUSED 127.0.0.1:1` names it already; OpenSSL's text ends in a newline.
  const message = (e.cause?.message ?? e.message ?? String(err)).trim().split('\n')[0]!;
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

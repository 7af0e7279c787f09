import { Readable } from 'node:stream';
import { headerValue } from './auth.js';
import { RegistryError, UploadCutError } from './errors.js';
import { pullScope, pushScope, type RegistryHttp, type RequestBody } from './http.js';
import { FALLBACK_CHUNK_BYTES, MIN_CHUNK_BYTES, SMALL_BLOB_BYTES } from '../tuning.js';
import { paced, type Throttle } from '../util/rate-limit.js';

/**
 * Blobs (docs/registry-behaviour.md, Push): probe, read, mount, upload. The bytes come from a BlobReader, so this
 * code never opens a file; whoever builds the reader knows where the bytes are.
 */

/** Bytes `start..end` of a blob, both inclusive (as in a chunk's Content-Range). */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** A blob to upload: its bytes, read again for every attempt (a whole blob is never held in memory). */
export interface BlobReader {
  readonly digest: string;
  readonly size: number;
  /** The whole blob, or one range of it; exactly those bytes, or an error. */
  open(range?: ByteRange): AsyncIterable<Uint8Array>;
  /**
   * The same bytes as the blocks of a request body, `onBytes` told of each block as it is read: sent as they are
   * when no cap paces them. A block may be read into again once the one after it has been asked for.
   */
  stream?(range: ByteRange, onBytes?: (n: number) => void, blockBytes?: number): AsyncIterable<Buffer>;
  /** The same bytes at once: a small blob goes as one buffer when no cap paces it. */
  bytes?(range: ByteRange): Buffer;
}

export interface UploadBlobOptions {
  readonly repository: string;
  readonly blob: BlobReader;
  /** An upload session opened already (a mount answered 202): the first attempt sends into it. */
  readonly session?: URL | undefined;
  /** Told of the bytes sent; a repeated attempt reports only what goes beyond the furthest one. */
  readonly onBytes?: (bytes: number) => void;
}

/** How uploads are sent: chunking (changed by a 413 for the rest of the run) and the bandwidth cap. */
export interface UploadSettings {
  /** Upload in chunks of this many bytes (`--chunk-size`); undefined: one PUT per blob until a 413 says otherwise. */
  chunkSize: number | undefined;
  /** Blob bodies wait here for their bytes (`--limit-rate`), in its steps; a wait ends when its request does. */
  readonly throttle?: Throttle | undefined;
  /** The block size of a blob streamed from a file (tuning.ts uploadBlockBytes); undefined: UPLOAD_BLOCK_BYTES. */
  readonly blockBytes?: number | undefined;
}

export type MountResult = { mounted: true } | { mounted: false; location: URL | undefined };

// The 413 fallback's chunk sizes: tuning.ts.
const FALLBACK_CHUNK_SIZE = FALLBACK_CHUNK_BYTES;
const MIN_CHUNK_SIZE = MIN_CHUNK_BYTES;
/** Redirect statuses a blob GET or HEAD may answer (object storage). */
const REDIRECTS = [301, 302, 303, 307, 308] as const;
const MAX_REDIRECTS = 5;

function blobUrl(http: RegistryHttp, repository: string, digest: string): URL {
  return http.url(`/v2/${repository}/blobs/${digest}`);
}

export async function hasBlob(http: RegistryHttp, repository: string, digest: string): Promise<boolean> {
  return http.retrying(async () => {
    // Object storage (S3, GCS, Azure; distribution's `redirect` middleware) answers 307 to where the bytes are:
    // the registry found the blob before redirecting, so any 3xx means present (docs/registry-behaviour.md, Push).
    const res = await http.request({ method: 'HEAD', url: blobUrl(http, repository, digest), scopes: [pullScope(repository)], ok: [200, ...REDIRECTS, 404] });
    return res.status !== 404;
  });
}

/**
 * A blob's bytes, following the registry's redirect to object storage. `Authorization` goes only to the
 * registry's own origin: a pre-signed URL elsewhere carries its own credentials, and S3 refuses a request that
 * carries both. undici's redirect interceptor (node_modules/undici/lib/handler/redirect-handler.js,
 * cleanRequestHeaders) drops Authorization across origins too, but each hop here is one request of its own: it is
 * counted, a 401 from the registry's hop is answered with a token, and a loop or a Location-less 3xx fails with a
 * line naming the blob, where the interceptor hands back the last 3xx as if it were the answer.
 */
export async function readBlob(http: RegistryHttp, repository: string, digest: string): Promise<Buffer> {
  return http.retrying(async () => {
    let url = blobUrl(http, repository, digest);
    for (let hops = 0; ; hops++) {
      const res = await http.request({ method: 'GET', url, scopes: [pullScope(repository)], ok: [200, ...REDIRECTS], keepBody: true });
      if (res.status === 200) return res.body;
      const location = headerValue(res.headers.location);
      if (!location || hops >= MAX_REDIRECTS) throw http.protocolError('GET', url, location ? 'too many redirects' : 'redirect without a Location header');
      url = new URL(location, url);
    }
  });
}

/**
 * Cross-repository mount: 201 = mounted; 202 = the registry opened an upload session instead (its Location is
 * returned to upload into); 401 = not allowed to pull from `from` (Harbor): the caller uploads. A 403 DENIED
 * (quota, a read-only Harbor, a proxy-cache project) would refuse an upload the same way: it is thrown.
 */
export async function mountBlob(http: RegistryHttp, repository: string, digest: string, from: string): Promise<MountResult> {
  return http.retrying(() => tryMount(http, repository, digest, from));
}

/** One mount request (mountBlob without its retries). */
async function tryMount(http: RegistryHttp, repository: string, digest: string, from: string): Promise<MountResult> {
  const url = http.url(`/v2/${repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`);
  try {
    const res = await http.request({ method: 'POST', url, scopes: [pushScope(repository), pullScope(from)], ok: [201, 202], headers: { 'content-length': '0' } });
    if (res.status === 201) return { mounted: true };
    const location = headerValue(res.headers.location);
    return { mounted: false, location: location ? new URL(location, url) : undefined };
  } catch (err) {
    if (err instanceof RegistryError && err.failure === 'auth') return { mounted: false, location: undefined };
    throw err;
  }
}

/**
 * Uploads one blob, streaming: POST, then one PUT with Content-Length, or PATCH chunks when a chunk size is set or
 * a proxy answered 413. A transient failure restarts the whole upload as a new session (a half-sent session cannot
 * be trusted behind several registry replicas).
 */
export async function uploadBlob(http: RegistryHttp, settings: UploadSettings, options: UploadBlobOptions): Promise<void> {
  const { repository, blob, onBytes } = options;
  let first = options.session;
  let attempts = 0;
  // Progress counts each byte once: a repeated attempt reports only what goes beyond the furthest one.
  let reported = 0;
  let sent = 0;
  // Attempts cut while their body went out (a reset or a timeout after bytes left), and the most any of them sent.
  let cut = 0;
  let furthest = 0;
  const count = (n: number): void => {
    sent += n;
    if (onBytes && sent > reported) {
      onBytes(sent - reported);
      reported = sent;
    }
  };
  const body = (range: ByteRange, over: AbortSignal): RequestBody => {
    if (!settings.throttle && blob.bytes && range.end - range.start < SMALL_BLOB_BYTES) {
      const bytes = blob.bytes(range);
      count(bytes.length);
      return bytes;
    }
    if (!settings.throttle && blob.stream) return blob.stream(range, count, settings.blockBytes);
    // A wait for the bandwidth cap ends with the request (cut, failed, or stopped with the run): a body the request
    // gave up on would otherwise wait its turn, at a low rate for minutes, and hold the process open after the run.
    return Readable.from(paced(blob.open(range), settings.throttle, over, count), { objectMode: false });
  };
  const attempt = async (): Promise<void> => {
    // A repeated attempt first asks whether the last one landed after all (its final PUT timed out, say): a mount
    // from the repository into itself answers 201 when it did, else opens the session this attempt sends into
    // (docs/architecture.md, Each blob is uploaded once, then mounted): one request instead of a HEAD and a POST,
    // and no push sends a blob HEAD.
    if (attempts++ > 0) {
      const there = await tryMount(http, repository, blob.digest, repository);
      if (there.mounted) return;
      first = there.location;
    }
    for (;;) {
      sent = 0;
      const location = first ?? (await startUpload(http, repository));
      first = undefined;
      const chunk = settings.chunkSize;
      try {
        if (chunk !== undefined && blob.size > chunk) {
          await uploadChunked(http, repository, blob, location, chunk, body);
        } else {
          await http.request({
            method: 'PUT',
            url: withDigest(location, blob.digest),
            scopes: [pushScope(repository)],
            headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
            body: (over) => (blob.size === 0 ? Buffer.alloc(0) : body({ start: 0, end: blob.size - 1 }, over)),
            bodySize: blob.size,
            ok: [201],
          });
        }
        return;
      } catch (err) {
        if (err instanceof RegistryError && err.failure === 'transient' && err.status === undefined && sent > 0) {
          cut++;
          furthest = Math.max(furthest, sent);
        }
        if (!(err instanceof RegistryError) || err.status !== 413) throw err;
        // A proxy with a body-size limit (nginx's client_max_body_size, 1 MiB by default): switch to chunks,
        // smaller each time one is still refused, for the rest of the run; the upload starts again.
        const next = chunk === undefined ? FALLBACK_CHUNK_SIZE : Math.floor(chunk / 4);
        if (next < MIN_CHUNK_SIZE) throw err;
        settings.chunkSize = next;
      }
    }
  };
  try {
    await http.retrying(attempt);
  } catch (err) {
    if (err instanceof RegistryError && attempts > 1 && cut === attempts) throw new UploadCutError(err, attempts, furthest, blob.size);
    throw err;
  }
}

/** Uploads a small blob held in memory (a config made by a conversion). */
export async function uploadBuffer(http: RegistryHttp, repository: string, digest: string, bytes: Buffer): Promise<void> {
  await http.retrying(async () => {
    const start = await startUpload(http, repository);
    await http.request({
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

async function startUpload(http: RegistryHttp, repository: string): Promise<URL> {
  const url = http.url(`/v2/${repository}/blobs/uploads/`);
  const res = await http.request({ method: 'POST', url, scopes: [pushScope(repository)], ok: [202], headers: { 'content-length': '0' } });
  const location = headerValue(res.headers.location);
  if (!location) throw http.protocolError('POST', url, 'upload session opened without a Location header');
  return new URL(location, url);
}

async function uploadChunked(http: RegistryHttp, repository: string, blob: BlobReader, first: URL, chunkSize: number, body: (range: ByteRange, over: AbortSignal) => RequestBody): Promise<void> {
  let location = first;
  for (let offset = 0; offset < blob.size; offset += chunkSize) {
    const end = Math.min(blob.size, offset + chunkSize) - 1;
    const length = end - offset + 1;
    const res = await http.request({
      method: 'PATCH',
      url: location,
      scopes: [pushScope(repository)],
      // Distribution wants `start-end` inclusive, without the `bytes ` prefix (docs/registry-behaviour.md, Push).
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${end}`, 'content-length': String(length) },
      body: (over) => body({ start: offset, end }, over),
      bodySize: length,
      ok: [202],
    });
    const next = headerValue(res.headers.location);
    if (!next) throw http.protocolError('PATCH', location, 'chunk accepted without a Location header');
    location = new URL(next, location);
  }
  await http.request({ method: 'PUT', url: withDigest(location, blob.digest), scopes: [pushScope(repository)], headers: { 'content-length': '0' }, ok: [201] });
}

/** `Location` keeps its `_state` query untouched; the digest is appended (docs/registry-behaviour.md, Push). */
export function withDigest(location: URL, digest: string): URL {
  const href = location.href;
  return new URL(`${href}${href.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`);
}

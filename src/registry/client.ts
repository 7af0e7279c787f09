import type { Dispatcher } from 'undici';
import type { Authenticator } from './auth.js';
import { hasBlob, mountBlob, readBlob, uploadBlob, uploadBuffer, type MountResult, type UploadBlobOptions, type UploadSettings } from './blobs.js';
import type { Credentials } from './credentials.js';
import type { Endpoint } from './endpoint.js';
import { RegistryHttp, type ClientStats, type RequestFeedback } from './http.js';
import { deleteManifest, getManifest, probeManifest, putManifest, type ManifestHead, type ServedManifest } from './manifests.js';
import type { RetryPolicy } from './retry.js';
import type { Throttle } from '../util/rate-limit.js';
import { catalog, listTags } from './tags.js';

export type { RetryPolicy } from './retry.js';
export { DEFAULT_RETRY } from './retry.js';
export type { ClientStats, RequestFeedback } from './http.js';
export type { BlobReader, ByteRange, MountResult, UploadBlobOptions } from './blobs.js';

export interface ClientOptions {
  readonly endpoint: Endpoint;
  readonly credentials: Credentials | undefined;
  readonly dispatcher: Dispatcher;
  readonly retry?: RetryPolicy;
  /** Upload in chunks of this many bytes (`--chunk-size`); undefined: one PUT per blob until a 413 says otherwise. */
  readonly chunkSize?: number;
  readonly userAgent?: string;
  /** Blob bodies wait here for their bytes (`--limit-rate`), until their request ends; manifests, mounts and small requests do not. */
  readonly throttle?: Throttle;
  /** The block size of a blob streamed from a file (tuning.ts uploadBlockBytes). */
  readonly blockBytes?: number;
  /** Cuts every request under way (a stopping run's grace is over); the caller sees Interrupted. */
  readonly abort?: AbortSignal;
  /** Hears the outcome of every request: the destination's budget adapts to it (destination/budget.ts). */
  readonly feedback?: RequestFeedback;
}

/**
 * The one OCI distribution client (docs/registry-behaviour.md, Push and Auth) that callers hold: the endpoints of
 * blobs.ts, manifests.ts and tags.ts over the request machinery of http.ts (auth, retries, counting, error sorting:
 * docs/architecture.md, Error model). Callers see typed RegistryErrors.
 */
export class RegistryClient {
  readonly endpoint: Endpoint;
  readonly auth: Authenticator;
  readonly stats: ClientStats;
  readonly #http: RegistryHttp;
  readonly #uploads: UploadSettings;

  constructor(options: ClientOptions) {
    this.#http = new RegistryHttp(options);
    this.#uploads = { chunkSize: options.chunkSize, throttle: options.throttle, blockBytes: options.blockBytes };
    this.endpoint = this.#http.endpoint;
    this.auth = this.#http.auth;
    this.stats = this.#http.stats;
  }

  url(path: string): URL {
    return this.#http.url(path);
  }

  /** The block size of blobs streamed from files (tuning.ts uploadBlockBytes); undefined: UPLOAD_BLOCK_BYTES. */
  get blockBytes(): number | undefined {
    return this.#uploads.blockBytes;
  }

  /** The chunk size uploads use now: `--chunk-size`, or what a proxy's 413 made it. */
  get chunkSize(): number | undefined {
    return this.#uploads.chunkSize;
  }

  /** Runs an idempotent step, repeating it on transient failures with backoff and `Retry-After`. */
  retrying<T>(step: () => Promise<T>): Promise<T> {
    return this.#http.retrying(step);
  }

  /** `GET /v2/`: reachability and credentials, before any work. Throws on anything but 200. */
  async ping(timeoutMs?: number): Promise<void> {
    await this.#http.request({ method: 'GET', url: this.url('/v2/'), scopes: [], ok: [200], ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
  }

  hasBlob(repository: string, digest: string): Promise<boolean> {
    return hasBlob(this.#http, repository, digest);
  }

  readBlob(repository: string, digest: string): Promise<Buffer> {
    return readBlob(this.#http, repository, digest);
  }

  mountBlob(repository: string, digest: string, from: string): Promise<MountResult> {
    return mountBlob(this.#http, repository, digest, from);
  }

  uploadBlob(options: UploadBlobOptions): Promise<void> {
    return uploadBlob(this.#http, this.#uploads, options);
  }

  uploadBuffer(repository: string, digest: string, bytes: Buffer): Promise<void> {
    return uploadBuffer(this.#http, repository, digest, bytes);
  }

  getManifest(repository: string, reference: string): Promise<ServedManifest | undefined> {
    return getManifest(this.#http, repository, reference);
  }

  probeManifest(repository: string, reference: string): Promise<ManifestHead | undefined> {
    return probeManifest(this.#http, repository, reference);
  }

  putManifest(repository: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
    return putManifest(this.#http, repository, reference, bytes, mediaType);
  }

  deleteManifest(repository: string, digest: string): Promise<void> {
    return deleteManifest(this.#http, repository, digest);
  }

  /**
   * Gives up an upload session nothing will be sent to (a mount that opened one instead): 204, or 404 when the
   * registry forgot it already (distribution registry/handlers/blobupload.go, CancelBlobUpload). A DELETE needs the
   * `delete` action, like a manifest's (registry/handlers/app.go appendAccessRecords; Harbor
   * src/server/middleware/v2auth/access.go getAction): an account without it is refused.
   */
  async cancelUpload(repository: string, session: URL): Promise<void> {
    await this.#http.retrying(() => this.#http.request({ method: 'DELETE', url: session, scopes: [`repository:${repository}:delete,pull,push`], ok: [204, 404] }));
  }

  catalog(pageSize?: number): Promise<string[]> {
    return catalog(this.#http, pageSize);
  }

  listTags(repository: string, pageSize?: number): Promise<string[]> {
    return listTags(this.#http, repository, pageSize);
  }
}

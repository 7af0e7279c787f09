import { RegmigrateError } from '../errors.js';
import { isSchema1 } from '../image/media-types.js';
import { isTransientNetworkError } from '../util/network-errors.js';

/**
 * How a failed request is handled (docs/architecture.md, Error model): `auth` (401, credentials or token refused), `denied` (403:
 * forbidden, quota, proxy-cache project), `absent` (404: normal for HEAD), `transient` (429, 5xx, resets,
 * timeouts: retried with backoff), `permanent` (everything else, and the 500 of a registry that refuses schema1:
 * reported, never retried).
 */
export type FailureClass = 'auth' | 'denied' | 'absent' | 'transient' | 'permanent';

export interface RegistryErrorDetails {
  readonly method: string;
  /** Path of the request, without query (it may hold upload state). */
  readonly path: string;
  readonly status: number | undefined;
  /** First error code from the registry's JSON body (`DIGEST_INVALID`, `MANIFEST_BLOB_UNKNOWN`, …). */
  readonly registryCode: string | undefined;
  readonly failure: FailureClass;
  /** Harbor masks 5xx bodies; its X-Request-Id is what its logs can be searched for. */
  readonly requestId: string | undefined;
  readonly retryAfterMs: number | undefined;
}

export class RegistryError extends RegmigrateError {
  readonly method: string;
  readonly path: string;
  readonly status: number | undefined;
  readonly registryCode: string | undefined;
  readonly failure: FailureClass;
  readonly requestId: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(message: string, details: RegistryErrorDetails, cause?: unknown) {
    super('REGISTRY', message, { exitCode: 1, cause });
    this.method = details.method;
    this.path = details.path;
    this.status = details.status;
    this.registryCode = details.registryCode;
    this.failure = details.failure;
    this.requestId = details.requestId;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/**
 * An upload whose connection was cut while its body went out, on every attempt: distribution cannot resume a cut
 * session (after a cut mid-chunk the upload URL answers 404 BLOB_UPLOAD_INVALID; docs/registry-behaviour.md, Push),
 * so each attempt started again from the first byte. The last attempt's error is the cause.
 */
export class UploadCutError extends RegistryError {
  constructor(
    readonly last: RegistryError,
    readonly attempts: number,
    /** The most bytes any attempt sent before its cut. */
    readonly furthest: number,
    readonly size: number,
  ) {
    super(last.message, { method: last.method, path: last.path, status: undefined, registryCode: undefined, failure: 'transient', requestId: last.requestId, retryAfterMs: undefined }, last);
  }
}

export function classifyStatus(status: number): FailureClass {
  if (status === 401) return 'auth';
  if (status === 403) return 'denied';
  if (status === 404) return 'absent';
  if (status === 408 || status === 425 || status === 429 || (status >= 500 && status <= 599)) return 'transient';
  return 'permanent';
}

/**
 * distribution 2.8 without `compatibility.schema1` refuses every signed schema1 manifest and says why only in its
 * log: its manifest store hands schema1 to registry/storage/v1unsupportedhandler.go, whose Put returns
 * `distribution.ErrSchemaV1Unsupported` ("manifest schema v1 unsupported", an `errors.New` value), and
 * registry/handlers/manifests.go (PutManifest) wraps that as `errcode.ErrorCodeUnknown.WithDetail(err)`. A Go error
 * without exported fields encodes as `{}`, so the answer is always exactly
 *   500 {"errors":[{"code":"UNKNOWN","message":"unknown error","detail":{}}]}
 * Nothing touches the storage before that refusal, so the same PUT gets the same answer every time: permanent.
 * Storage failures are told apart by their detail: the storage driver base (registry/storage/driver/base/base.go,
 * setDriverName) wraps every driver error in a value naming the driver (`{"DriverName":"s3aws","Enclosed":…}`), and
 * a failed blob check lists two errors. Harbor hands its registry's answer to a manifest PUT back as it is
 * (src/server/registry/manifest.go, putManifest flushes the buffered response).
 */
export function isSchema1Refusal(status: number, contentType: string | undefined, text: string): boolean {
  if (status !== 500 || !isSchema1(contentType?.split(';')[0]?.trim())) return false;
  try {
    const errors = (JSON.parse(text) as ErrorBody).errors;
    if (!Array.isArray(errors) || errors.length !== 1) return false;
    const [only] = errors;
    const detail = only?.detail;
    return only?.code === 'UNKNOWN' && typeof detail === 'object' && detail !== null && !Array.isArray(detail) && Object.keys(detail).length === 0;
  } catch {
    return false;
  }
}

/** A network-level failure (no HTTP status): resets and timeouts are transient, TLS and DNS failures are not. */
export function classifyNetworkError(err: unknown): FailureClass {
  return isTransientNetworkError(err) ? 'transient' : 'permanent';
}

/** `Retry-After` is seconds or an HTTP date. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

interface ErrorBody {
  errors?: Array<{ code?: unknown; message?: unknown; detail?: unknown }>;
}

/** `{"errors":[{"code","message","detail"}]}` (docs/registry-behaviour.md, Push) → code and a one-line text. */
export function parseErrorBody(text: string): { code: string | undefined; message: string | undefined } {
  try {
    const body = JSON.parse(text) as ErrorBody;
    const errors = body.errors ?? [];
    const first = errors[0];
    if (first) {
      const code = typeof first.code === 'string' ? first.code : undefined;
      // distribution lists every problem it found; the first is often only "unknown error" (a 500), the reason
      // comes after: `[{UNKNOWN "unknown error"}, {UNKNOWN "invalid URL on layer"}, {MANIFEST_BLOB_UNKNOWN …}]`.
      const parts: string[] = [];
      for (const e of errors.slice(0, 4)) {
        let part = typeof e.message === 'string' ? e.message : '';
        if (e.detail !== undefined && e.detail !== null && e.detail !== '' && !(typeof e.detail === 'object' && Object.keys(e.detail).length === 0)) {
          const detail = typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail);
          part = part ? `${part} (${detail.slice(0, 200)})` : detail.slice(0, 200);
        }
        if (part && !parts.includes(part)) parts.push(part);
      }
      return { code, message: parts.length ? parts.join('; ') : undefined };
    }
  } catch {
    // not JSON: fall through
  }
  // A web server's page (a proxy's 502, a plain web server's 404) says what it is by its title; its markup is
  // noise in a one-line error: `<!DOCTYPE html><html><head><title>404 Not Found</title>…`.
  if (/^\s*<(!doctype html|html|head|body)[\s>]/i.test(text)) {
    const title = /<title[^>]*>([^<]*)<\/title>/i.exec(text)?.[1]?.replace(/\s+/g, ' ').trim().slice(0, 80);
    return { code: undefined, message: `an HTML page${title ? ` (${title})` : ''}` };
  }
  const oneLine = text.replace(/\s+/g, ' ').trim().slice(0, 200);
  return { code: undefined, message: oneLine || undefined };
}

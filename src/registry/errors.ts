import { RegmigrateError } from '../errors.js';

/**
 * How a failed request is handled (STYLE.md §4): `auth` (401, credentials or token refused), `denied` (403:
 * forbidden, quota, proxy-cache project), `absent` (404: normal for HEAD), `transient` (429, 5xx, resets,
 * timeouts: retried with backoff), `permanent` (everything else: reported, never retried).
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

export function classifyStatus(status: number): FailureClass {
  if (status === 401) return 'auth';
  if (status === 403) return 'denied';
  if (status === 404) return 'absent';
  if (status === 408 || status === 425 || status === 429 || (status >= 500 && status <= 599)) return 'transient';
  return 'permanent';
}

const TRANSIENT_NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** A network-level failure (no HTTP status): resets and timeouts are transient, TLS and DNS failures are not. */
export function classifyNetworkError(err: unknown): FailureClass {
  const code = (err as { code?: string }).code;
  if (code && TRANSIENT_NETWORK_CODES.has(code)) return 'transient';
  const causeCode = (err as { cause?: { code?: string } }).cause?.code;
  if (causeCode && TRANSIENT_NETWORK_CODES.has(causeCode)) return 'transient';
  return 'permanent';
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

/** `{"errors":[{"code","message","detail"}]}` (PROTOCOL.md §3) → code and a one-line text. */
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
  const oneLine = text.replace(/\s+/g, ' ').trim().slice(0, 200);
  return { code: undefined, message: oneLine || undefined };
}

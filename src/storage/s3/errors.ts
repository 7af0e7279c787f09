import { RegmigrateError } from '../../errors.js';

/**
 * What a failed S3 request means for a reader, decided in one place (classifyS3Failure):
 * - `absent`: the object does not exist (`NoSuchKey`, or a 404 to a HEAD). The only answer that proves absence.
 * - `no-bucket`: `NoSuchBucket`.
 * - `denied`: 403 (`AccessDenied`, `SignatureDoesNotMatch`, `InvalidAccessKeyId`, an expired token, …).
 * - `wrong-region`: the bucket lives in another region or behind another endpoint (301 `PermanentRedirect`, 400
 *   `AuthorizationHeaderMalformed`); `region` names the right one when the server said it.
 * - `unavailable`: 5xx, `SlowDown`, resets, timeouts, after every retry.
 * - `too-large`: an object read whole is larger than the caller allows.
 * - `invalid`: any other answer (a proxy's HTML page, a body that is not S3 XML, a range the server did not honour).
 */
export type S3FailureKind = 'absent' | 'no-bucket' | 'denied' | 'wrong-region' | 'unavailable' | 'too-large' | 'invalid';

export interface S3ErrorDetails {
  readonly kind: S3FailureKind;
  readonly bucket: string;
  /** The object key, or the prefix of a listing; undefined for a request on the bucket itself. */
  readonly key: string | undefined;
  readonly status: number | undefined;
  /** The `<Code>` of S3's XML error body (`NoSuchKey`, `SlowDown`, …). */
  readonly s3Code: string | undefined;
  /** `x-amz-request-id`: what the operator of the store can search their logs for. */
  readonly requestId: string | undefined;
  /** For `wrong-region`: the bucket's region as the server named it (`x-amz-bucket-region`, or `<Region>`). */
  readonly region?: string | undefined;
  /** For `too-large`: the object's size as declared, or as far as it was read. */
  readonly size?: number | undefined;
}

/**
 * A source store could not be read. Thrown out of the client as `NOT_A_STORAGE` (exit 2) for what stops a run before
 * any work (no bucket, refused credentials, wrong region); the storage layer turns per-object failures into the
 * tag's faults (`missing-blob`, `unreadable`) instead of letting them out.
 */
export class S3Error extends RegmigrateError {
  readonly kind: S3FailureKind;
  readonly bucket: string;
  readonly key: string | undefined;
  readonly status: number | undefined;
  readonly s3Code: string | undefined;
  readonly requestId: string | undefined;
  readonly region: string | undefined;
  readonly size: number | undefined;

  constructor(message: string, details: S3ErrorDetails, options: { hint?: string; cause?: unknown } = {}) {
    super('NOT_A_STORAGE', message, { exitCode: 2, ...options });
    this.kind = details.kind;
    this.bucket = details.bucket;
    this.key = details.key;
    this.status = details.status;
    this.s3Code = details.s3Code;
    this.requestId = details.requestId;
    this.region = details.region;
    this.size = details.size;
  }
}

/**
 * The failure an S3 answer stands for, or `retry` for what passes. A GET's 404 is `absent` only with S3's own
 * `NoSuchKey`: a 404 page from a proxy or a wrong endpoint proves nothing. A HEAD answer carries no body, so a HEAD
 * 404 is taken as the key's (`absent`); callers ask HEAD only of a bucket that has answered before.
 */
export function classifyS3Failure(method: string, status: number, s3Code: string | undefined): S3FailureKind | 'retry' {
  if (s3Code === 'NoSuchBucket') return 'no-bucket';
  if (s3Code === 'NoSuchKey') return 'absent';
  if (s3Code === 'SlowDown' || s3Code === 'InternalError' || s3Code === 'ServiceUnavailable' || s3Code === 'RequestTimeout') return 'retry';
  if (s3Code === 'PermanentRedirect' || s3Code === 'AuthorizationHeaderMalformed' || s3Code === 'IllegalLocationConstraintException') return 'wrong-region';
  if (status === 301 || status === 307) return 'wrong-region';
  if (status === 403) return 'denied';
  if (status === 404 && method === 'HEAD') return 'absent';
  if (status === 429 || status >= 500) return 'retry';
  return 'invalid';
}

/**
 * AWS Signature Version 4 for S3 requests without a body (GET, HEAD): the `Authorization` header, `x-amz-date`,
 * `x-amz-content-sha256` and, for temporary credentials, `x-amz-security-token`.
 *
 * Spec: "Authenticating Requests (AWS Signature Version 4)" in the S3 API reference, and its worked examples, which
 * test/s3-sigv4.test.ts checks this file against. S3 differs from other services in one place: the path is
 * URI-encoded once, not twice.
 */
import { createHash, createHmac } from 'node:crypto';

export interface SigningCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string | undefined;
}

export interface SignableRequest {
  readonly method: string;
  /** Host header value, with the port when it is not the scheme's default. */
  readonly host: string;
  /** The path as sent, already encoded with encodeS3Path. */
  readonly path: string;
  /** Query parameters, unencoded; an empty string value is sent as `name=`. */
  readonly query: ReadonlyArray<readonly [string, string]>;
  /** `canonicalQuery(query)` when the caller has it already (it sends the same string): `query` is then not read. */
  readonly canonicalQuery?: string;
  /** Further headers to sign (lower-case names). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Hex SHA-256 of the body; the empty body's by default. */
  readonly payloadHash?: string;
}

export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** RFC 3986 encoding as SigV4 wants it: everything but `A-Za-z0-9-._~` as %XX (`encodeURIComponent` leaves `!'()*`). */
export function encodeRfc3986(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Keys made only of characters RFC 3986 leaves as they are (and slashes): most keys of a registry's storage. */
const PLAIN_PATH = /^[A-Za-z0-9\-._~/]*$/;

/** An object key as a path: each segment encoded, slashes kept. */
export function encodeS3Path(key: string): string {
  if (PLAIN_PATH.test(key)) return key;
  return key.split('/').map(encodeRfc3986).join('/');
}

/** The query string both sent and signed: parameters sorted by name, then value, each encoded. */
export function canonicalQuery(query: ReadonlyArray<readonly [string, string]>): string {
  return query
    .map(([k, v]) => [encodeRfc3986(k), encodeRfc3986(v)] as const)
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

/** `20130524T000000Z` */
export function amzDate(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

export class SigV4Signer {
  // The signing key depends only on the secret, the day, the region and the service: derived once a day, not per request.
  #cachedKey: { id: string; key: Buffer } | undefined;
  /** The last `x-amz-date` made, and the second it is of: many requests are signed in the same second. */
  #stamp = { second: NaN, text: '' };

  constructor(
    readonly region: string,
    readonly service = 's3',
  ) {}

  /** The headers to send with the request (the caller adds those it passed in `headers`). */
  sign(request: SignableRequest, credentials: SigningCredentials, now: Date = new Date()): Record<string, string> {
    const second = Math.floor(now.getTime() / 1000);
    if (second !== this.#stamp.second) this.#stamp = { second, text: amzDate(now) };
    const stamp = this.#stamp.text;
    const day = stamp.slice(0, 8);
    const payloadHash = request.payloadHash ?? EMPTY_SHA256;
    const added: Record<string, string> = { 'x-amz-content-sha256': payloadHash, 'x-amz-date': stamp };
    if (credentials.sessionToken) added['x-amz-security-token'] = credentials.sessionToken;
    const all: Record<string, string> = { ...request.headers, ...added, host: request.host };
    const names = Object.keys(all).sort();
    const canonical = [
      request.method,
      request.path,
      request.canonicalQuery ?? canonicalQuery(request.query),
      names.map((n) => `${n}:${canonicalValue(all[n]!)}\n`).join(''),
      names.join(';'),
      payloadHash,
    ].join('\n');
    const scope = `${day}/${this.region}/${this.service}/aws4_request`;
    const toSign = `AWS4-HMAC-SHA256\n${stamp}\n${scope}\n${sha256Hex(canonical)}`;
    const signature = createHmac('sha256', this.#signingKey(credentials.secretAccessKey, day)).update(toSign).digest('hex');
    added.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope},SignedHeaders=${names.join(';')},Signature=${signature}`;
    return added;
  }

  #signingKey(secret: string, day: string): Buffer {
    const id = `${day}\n${secret}`;
    if (this.#cachedKey?.id === id) return this.#cachedKey.key;
    const kDate = createHmac('sha256', `AWS4${secret}`).update(day).digest();
    const kRegion = createHmac('sha256', kDate).update(this.region).digest();
    const kService = createHmac('sha256', kRegion).update(this.service).digest();
    const key = createHmac('sha256', kService).update('aws4_request').digest();
    this.#cachedKey = { id, key };
    return key;
  }
}

/** A header value trimmed, runs of white space made one space (the spec's Trimall). */
function canonicalValue(value: string): string {
  return /^\S*$/.test(value) ? value : value.trim().replace(/\s+/g, ' ');
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

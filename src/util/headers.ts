/**
 * The response headers a reader looks at, picked from undici's raw header list: parsing every header into an
 * object (undici's `util.parseHeaders`) cost more CPU than anything else in a small request's answer, and the
 * readers of registry and S3 answers each look at a handful of names. A name of a length no wanted name has is
 * never decoded.
 */
export interface HeaderNames {
  readonly names: ReadonlySet<string>;
  readonly lengths: ReadonlySet<number>;
}

/** Lower-case names. */
export function headerNames(names: readonly string[]): HeaderNames {
  return { names: new Set(names), lengths: new Set(names.map((n) => n.length)) };
}

/** The wanted headers by lower-case name; of a header sent twice, the first (as a reader of the first would see). */
export function pickHeaders(rawHeaders: readonly Buffer[], wanted: HeaderNames): Record<string, string | undefined> {
  const headers: Record<string, string | undefined> = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const raw = rawHeaders[i]!;
    if (!wanted.lengths.has(raw.length)) continue;
    const name = raw.toString('latin1').toLowerCase();
    if (wanted.names.has(name) && headers[name] === undefined) headers[name] = rawHeaders[i + 1]!.toString('latin1');
  }
  return headers;
}

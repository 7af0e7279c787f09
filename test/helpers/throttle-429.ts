/**
 * A throttling front for a real docker-registry: an HTTP proxy that answers 429 Too Many Requests whenever a
 * request arrives while `maxInFlight` requests are already in flight (a load balancer or an API gateway with a
 * concurrency limit in front of Harbor), with `Retry-After: N` or without it, and passes every other request
 * through. The 429's body is distribution's error envelope with its TOOMANYREQUESTS code
 * (distribution/distribution registry/api/errcode/register.go: ErrorCodeTooManyRequests, HTTP 429).
 *
 * It records the most requests a client had open at once (offered: refused ones included), the most it let
 * through at once, and for each request how many 429s it was answered before it went through (its retries).
 * A request is known by method, path and its `digest`/`mount` parameters; an upload session's id is left out of
 * the path (a retried upload opens a new session), so the POSTs of one repository count as one request.
 */
import http from 'node:http';
import { atEnd } from './teardown.js';

export interface ThrottleOptions {
  /** Requests let through at once; one more is answered 429. */
  maxInFlight: number;
  /** Seconds to put in `Retry-After`; undefined sends no `Retry-After`. */
  retryAfterSeconds: number | undefined;
}

export interface ThrottleStats {
  /** Requests seen (through and refused). */
  requests: number;
  /** Requests answered 429. */
  throttled: number;
  /** The most requests open at once, refused ones included: the concurrency the client tried. */
  peakOffered: number;
  /** The most requests let through at once (never above `maxInFlight`). */
  peakInFlight: number;
  /** Requests let through and not answered yet. */
  inFlight: number;
}

export interface Throttle429 {
  readonly host: string;
  readonly url: string;
  readonly options: ThrottleOptions;
  readonly stats: ThrottleStats;
  /** Per request (see above): how many 429s it got before it went through, the streak still open included. */
  readonly retries: Map<string, number>;
  /** The most 429s any one request got in a row. */
  maxRetries(): number;
  stop(): Promise<void>;
}

/** `PUT /v2/lib/app/blobs/uploads/?digest=sha256:…`: the session id is dropped, the digest or mount source kept. */
export function requestIdentity(method: string, rawUrl: string): string {
  const url = new URL(rawUrl, 'http://throttle');
  const path = url.pathname.replace(/\/blobs\/uploads\/[^/]+$/, '/blobs/uploads/');
  const keys = ['digest', 'mount'].filter((k) => url.searchParams.has(k)).map((k) => `${k}=${url.searchParams.get(k)}`);
  return `${method} ${path}${keys.length ? `?${keys.join('&')}` : ''}`;
}

export async function startThrottle429(upstreamHost: string, options: ThrottleOptions): Promise<Throttle429> {
  const [upHost, upPort] = upstreamHost.split(':') as [string, string];
  const stats: ThrottleStats = { requests: 0, throttled: 0, peakOffered: 0, peakInFlight: 0, inFlight: 0 };
  const retries = new Map<string, number>();
  /** 429s in a row per request, reset when it goes through. */
  const streak = new Map<string, number>();
  let offered = 0;

  const server = http.createServer((req, res) => {
    stats.requests++;
    offered++;
    stats.peakOffered = Math.max(stats.peakOffered, offered);
    res.on('close', () => offered--);
    const identity = requestIdentity(req.method ?? '', req.url ?? '/');

    if (stats.inFlight >= options.maxInFlight) {
      stats.throttled++;
      const n = (streak.get(identity) ?? 0) + 1;
      streak.set(identity, n);
      retries.set(identity, Math.max(retries.get(identity) ?? 0, n));
      req.resume();
      req.on('end', () => {
        res.writeHead(429, {
          'content-type': 'application/json',
          ...(options.retryAfterSeconds === undefined ? {} : { 'retry-after': String(options.retryAfterSeconds) }),
        });
        res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'too many requests' }] }));
      });
      return;
    }

    stats.inFlight++;
    stats.peakInFlight = Math.max(stats.peakInFlight, stats.inFlight);
    streak.delete(identity);
    if (!retries.has(identity)) retries.set(identity, 0);
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      stats.inFlight--;
    };
    res.on('close', finish);
    const upstream = http.request({ host: upHost, port: Number(upPort), method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const throttle: Throttle429 = {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    options,
    stats,
    retries,
    maxRetries: () => Math.max(0, ...retries.values()),
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  atEnd(() => throttle.stop());
  return throttle;
}

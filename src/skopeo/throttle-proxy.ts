import http from 'node:http';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { createDispatcher } from '../destination/dispatcher.js';
import { paced, type RateLimiter } from '../util/rate-limit.js';
import type { Destination } from '../destination/destination.js';

export interface ThrottleProxy {
  /** `127.0.0.1:PORT`: where skopeo sends what it would send to the destination. */
  readonly host: string;
  close(): Promise<void>;
}

/**
 * `--limit-rate` for `--via skopeo`, which has no cap of its own (containers/skopeo#2127): skopeo pushes to this
 * loopback reverse proxy, which forwards every request to the destination (TLS and CA as configured) and meters
 * request bodies through the run's shared limiter. `Location` headers naming the destination are pointed back at the
 * proxy; token realms are left alone (tokens are small, skopeo fetches them directly).
 */
export async function startThrottleProxy(destination: Destination, limiter: RateLimiter, timeoutMs: number): Promise<ThrottleProxy> {
  const dispatcher = createDispatcher({ insecure: destination.tls.insecure, caFile: destination.tls.caFile, timeoutMs });
  const origin = destination.endpoint.origin;
  let self = '';
  const server = http.createServer((req, res) => {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !['host', 'connection', 'keep-alive', 'transfer-encoding'].includes(k)) headers[k] = v;
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD' && (req.headers['content-length'] ?? '0') !== '0';
    request(new URL(req.url ?? '/', origin), { method: req.method as 'GET', headers, body: hasBody ? Readable.from(paced(req, limiter), { objectMode: false }) : undefined, dispatcher })
      .then((up) => {
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(up.headers)) {
          if (v === undefined || k === 'connection' || k === 'keep-alive' || k === 'transfer-encoding') continue;
          out[k] = k === 'location' && typeof v === 'string' && v.startsWith(origin) ? self + v.slice(origin.length) : v;
        }
        res.writeHead(up.statusCode, out);
        up.body.pipe(res);
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
    if (!hasBody) req.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as { port: number }).port}`;
  self = `http://${host}`;
  return {
    host,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await dispatcher.close().catch(() => undefined);
    },
  };
}

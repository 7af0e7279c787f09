/**
 * A scripted proxy in front of the S3 server, for what a healthy server never does: 503 SlowDown storms, a 403 in
 * the middle of a run, a 404 page that is not S3's, a connection cut in the middle of an object. Requests are
 * forwarded with their headers untouched (the Host header included, so SigV4 signatures made for the proxy's
 * address still verify at the server), answers may be rewritten on their way back, and every request is logged with its method, so a test can show that the
 * reader never sent anything but GET and HEAD.
 */
import http from 'node:http';
import https from 'node:https';
import { atEnd } from './teardown.js';

export interface S3FaultRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: http.IncomingHttpHeaders;
  /** Requests seen before this one (from the last reset). */
  readonly seen: number;
}

export type S3FaultAction =
  | { kind: 'forward' }
  /** An S3 error document: `<Error><Code>code</Code>…` with this status. */
  | { kind: 'error'; status: number; code: string; headers?: Record<string, string> }
  /** Any other answer (a proxy's HTML page). */
  | { kind: 'respond'; status: number; body: string; headers?: Record<string, string> }
  /** Forward, then cut the connection after this many bytes of the answer's body (0: before the answer's head). */
  | { kind: 'cut'; afterBytes: number }
  /** Forward, and pass the answer's body through `edit` (a listing whose ETags a server-side encryption would give). */
  | { kind: 'rewrite'; edit: (body: string) => string };

export interface S3FaultLogEntry {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly outcome: number | 'cut';
}

export interface S3FaultProxy {
  readonly endpoint: string;
  readonly log: S3FaultLogEntry[];
  script: (req: S3FaultRequest) => S3FaultAction;
  /** Forget the log and forward everything again. */
  reset(): void;
  stop(): Promise<void>;
}

/** `tls`: serve HTTPS with this PEM certificate and key (a private endpoint's certificate). */
export async function startS3FaultProxy(upstream: string, tls?: { certificate: string; key: string }): Promise<S3FaultProxy> {
  const target = new URL(upstream);
  const log: S3FaultLogEntry[] = [];
  let seen = 0;
  const proxy: S3FaultProxy = {
    endpoint: '',
    log,
    script: () => ({ kind: 'forward' }),
    reset: () => {
      log.length = 0;
      seen = 0;
      proxy.script = () => ({ kind: 'forward' });
    },
    stop: async () => undefined,
  };

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const method = req.method ?? '';
    const record = (outcome: number | 'cut'): void => {
      log.push({ method, path: url.pathname, query: url.search, headers: req.headers, outcome });
    };
    const action = proxy.script({ method, url, headers: req.headers, seen: seen++ });
    if (action.kind === 'error' || action.kind === 'respond') {
      req.resume();
      req.on('end', () => {
        const body =
          action.kind === 'error'
            ? `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${action.code}</Code><Message></Message><RequestId>tx-fault-proxy</RequestId></Error>`
            : action.body;
        res.writeHead(action.status, { 'content-type': action.kind === 'error' ? 'application/xml' : 'text/html', 'content-length': String(Buffer.byteLength(body)), ...action.headers });
        res.end(method === 'HEAD' ? undefined : body);
        record(action.status);
      });
      return;
    }
    const upstreamReq = http.request({ host: target.hostname, port: Number(target.port), method, path: req.url, headers: req.headers }, (upRes) => {
      if (action.kind === 'cut' && action.afterBytes === 0) {
        // Reset before any answer.
        record('cut');
        upRes.destroy();
        req.socket.destroy();
        return;
      }
      if (action.kind === 'rewrite') {
        const chunks: Buffer[] = [];
        upRes.on('data', (chunk: Buffer) => chunks.push(chunk));
        upRes.on('end', () => {
          const body = Buffer.from(action.edit(Buffer.concat(chunks).toString('utf8')), 'utf8');
          const { 'transfer-encoding': _chunked, ...headers } = upRes.headers;
          res.writeHead(upRes.statusCode ?? 502, { ...headers, 'content-length': String(body.length) });
          res.end(body);
          record(upRes.statusCode ?? 502);
        });
        return;
      }
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      if (action.kind === 'cut') {
        let sent = 0;
        upRes.on('data', (chunk: Buffer) => {
          if (sent >= action.afterBytes) return;
          const part = chunk.subarray(0, action.afterBytes - sent);
          sent += part.length;
          res.write(part);
          if (sent >= action.afterBytes) {
            record('cut');
            upRes.destroy();
            // Let the bytes written so far reach the client, then reset the connection.
            res.once('drain', () => req.socket.destroy());
            setTimeout(() => req.socket.destroy(), 20);
          }
        });
        return;
      }
      upRes.pipe(res);
      upRes.on('end', () => record(upRes.statusCode ?? 502));
    });
    upstreamReq.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      record(502);
    });
    req.pipe(upstreamReq);
  };
  const server = tls ? https.createServer({ cert: tls.certificate, key: tls.key }, handler) : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  Object.assign(proxy, { endpoint: `${tls ? 'https' : 'http'}://127.0.0.1:${port}` });
  proxy.stop = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  atEnd(() => proxy.stop());
  return proxy;
}

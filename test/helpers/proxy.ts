/**
 * A scripted HTTP proxy in front of a real docker-registry: each request is offered to the test's script, which
 * may answer it itself (a 500, a 429, a 413), cut the connection, rewrite the upstream answer, or let it through.
 * Every request is logged, so tests can count retries, uploads and bytes.
 */
import http from 'node:http';
import { atEnd } from './teardown.js';

export interface ProxyRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: http.IncomingHttpHeaders;
  /** How many requests with this method and path kind came before (for "fail the first N"). */
  readonly seen: number;
}

export type ScriptAction =
  | {
      kind: 'forward';
      rewriteLocation?: (location: string) => string;
      delayMs?: number;
      /** Hold the request until this settles (a destination that answers only when the test says so). */
      after?: Promise<void>;
      /** Told of each piece of the request body as it arrives (for measuring rates). */
      onBody?: (bytes: number) => void;
      /** Let the request reach the registry, then cut the connection instead of answering (a lost response). */
      dropResponse?: boolean;
      /** Serve other bytes or headers than the registry answered (a lying or corrupting middlebox). */
      rewriteResponse?: (body: Buffer, headers: http.IncomingHttpHeaders) => { body: Buffer; headers: http.IncomingHttpHeaders };
    }
  | { kind: 'respond'; status: number; headers?: Record<string, string>; body?: string }
  /** Read some of the request body, then destroy the socket: a reset mid-upload. */
  | { kind: 'drop'; afterBytes?: number };

export interface LoggedProxyRequest {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly status: number | 'dropped';
  readonly bytesIn: number;
  readonly authorization: string | undefined;
  readonly headers: http.IncomingHttpHeaders;
}

export interface ScriptedProxy {
  readonly host: string;
  readonly url: string;
  readonly log: LoggedProxyRequest[];
  script: (req: ProxyRequest) => ScriptAction;
  /** Forget the log and the per-kind counts, and forward everything again. */
  reset(): void;
  stop(): Promise<void>;
}

/** The kind of a request for counting: `PUT blob-upload`, `HEAD manifest`, … */
export function requestKind(method: string, path: string): string {
  if (path.includes('/blobs/uploads/')) return `${method} blob-upload`;
  if (path.includes('/blobs/')) return `${method} blob`;
  if (path.includes('/manifests/')) return `${method} manifest`;
  return `${method} ${path}`;
}

/** `port`: listen there (a proxy started again where a stopped one was); a free one otherwise. */
export async function startProxy(upstreamHost: string, port = 0): Promise<ScriptedProxy> {
  const [upHost, upPort] = upstreamHost.split(':') as [string, string];
  const counts = new Map<string, number>();
  const log: LoggedProxyRequest[] = [];
  const proxy: ScriptedProxy = {
    host: '',
    url: '',
    log,
    script: () => ({ kind: 'forward' }),
    reset: () => {
      log.length = 0;
      counts.clear();
      proxy.script = () => ({ kind: 'forward' });
    },
    stop: async () => undefined,
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const kind = requestKind(req.method ?? '', url.pathname);
    const seen = counts.get(kind) ?? 0;
    counts.set(kind, seen + 1);
    let bytesIn = 0;
    const record = (status: number | 'dropped'): void => {
      log.push({ method: req.method ?? '', path: url.pathname, query: url.search, status, bytesIn, authorization: req.headers.authorization, headers: req.headers });
    };
    const action = proxy.script({ method: req.method ?? '', url, headers: req.headers, seen });

    if (action.kind === 'respond') {
      req.on('data', (c: Buffer) => (bytesIn += c.length));
      req.on('end', () => {
        res.writeHead(action.status, { 'content-type': 'application/json', ...action.headers });
        res.end(action.body ?? '');
        record(action.status);
      });
      return;
    }
    if (action.kind === 'drop') {
      const limit = action.afterBytes ?? 0;
      const cut = (): void => {
        record('dropped');
        req.socket.destroy();
      };
      if (limit === 0) return cut();
      req.on('data', (c: Buffer) => {
        bytesIn += c.length;
        if (bytesIn >= limit) cut();
      });
      req.on('end', cut);
      return;
    }
    if (action.after) {
      req.pause();
      void action.after.then(() => forward(action));
    } else if (action.delayMs) {
      req.pause();
      setTimeout(() => forward(action), action.delayMs);
    } else {
      forward(action);
    }

    function forward(action: Extract<ScriptAction, { kind: 'forward' }>): void {
    const upstream = http.request({ host: upHost, port: Number(upPort), method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      const headers = { ...upRes.headers };
      if (action.rewriteLocation && typeof headers.location === 'string') headers.location = action.rewriteLocation(headers.location);
      if (action.dropResponse) {
        upRes.resume();
        upRes.on('end', () => {
          record('dropped');
          req.socket.destroy();
        });
        return;
      }
      const rewrite = action.rewriteResponse;
      if (rewrite) {
        const chunks: Buffer[] = [];
        upRes.on('data', (c: Buffer) => chunks.push(c));
        upRes.on('end', () => {
          const out = rewrite(Buffer.concat(chunks), headers);
          const sent = { ...out.headers, 'content-length': String(out.body.length) };
          delete sent['transfer-encoding'];
          res.writeHead(upRes.statusCode ?? 502, sent);
          res.end(req.method === 'HEAD' ? undefined : out.body);
          record(upRes.statusCode ?? 502);
        });
        return;
      }
      res.writeHead(upRes.statusCode ?? 502, headers);
      upRes.pipe(res);
      upRes.on('end', () => record(upRes.statusCode ?? 502));
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      record(502);
    });
    req.on('data', (c: Buffer) => {
      bytesIn += c.length;
      action.onBody?.(c.length);
    });
    req.pipe(upstream);
    }
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const listening = (server.address() as { port: number }).port;
  Object.assign(proxy, { host: `127.0.0.1:${listening}`, url: `http://127.0.0.1:${listening}` });
  proxy.stop = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  atEnd(() => proxy.stop());
  return proxy;
}

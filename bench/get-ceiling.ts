/**
 * The no-op sync's ceiling: a plain script that asks a registry for every tag's manifest once, the least a sync that
 * asks the destination about every tag must do. undici's `Pool.dispatch` with the handler interface its client calls
 * natively (no `request()`, no body stream), `inFlight` GETs at a time over as many keep-alive connections, the
 * Accept header regmigrate sends, the body dropped, no checks beyond the status. A GET, not a HEAD: undici closes
 * the connection after a HEAD (src/registry/manifests.ts probeManifest), which costs several times the request.
 * Run as its own process, so its CPU (GNU time) is its own and the bench's event loop does not slow it.
 *
 * usage: node dist/bench/get-ceiling.js URL IN_FLIGHT < names    (one "repository tag" a line)
 * Prints one JSON line: { seconds, requests } (seconds: the GETs alone, start-up and reading the names left out).
 */
import { Pool } from 'undici';

const [base, inFlightArg] = process.argv.slice(2);
if (base === undefined) throw new Error('usage: get-ceiling.js URL IN_FLIGHT < names');
const inFlight = Number(inFlightArg ?? 16);
const ACCEPT = ['application/vnd.oci.image.index.v1+json', 'application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.docker.distribution.manifest.v2+json'].join(', ');

const chunks: Buffer[] = [];
for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
const paths = Buffer.concat(chunks)
  .toString('utf8')
  .split('\n')
  .filter((line) => line.trim() !== '')
  .map((line) => {
    const [repository, tag] = line.split(' ');
    return `/v2/${repository}/manifests/${tag}`;
  });

const pool = new Pool(base, { connections: inFlight, pipelining: 1, keepAliveTimeout: 30_000 });
const headers = { accept: ACCEPT };

function get(requestPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let status = 0;
    pool.dispatch(
      { method: 'GET', path: requestPath, headers },
      {
        onConnect: () => undefined,
        onHeaders: (statusCode) => {
          status = statusCode;
          return true;
        },
        onData: () => true,
        onComplete: () => resolve(status),
        onError: reject,
      },
    );
  });
}

const started = process.hrtime.bigint();
let next = 0;
await Promise.all(
  Array.from({ length: inFlight }, async () => {
    while (next < paths.length) {
      const requestPath = paths[next++]!;
      const status = await get(requestPath);
      if (status !== 200) throw new Error(`GET ${requestPath}: ${status}`);
    }
  }),
);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
await pool.close();
process.stdout.write(`${JSON.stringify({ seconds, requests: paths.length })}\n`);

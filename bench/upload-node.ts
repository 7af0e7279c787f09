/**
 * A reference uploader, run as its own process so its CPU is its own: every blob file of a registry storage once,
 * largest first, over `connections` keep-alive connections, each as POST + one monolithic PUT with Content-Length.
 * The body goes from the file to the socket through two reused 1 MiB buffers per connection (one being read
 * while the other is written), with nothing else per chunk. No manifests, no checks, no retries.
 *
 * usage: node dist/bench/upload-node.js ROOT URL CONNECTIONS [CA_FILE]   (URL: http://host:port or https://…)
 * Prints one JSON line: { seconds, blobs, bytes, requests }.
 */
import { closeSync, openSync, read, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { listBlobFiles } from './blob-files.js';

const [root, base, connectionsArg, caFile] = process.argv.slice(2);
if (root === undefined || base === undefined) throw new Error('usage: upload-node.js ROOT URL CONNECTIONS [CA_FILE]');
const connections = Number(connectionsArg ?? 8);
const origin = new URL(base);
const tls = origin.protocol === 'https:';
const agent = tls
  ? new https.Agent({ keepAlive: true, maxSockets: connections, ...(caFile ? { ca: readFileSync(caFile) } : {}) })
  : new http.Agent({ keepAlive: true, maxSockets: connections });
const send = tls ? https.request : http.request;
// Its fastest block size here: on one 2 GiB layer 1 MiB cost 0.90× the CPU of 256 KiB over HTTP, the same over HTTPS.
const BLOCK = 1024 * 1024;

function exchange(method: string, path: string, headers: http.OutgoingHttpHeaders, body?: (req: http.ClientRequest) => Promise<void>): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = send({ host: origin.hostname, port: origin.port, method, path, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body) body(req).then(() => req.end(), reject);
    else req.end();
  });
}

function readInto(fd: number, buffer: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buffer, 0, buffer.length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

/** Streams `size` bytes of `file` into `req`: read the next block while the last one is being written. */
async function writeFile(req: http.ClientRequest, file: string, size: number, buffers: [Buffer, Buffer]): Promise<void> {
  const fd = openSync(file, 'r');
  try {
    const written: [Promise<void>, Promise<void>] = [Promise.resolve(), Promise.resolve()];
    for (let position = 0, i = 0; position < size; i ^= 1) {
      await written[i];
      const n = await readInto(fd, buffers[i]!, position);
      if (n === 0) throw new Error(`${file}: shorter than ${size} bytes`);
      position += n;
      const chunk = buffers[i]!.subarray(0, n);
      written[i] = new Promise((resolve, reject) => req.write(chunk, (err) => (err ? reject(err) : resolve())));
    }
    await Promise.all(written);
  } finally {
    closeSync(fd);
  }
}

const blobs = listBlobFiles(root);
let next = 0;
let requests = 0;
const started = process.hrtime.bigint();
await Promise.all(
  Array.from({ length: connections }, async () => {
    const buffers: [Buffer, Buffer] = [Buffer.allocUnsafe(BLOCK), Buffer.allocUnsafe(BLOCK)];
    while (next < blobs.length) {
      const blob = blobs[next++]!;
      const post = await exchange('POST', '/v2/ceiling/blobs/uploads/', { 'content-length': '0' });
      requests++;
      if (post.statusCode !== 202) throw new Error(`POST for ${blob.digest}: ${post.statusCode}`);
      const location = new URL(String(post.headers.location), origin);
      location.searchParams.set('digest', blob.digest);
      const put = await exchange('PUT', location.pathname + location.search, { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) }, (req) =>
        writeFile(req, blob.file, blob.size, buffers),
      );
      requests++;
      if (put.statusCode !== 201) throw new Error(`PUT of ${blob.digest}: ${put.statusCode}`);
    }
  }),
);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
agent.destroy();
process.stdout.write(`${JSON.stringify({ seconds, blobs: blobs.length, bytes: blobs.reduce((n, b) => n + b.size, 0), requests })}\n`);

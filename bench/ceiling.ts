/**
 * Reference uploads and reads the benchmarks compare against.
 *
 * The ceiling of a push is `measureCeiling`: two reference uploaders, each its own process so that its CPU is
 * its own and the bench's event loop does not slow it (bench/upload-node.ts: node:http with reused buffers;
 * bench/upload-python.py: http.client with sendfile), every blob file once, largest first, POST + one monolithic
 * PUT each; whichever is faster in that run is the ceiling.
 *
 * `uploadEveryBlobOnce` is the older in-process reference of the push section (issue 13): undici inside the
 * bench's own process, `concurrency` keep-alive connections, 256 KiB send blocks. It costs more time and CPU than
 * the separate uploaders (issue 22 measured 4.8 s/GiB), so it is no ceiling; the push section still prints it.
 */
import { createReadStream } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import { Agent, request } from 'undici';
import { UPLOAD_BLOCK_BYTES } from '../src/tuning.js';
import { listBlobFiles } from './blob-files.js';
import { measure } from './measure.js';

export interface CeilingResult {
  readonly seconds: number;
  /** User + system CPU seconds of this process while uploading. */
  readonly cpuSeconds: number;
  readonly blobs: number;
  readonly bytes: number;
  readonly requests: number;
}

export async function uploadEveryBlobOnce(root: string, host: string, concurrency: number): Promise<CeilingResult> {
  const blobs = listBlobFiles(root);
  const agent = new Agent({ connections: concurrency, pipelining: 1, keepAliveTimeout: 30_000 });
  const limit = pLimit(concurrency);
  let requests = 0;
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  await Promise.all(
    blobs.map((blob) =>
      limit(async () => {
        const post = await request(`http://${host}/v2/ceiling/blobs/blobs/uploads/`, { method: 'POST', headers: { 'content-length': '0' }, dispatcher: agent });
        requests++;
        await post.body.dump();
        const location = new URL(String(post.headers.location), `http://${host}`);
        location.searchParams.set('digest', blob.digest);
        const put = await request(location, {
          method: 'PUT',
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
          body: createReadStream(blob.file, { highWaterMark: UPLOAD_BLOCK_BYTES }),
          dispatcher: agent,
        });
        requests++;
        await put.body.dump();
        if (put.statusCode !== 201) throw new Error(`ceiling upload of ${blob.digest}: ${put.statusCode}`);
      }),
    ),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  await agent.close();
  return { seconds, cpuSeconds: (used.user + used.system) / 1e6, blobs: blobs.length, bytes: blobs.reduce((n, b) => n + b.size, 0), requests };
}

/**
 * The destination's ceiling for a no-op check (issue 13): one process asking a plain registry for every tag's
 * manifest once (GET by tag, the same Accept header regmigrate sends), `concurrency` at a time over keep-alive
 * connections. A sync that asks the destination about every tag cannot be faster than this.
 */
export async function getEveryManifestOnce(host: string, tags: ReadonlyArray<readonly [string, string]>, concurrency: number): Promise<{ seconds: number; requests: number }> {
  const agent = new Agent({ connections: concurrency, pipelining: 1, keepAliveTimeout: 30_000 });
  const limit = pLimit(concurrency);
  const accept = [
    'application/vnd.oci.image.index.v1+json',
    'application/vnd.oci.image.manifest.v1+json',
    'application/vnd.docker.distribution.manifest.list.v2+json',
    'application/vnd.docker.distribution.manifest.v2+json',
  ].join(', ');
  const started = process.hrtime.bigint();
  await Promise.all(
    tags.map(([repository, tag]) =>
      limit(async () => {
        const res = await request(`http://${host}/v2/${repository}/manifests/${tag}`, { dispatcher: agent, headers: { accept } });
        await res.body.arrayBuffer();
        if (res.statusCode !== 200) throw new Error(`GET ${repository}:${tag}: ${res.statusCode}`);
      }),
    ),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await agent.close();
  return { seconds, requests: tags.length };
}

export type UploaderKind = 'node' | 'python';

export interface ReferenceUpload {
  readonly name: string;
  /** Wall time of the whole process, start-up included (as for regmigrate). */
  readonly seconds: number;
  /** User + system CPU of the whole process (GNU time), where /usr/bin/time is there. */
  readonly cpuSeconds: number | undefined;
  readonly bytes: number;
  readonly requests: number;
}

/**
 * Runs one reference uploader (bench/upload-node.ts or bench/upload-python.py) as its own process: every blob
 * file of `root` once into the registry at `url` (a fresh one: blobs already there would cost it nothing).
 */
export async function runReferenceUploader(kind: UploaderKind, options: { project: string; root: string; url: string; connections: number; caFile?: string }): Promise<ReferenceUpload> {
  const [command, script] = kind === 'node' ? [process.execPath, path.join(options.project, 'dist/bench/upload-node.js')] : ['python3', path.join(options.project, 'bench/upload-python.py')];
  const m = await measure(command, [script, options.root, options.url, String(options.connections), ...(options.caFile ? [options.caFile] : [])]);
  if (m.exitCode !== 0) throw new Error(`the ${kind} reference uploader exited ${m.exitCode}: ${m.stderr.slice(-1000)}`);
  const out = JSON.parse(m.stdout.trim().split('\n').at(-1)!) as { bytes: number; requests: number };
  const name = `${kind === 'node' ? 'node:http, reused buffers' : `Python http.client, ${options.url.startsWith('https:') ? 'a reused buffer' : 'sendfile'}`}, ${options.connections} connections`;
  return { name, seconds: m.seconds, cpuSeconds: m.cpuSeconds, bytes: out.bytes, requests: out.requests };
}

/** Both reference uploaders, each into its own fresh registry; the faster is the ceiling of that run. */
export async function measureCeiling(
  options: { project: string; root: string; connections: number; caFile?: string },
  withDestination: <T>(name: string, job: (url: string) => Promise<T>) => Promise<T>,
): Promise<{ ceiling: ReferenceUpload; runs: ReferenceUpload[] }> {
  const runs: ReferenceUpload[] = [];
  for (const kind of ['node', 'python'] as const) {
    runs.push(await withDestination(`ceiling-${kind}`, (url) => runReferenceUploader(kind, { ...options, url })));
  }
  const ceiling = runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  return { ceiling, runs };
}

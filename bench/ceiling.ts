/**
 * Reference uploads and reads the benchmarks compare against.
 *
 * The ceiling of a push is `measureCeiling`: two reference uploaders, each its own process so that its CPU is
 * its own and the bench's event loop does not slow it (bench/upload-node.ts: node:http with reused buffers;
 * bench/upload-python.py: http.client with sendfile), every blob file once, largest first, POST + one monolithic
 * PUT each; whichever is faster in that run is the ceiling.
 * An uploader inside the bench's own process (undici, 256 KiB send blocks) cost more time and 4.8 s of CPU per GiB
 * against these: it was no ceiling, and no section uses one.
 */
import { execa } from 'execa';
import path from 'node:path';
import pLimit from 'p-limit';
import { Agent, request } from 'undici';
import { measure } from './measure.js';

/**
 * The destination's ceiling for a no-op check: one process asking a plain registry for every tag's
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

/**
 * The destination's ceiling for a no-op check: the faster of `getEveryManifestOnce` (undici, in this process) and
 * bench/get-python.py (its own process, one thread per connection), each at 16 and at 64 connections.
 */
export async function readCeiling(project: string, host: string, tags: ReadonlyArray<readonly [string, string]>): Promise<{ seconds: number; name: string }> {
  const runs: Array<{ seconds: number; name: string }> = [];
  for (const connections of [16, 64]) {
    runs.push({ seconds: (await getEveryManifestOnce(host, tags, connections)).seconds, name: `undici, ${connections} connections` });
    const input = tags.map(([repository, tag]) => `${repository} ${tag}`).join('\n');
    const { stdout } = await execa('python3', [path.join(project, 'bench', 'get-python.py'), host, String(connections)], { input });
    runs.push({ seconds: (JSON.parse(stdout) as { seconds: number }).seconds, name: `Python, ${connections} connections` });
  }
  return runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
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
  const name = `${kind === 'node' ? 'node:http, reused buffers' : `Python http.client, ${options.url.startsWith('https:') ? 'a reused buffer' : 'sendfile'}`}, ${options.connections} connection${options.connections === 1 ? '' : 's'}`;
  return { name, seconds: m.seconds, cpuSeconds: m.cpuSeconds, bytes: out.bytes, requests: out.requests };
}

/**
 * The minimal push client (bench/push-undici.ts) as its own process: every tag of `root` into the registry at `url`
 * (a fresh one), with the requests a push sends and nothing else.
 */
export async function runMinimalClient(options: { project: string; root: string; url: string; connections: number; caFile?: string }): Promise<ReferenceUpload & { tags: number }> {
  const script = path.join(options.project, 'dist/bench/push-undici.js');
  const m = await measure(process.execPath, [script, options.root, options.url, String(options.connections), ...(options.caFile ? [options.caFile] : [])]);
  if (m.exitCode !== 0) throw new Error(`the minimal undici client exited ${m.exitCode}: ${m.stderr.slice(-1000)}`);
  const out = JSON.parse(m.stdout.trim().split('\n').at(-1)!) as { tags: number; requests: number };
  return { name: `minimal undici client (Pool.dispatch), ${options.connections} connections`, seconds: m.seconds, cpuSeconds: m.cpuSeconds, bytes: 0, requests: out.requests, tags: out.tags };
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

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
import { measure } from './measure.js';

/** In-flight GETs the no-op ceiling is measured at: regmigrate's probes start at 16 and grow while requests wait. */
export const CEILING_IN_FLIGHT = [16, 32, 64];

/**
 * bench/get-ceiling.ts as its own process: every tag's manifest GET once at `inFlight`; `seconds` is its GETs alone,
 * `wall` and `cpuSeconds` the whole process's.
 */
export async function runGetCeiling(project: string, host: string, names: string, inFlight: number): Promise<{ seconds: number; wall: number; cpuSeconds: number | undefined; peakMiB: number | undefined }> {
  const m = await measure(process.execPath, [path.join(project, 'dist/bench/get-ceiling.js'), `http://${host}`, String(inFlight)], { input: names });
  if (m.exitCode !== 0) throw new Error(`the GET ceiling exited ${m.exitCode}: ${m.stderr.slice(-1000)}`);
  const { seconds } = JSON.parse(m.stdout.trim()) as { seconds: number };
  return { seconds, wall: m.seconds, cpuSeconds: m.cpuSeconds, peakMiB: m.peakMiB };
}

/**
 * The destination's ceiling for a no-op check: the fastest of bench/get-ceiling.ts at each of CEILING_IN_FLIGHT and
 * bench/get-python.py (its own process, one thread per connection) at 16 and 64 connections.
 */
export async function readCeiling(project: string, host: string, tags: ReadonlyArray<readonly [string, string]>): Promise<{ seconds: number; name: string }> {
  const input = tags.map(([repository, tag]) => `${repository} ${tag}`).join('\n');
  const runs: Array<{ seconds: number; name: string }> = [];
  for (const inFlight of CEILING_IN_FLIGHT) runs.push({ seconds: (await runGetCeiling(project, host, input, inFlight)).seconds, name: `undici Pool.dispatch, ${inFlight} in flight` });
  for (const connections of [16, 64]) {
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
  // Bundled into one file like the program itself (scripts/bundle.ts), so that its start-up is its cheapest.
  const script = path.join(options.project, 'dist/bench/bundle/push-undici.js');
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

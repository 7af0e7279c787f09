/**
 * The real ceiling of a push (issue 13): one process uploading every blob file of the storage once, over
 * keep-alive connections, `concurrency` at a time, largest first, each as POST + one PUT with Content-Length and
 * 256 KiB send blocks (on the 2-core bench machine 1 MiB blocks took 1.9× the CPU for the same time). No manifests, no checks, no retries: nothing a migration can do with less.
 */
import { createReadStream, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import { Agent, request } from 'undici';
import { UPLOAD_BLOCK_BYTES } from '../src/tuning.js';

export interface CeilingResult {
  readonly seconds: number;
  /** User + system CPU seconds of this process while uploading. */
  readonly cpuSeconds: number;
  readonly blobs: number;
  readonly bytes: number;
  readonly requests: number;
}

function listBlobs(root: string): Array<{ digest: string; file: string; size: number }> {
  const base = path.join(root, 'docker/registry/v2/blobs/sha256');
  const out: Array<{ digest: string; file: string; size: number }> = [];
  for (const fan of readdirSync(base)) {
    for (const hex of readdirSync(path.join(base, fan))) {
      const file = path.join(base, fan, hex, 'data');
      out.push({ digest: `sha256:${hex}`, file, size: statSync(file).size });
    }
  }
  return out.sort((a, b) => b.size - a.size);
}

export async function uploadEveryBlobOnce(root: string, host: string, concurrency: number): Promise<CeilingResult> {
  const blobs = listBlobs(root);
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

import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RETRY, RegistryClient, type BlobReader } from '../src/registry/client.js';
import { parseEndpoint } from '../src/registry/endpoint.js';
import { RegistryError } from '../src/registry/errors.js';
import { makeSigningKey, signSchema1 } from '../src/image/schema1.js';
import { fileRangeReader } from '../src/storage/file-range.js';
import { MIN_UPLOAD_BLOCK_BYTES, UPLOAD_BLOCK_BYTES } from '../src/tuning.js';
import { connectDestination } from '../src/destination/destination.js';
import { DOCKER_MANIFEST, SCHEMA1_SIGNED } from '../src/image/media-types.js';
import { startProxy, type ScriptedProxy } from './helpers/proxy.js';
import { startRegistry, type RunningRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

const FAST_RETRY = { attempts: 4, baseDelayMs: 10, maxDelayMs: 50 };

function blobFile(size: number): BlobReader {
  const bytes = randomBytes(size);
  const file = path.join(tempDir(), `blob-${size}`);
  writeFileSync(file, bytes);
  return fileRangeReader(file, 0, size, `sha256:${createHash('sha256').update(bytes).digest('hex')}`);
}

const error = (code: string, message: string) => JSON.stringify({ errors: [{ code, message }] });

describe('RegistryClient against a scripted proxy in front of a real docker-registry', () => {
  let registry: RunningRegistry;
  let proxy: ScriptedProxy;
  let client: RegistryClient;
  const dispatcher = new Agent({ headersTimeout: 10_000, bodyTimeout: 10_000 });
  afterAll(() => dispatcher.close());

  beforeAll(async () => {
    registry = await startRegistry();
    proxy = await startProxy(registry.host);
  });
  const fresh = (options: { chunkSize?: number; credentials?: { username: string; password: string } } = {}) => {
    proxy.reset();
    client = new RegistryClient({
      endpoint: parseEndpoint(proxy.host),
      credentials: options.credentials ? { ...options.credentials, source: 'test' } : undefined,
      dispatcher,
      retry: FAST_RETRY,
      ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
    });
    return client;
  };

  it('retries a 500 burst and then succeeds', async () => {
    fresh();
    const blob = blobFile(4096);
    proxy.script = (req) => (req.method === 'PUT' && req.seen < 2 ? { kind: 'respond', status: 500, body: 'oops' } : { kind: 'forward' });
    await client.uploadBlob({ repository: 'retry/five-hundred', blob });
    expect(await client.hasBlob('retry/five-hundred', blob.digest)).toBe(true);
    expect(proxy.log.filter((r) => r.method === 'PUT').map((r) => r.status)).toEqual([500, 500, 201]);
    // Each retry restarted the upload as a new session.
    expect(proxy.log.filter((r) => r.method === 'POST').length).toBe(3);
  });

  it.each([
    ['Retry-After: 1 on a 429', 429, '1', FAST_RETRY, 1000],
    ["Retry-After: 3600 on a 503 for a minute at most (the run's policy)", 503, '3600', DEFAULT_RETRY, 60_000],
    ["Retry-After: 3600 on a 503 for a minute at most (a policy naming no cap: retry.ts's)", 503, '3600', FAST_RETRY, 60_000],
  ] as const)('honours %s', async (_, status, seconds, policy, wait) => {
    fresh();
    proxy.script = (req) =>
      req.method === 'HEAD' && req.seen === 0 ? { kind: 'respond', status, headers: { 'retry-after': seconds }, body: error('TOOMANYREQUESTS', 'slow down') } : { kind: 'forward' };
    // The waits are recorded, not slept through: the one after the refusal is the server's Retry-After, capped.
    const waits: number[] = [];
    const recording = new RegistryClient({ endpoint: parseEndpoint(proxy.host), credentials: undefined, dispatcher, retry: { ...policy, wait: async (ms) => void waits.push(ms) } });
    expect(await recording.hasBlob('retry/after', `sha256:${'0'.repeat(64)}`)).toBe(false);
    expect(waits).toEqual([wait]);
    expect(proxy.log.filter((r) => r.method === 'HEAD').map((r) => r.status)).toEqual([status, 404]);
  });

  it('restarts an upload whose connection was reset mid-blob', async () => {
    fresh();
    const blob = blobFile(2 * 1024 * 1024);
    proxy.script = (req) => (req.method === 'PUT' && req.seen === 0 ? { kind: 'drop', afterBytes: 300_000 } : { kind: 'forward' });
    let counted = 0;
    await client.uploadBlob({ repository: 'retry/reset', blob, onBytes: (n) => (counted += n) });
    expect(await client.hasBlob('retry/reset', blob.digest)).toBe(true);
    expect(proxy.log.filter((r) => r.method === 'PUT').map((r) => r.status)).toEqual(['dropped', 201]);
    // Progress counts each byte once, though the first attempt sent part of the blob already.
    expect(counted).toBe(blob.size);
  });

  it('streams a blob from a file in the block size it was given', async () => {
    proxy.reset();
    const blocky = new RegistryClient({ endpoint: parseEndpoint(proxy.host), credentials: undefined, dispatcher, retry: FAST_RETRY, blockBytes: MIN_UPLOAD_BLOCK_BYTES });
    const file = blobFile(3 * MIN_UPLOAD_BLOCK_BYTES + 7);
    const asked: Array<number | undefined> = [];
    const blob: BlobReader = { ...file, stream: (range, onBytes, blockBytes) => (asked.push(blockBytes), file.stream!(range, onBytes, blockBytes)) };
    await blocky.uploadBlob({ repository: 'blocks/small', blob });
    expect(await blocky.hasBlob('blocks/small', blob.digest)).toBe(true);
    expect(asked).toEqual([MIN_UPLOAD_BLOCK_BYTES]);
  });

  it('asks whether a blob landed before sending it again after a lost answer to its final PUT: a mount into its own repository, no HEAD', async () => {
    fresh();
    const blob = blobFile(64 * 1024);
    proxy.script = (req) => (req.method === 'PUT' && req.seen === 0 ? { kind: 'forward', dropResponse: true } : { kind: 'forward' });
    await client.uploadBlob({ repository: 'retry/lost-answer', blob });
    const kinds = proxy.log.map((r) => `${r.method} ${r.status} ${new URLSearchParams(r.query).get('from') ?? ''}`.trim());
    expect(kinds).toEqual(['POST 202', 'PUT dropped', 'POST 201 retry/lost-answer']);
  });

  it('a repeated upload goes into the session its mount question opened: one POST an attempt, no HEAD', async () => {
    fresh();
    const blob = blobFile(4096);
    proxy.script = (req) => (req.method === 'PUT' && req.seen === 0 ? { kind: 'respond', status: 500, body: 'oops' } : { kind: 'forward' });
    await client.uploadBlob({ repository: 'retry/session', blob });
    const kinds = proxy.log.map((r) => `${r.method} ${r.status} ${new URLSearchParams(r.query).get('mount') ?? ''}`.trim());
    expect(kinds).toEqual(['POST 202', 'PUT 500', `POST 202 ${blob.digest}`, 'PUT 201']);
  });

  it('switches to chunked upload when a proxy answers 413 to a whole blob', async () => {
    fresh();
    const blob = blobFile(20 * 1024 * 1024);
    const limit = 17 * 1024 * 1024;
    proxy.script = (req) =>
      Number(req.headers['content-length'] ?? 0) > limit ? { kind: 'respond', status: 413, headers: { 'content-type': 'text/html' }, body: '<html>413 Request Entity Too Large</html>' } : { kind: 'forward' };
    await client.uploadBlob({ repository: 'chunked/auto', blob });
    expect(await client.hasBlob('chunked/auto', blob.digest)).toBe(true);
    const patches = proxy.log.filter((r) => r.method === 'PATCH');
    expect(patches.map((p) => p.headers['content-range'])).toEqual([`0-${16 * 1024 * 1024 - 1}`, `${16 * 1024 * 1024}-${blob.size - 1}`]);
    expect(client.chunkSize).toBe(16 * 1024 * 1024);
  });

  it('uploads in chunks of --chunk-size', async () => {
    fresh({ chunkSize: 1024 * 1024 });
    const blob = blobFile(2.5 * 1024 * 1024);
    await client.uploadBlob({ repository: 'chunked/set', blob });
    expect(await client.hasBlob('chunked/set', blob.digest)).toBe(true);
    expect(proxy.log.filter((r) => r.method === 'PATCH').map((r) => r.bytesIn)).toEqual([1048576, 1048576, 524288]);
  });

  it.each([
    ['in one read', 1000],
    ['block by block', 1024 * 1024 + 5],
  ])('counts every byte of a blob sent %s once, and fails naming the file when it holds fewer bytes', async (_label, size) => {
    fresh();
    const blob = blobFile(size);
    let counted = 0;
    await client.uploadBlob({ repository: `read/${size}`, blob, onBytes: (n) => (counted += n) });
    expect(await client.hasBlob(`read/${size}`, blob.digest)).toBe(true);
    expect(counted).toBe(size);

    const file = path.join(tempDir(), 'shrunk');
    writeFileSync(file, randomBytes(size - 100));
    const shrunk = fileRangeReader(file, 0, size, `sha256:${'0'.repeat(64)}`);
    const failure = await client.uploadBlob({ repository: `read/${size}`, blob: shrunk }).then(() => undefined, (err: unknown) => err);
    expect(failure).toBeInstanceOf(RegistryError);
    expect((failure as RegistryError).message).toContain(`${file} changed while being read: ${size - 100} bytes instead of ${size}`);
  });

  it.each([
    ['relative', (location: string) => new URL(location).pathname + new URL(location).search],
    ['absolute', (location: string) => location],
  ])('follows a %s Location, keeping its _state query', async (_label, rewrite) => {
    fresh();
    const blob = blobFile(1000);
    proxy.script = (req) => (req.method === 'POST' ? { kind: 'forward', rewriteLocation: (l) => rewrite(l.startsWith('http') ? l : `http://${proxy.host}${l}`) } : { kind: 'forward' });
    await client.uploadBlob({ repository: `location/${_label}`, blob });
    const put = proxy.log.find((r) => r.method === 'PUT')!;
    expect(put.query).toMatch(/_state=.*&digest=sha256%3A[0-9a-f]{64}$/);
  });

  it('never sends Authorization to another host named in a Location', async () => {
    const other = await startProxy(registry.host);
    fresh({ credentials: { username: 'user', password: 'Pa55-not-for-others' } });
    proxy.script = (req) => {
      if (!req.headers.authorization) return { kind: 'respond', status: 401, headers: { 'www-authenticate': 'Basic realm="test"' }, body: error('UNAUTHORIZED', 'authentication required') };
      if (req.method === 'POST') return { kind: 'forward', rewriteLocation: (l) => `http://${other.host}${new URL(l, `http://${proxy.host}`).pathname}${new URL(l, `http://${proxy.host}`).search}` };
      return { kind: 'forward' };
    };
    const blob = blobFile(1000);
    await client.uploadBlob({ repository: 'auth/elsewhere', blob });
    expect(proxy.log.filter((r) => r.status !== 401).every((r) => r.authorization?.startsWith('Basic '))).toBe(true);
    expect(other.log).toHaveLength(1);
    expect(other.log[0]!.authorization).toBeUndefined();
  });

  it('gives up after the configured attempts and says why', async () => {
    fresh();
    proxy.script = () => ({ kind: 'respond', status: 503, headers: { 'x-request-id': 'req-123' }, body: error('UNAVAILABLE', 'service unavailable') });
    const err = await client.hasBlob('retry/never', `sha256:${'1'.repeat(64)}`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).failure).toBe('transient');
    expect(proxy.log).toHaveLength(FAST_RETRY.attempts);
    const put = await client.putManifest('retry/never', 'v1', Buffer.from('{}'), 'application/vnd.oci.image.manifest.v1+json').catch((e: unknown) => e);
    expect((put as RegistryError).message).toBe('PUT /v2/retry/never/manifests/v1: 503 UNAVAILABLE: service unavailable (X-Request-Id req-123)');
  });

  it('does not retry permanent errors', async () => {
    fresh();
    proxy.script = () => ({ kind: 'respond', status: 400, body: error('MANIFEST_INVALID', 'manifest invalid') });
    const err = (await client.putManifest('perm/x', 'v1', Buffer.from('{}'), 'application/vnd.oci.image.manifest.v1+json').catch((e: unknown) => e)) as RegistryError;
    expect(err.registryCode).toBe('MANIFEST_INVALID');
    expect(proxy.log).toHaveLength(1);
  });

  // A signed schema1 manifest; the registry of this file runs without schema1 support, as distribution 2.8 does
  // unless `compatibility.schema1` is on.
  const schema1 = signSchema1(
    Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'old/app', tag: 'v1', architecture: 'amd64', fsLayers: [{ blobSum: `sha256:${'a'.repeat(64)}` }], history: [{ v1Compatibility: '{"id":"a"}' }] }, null, 3)),
    makeSigningKey(),
  );
  const storageFailure = JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'unknown error', detail: { DriverName: 's3aws', Enclosed: {} } }] });
  const refusalShape = JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'unknown error', detail: {} }] });
  const emptyDetailOtherCode = JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'service unavailable', detail: {} }] });
  const twoErrors = JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'unknown error', detail: {} }, { code: 'UNKNOWN', message: 'unknown error', detail: {} }] });
  it.each([
    ['the registry refusing schema1', SCHEMA1_SIGNED, undefined, 1, 'permanent'],
    ['an empty detail under another code than UNKNOWN, to a schema1 PUT', SCHEMA1_SIGNED, emptyDetailOtherCode, FAST_RETRY.attempts, 'transient'],
    ['two errors of the refusal\'s shape, to a schema1 PUT', SCHEMA1_SIGNED, twoErrors, FAST_RETRY.attempts, 'transient'],
    ['a storage failure (its detail names the driver) to a schema1 PUT', SCHEMA1_SIGNED, storageFailure, FAST_RETRY.attempts, 'transient'],
    ['a proxy in between, to a schema1 PUT', SCHEMA1_SIGNED, 'oops', FAST_RETRY.attempts, 'transient'],
    ['the refusal\'s shape, to a manifest that is not schema1', DOCKER_MANIFEST, refusalShape, FAST_RETRY.attempts, 'transient'],
  ] as const)('a manifest PUT answered 500 by %s: retried only when the answer may change', async (_label, mediaType, body, puts, failure) => {
    fresh();
    if (body !== undefined) proxy.script = (req) => (req.method === 'PUT' ? { kind: 'respond', status: 500, body } : { kind: 'forward' });
    const err = (await client.putManifest('old/app', 'v1', schema1, mediaType).catch((e: unknown) => e)) as RegistryError;
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.status).toBe(500);
    expect(err.failure).toBe(failure);
    expect(proxy.log.filter((r) => r.method === 'PUT')).toHaveLength(puts);
    if (failure === 'permanent') expect(err.message).toBe('PUT /v2/old/app/manifests/v1: 500 UNKNOWN: unknown error: manifest schema v1 unsupported (a registry without schema1 support)');
  });

  it('falls back to an upload when a mount is refused', async () => {
    fresh();
    const blob = blobFile(5000);
    await client.uploadBlob({ repository: 'mount/home', blob });
    proxy.script = (req) => (req.url.searchParams.has('mount') ? { kind: 'respond', status: 401, body: error('UNAUTHORIZED', 'no pull on from') } : { kind: 'forward' });
    const result = await client.mountBlob('mount/other', blob.digest, 'mount/home');
    expect(result.mounted).toBe(false);
    proxy.script = () => ({ kind: 'forward' });
    const mounted = await client.mountBlob('mount/third', blob.digest, 'mount/home');
    expect(mounted.mounted).toBe(true);
    expect(await client.hasBlob('mount/third', blob.digest)).toBe(true);
  });

  it("lists repositories page by page, following the registry's Link header to the end", async () => {
    fresh();
    const config = blobFile(64);
    await client.uploadBlob({ repository: 'paged/one', blob: config });
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size }, layers: [] }));
    for (const repository of ['paged/one', 'paged/two', 'paged/three']) {
      await client.mountBlob(repository, config.digest, 'paged/one');
      await client.putManifest(repository, 'v1', manifest, 'application/vnd.oci.image.manifest.v1+json');
    }
    proxy.reset();
    // distribution 2.8 pages its catalog (registry/handlers/catalog.go: `n`, `last` and a Link header); its tag
    // list it sends whole, whatever `n` asks.
    const repositories = await client.catalog(1);
    expect(repositories).toEqual(expect.arrayContaining(['paged/one', 'paged/three', 'paged/two']));
    expect(new Set(repositories).size).toBe(repositories.length);
    // One page a repository, each after the last one listed: the client went where each Link said.
    const asked = proxy.log.filter((r) => r.path === '/v2/_catalog').map((r) => new URLSearchParams(r.query).get('last'));
    expect(asked.slice(0, repositories.length)).toEqual([null, ...repositories.slice(0, -1)]);
  });

  it('keeps its connection open across blob probes (HEAD), found or not', async () => {
    // A dispatcher of one connection straight to the registry: every new TCP connection is counted.
    const single = new Agent({ connections: 1 });
    let connections = 0;
    single.on('connect', () => connections++);
    try {
      const direct = new RegistryClient({ endpoint: parseEndpoint(registry.host), credentials: undefined, dispatcher: single, retry: FAST_RETRY });
      const blob = blobFile(512);
      await direct.uploadBlob({ repository: 'probe/keep-alive', blob });
      const found: boolean[] = [];
      for (let i = 0; i < 10; i++) found.push(await direct.hasBlob('probe/keep-alive', i % 2 ? blob.digest : `sha256:${String(i).repeat(64)}`));
      expect(found).toEqual([false, true, false, true, false, true, false, true, false, true]);
      expect(connections).toBe(1);
    } finally {
      await single.close();
    }
  });
});

describe('a destination sizes upload blocks by the uploads it may run at once', () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  const connect = (uploads?: number) =>
    connectDestination({
      endpoint: parseEndpoint(registry.host),
      credentials: { username: undefined, password: undefined, env: { DOCKER_CONFIG: tempDir() }, dockerConfig: undefined },
      timeoutMs: 10_000,
      chunkSize: undefined,
      insecure: false,
      caFile: undefined,
      ...(uploads ? { budget: { uploads, requests: uploads * 2 } } : {}),
    });

  it.each([
    ['the default (uploads grow to 32)', undefined, UPLOAD_BLOCK_BYTES],
    ['--concurrency 256', 256, MIN_UPLOAD_BLOCK_BYTES],
  ])('%s', async (_name, uploads, block) => {
    const destination = await connect(uploads);
    try {
      expect(destination.client.blockBytes).toBe(block);
    } finally {
      await destination.close();
    }
  });
});

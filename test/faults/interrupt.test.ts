/**
 * Ctrl-C and SIGTERM during a slow (`--limit-rate`) push and sync into a real docker-registry: nothing new starts,
 * an image whose blobs all landed still gets its manifests and is verified, an upload still under way when the grace
 * is over is cut (its blob never lands), a second signal still writes the report, and a retry backoff holds nothing.
 */
import { execa } from 'execa';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Agent } from 'undici';
import { describe, expect, it } from 'vitest';
import { HarborClient } from '../../src/harbor/client.js';
import { RegistryClient } from '../../src/registry/client.js';
import { parseEndpoint } from '../../src/registry/endpoint.js';
import { fileRangeReader } from '../../src/storage/file-range.js';
import { RateLimiter } from '../../src/util/rate-limit.js';
import { Interrupted } from '../../src/util/stop.js';
import { addImage, makeLayer, StorageBuilder, type Layer } from '../../fixtures/builder.js';
import { BIN } from '../helpers/cli.js';
import { waitFor } from '../helpers/observe.js';
import { startProxy } from '../helpers/proxy.js';
import { startRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';

interface Report {
  images: Array<{ source: string; status: string; reason: string | null }>;
}

/**
 * `big/app:1`: a 4 MiB layer (16 s at the 256 KiB/s of these tests) and a small config. `small/app:1`: a config made
 * larger than its tiny layer, so with two uploads at a time (largest first) the tiny layer goes last.
 */
function slowStorage(): { root: string; bigLayer: Layer; smallLayer: Layer; smallConfig: string } {
  const root = path.join(tempDir('regmigrate-interrupt-'), 'registry');
  const b = new StorageBuilder(root);
  const bigLayer = makeLayer('big', 'big\n', 4 * 1024 * 1024, 1);
  const smallLayer = makeLayer('small', 'small\n');
  b.tag('big/app', '1', addImage(b, 'big/app', { format: 'oci', layers: [bigLayer] }).digest);
  const small = addImage(b, 'small/app', { format: 'oci', layers: [smallLayer], label: 'small '.repeat(400) });
  b.tag('small/app', '1', small.digest);
  return { root, bigLayer, smallLayer, smallConfig: small.config };
}

async function hasBlob(registryUrl: string, repository: string, digest: string): Promise<boolean> {
  return (await fetch(`${registryUrl}/v2/${repository}/blobs/${digest}`, { method: 'HEAD' })).status === 200;
}

function reasons(report: string): Record<string, string> {
  const doc = JSON.parse(readFileSync(report, 'utf8')) as Report;
  return Object.fromEntries(doc.images.map((i) => [i.source, i.status === 'failed' ? `failed: ${i.reason ?? ''}` : i.status]));
}

/** Runs the CLI with its stderr collected as it comes; a SIGTERM is not followed by execa's SIGKILL 5 s later. */
function start(args: string[], env: Record<string, string> = {}) {
  const child = execa(BIN, args, { reject: false, forceKillAfterDelay: false, env: { REGMIGRATE_NO_PROGRESS: '1', ...env } });
  const out = { stderr: '' };
  child.stderr?.on('data', (d: Buffer) => (out.stderr += d.toString()));
  return { child, out };
}

describe('SIGINT / SIGTERM during a slow transfer', () => {
  it.each([
    ['push', 'SIGINT', 130],
    ['sync', 'SIGTERM', 143],
  ] as const)('%s, %s: the image whose last blob lands in the grace is verified, the cut one is interrupted and never lands (exit %i)', async (command, signal, code) => {
    const { root, bigLayer, smallLayer, smallConfig } = slowStorage();
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    // The tiny layer's upload is held a moment at the proxy: the signal comes while it is under way, with the
    // image's config landed (it is the image's last blob).
    let smallUnderWay = false;
    proxy.script = (req) => {
      if (req.method === 'PUT' && req.url.searchParams.get('digest') === smallLayer.digest) {
        smallUnderWay = true;
        return { kind: 'forward', delayMs: 1500 };
      }
      return { kind: 'forward' };
    };
    const report = path.join(tempDir(), 'report.json');
    const { child, out } = start([command, root, '--to', proxy.host, '--limit-rate', '256KiB/s', '--concurrency', '2', '--report', report]);
    await waitFor(() => smallUnderWay && proxy.log.some((r) => r.method === 'PUT' && decodeURIComponent(r.query).includes(smallConfig) && r.status === 201));
    child.kill(signal);
    const result = await child;

    expect(result.exitCode, out.stderr).toBe(code);
    expect(reasons(report)).toEqual({ 'big/app:1': 'interrupted', 'small/app:1': 'verified' });
    expect(await hasBlob(registry.url, 'small/app', smallLayer.digest)).toBe(true);
    // Cut, not waited for: the 4 MiB layer never landed.
    expect(await hasBlob(registry.url, 'big/app', bigLayer.digest)).toBe(false);
    expect(out.stderr).toMatch(new RegExp(`^regmigrate: ${signal}: starting no new uploads; uploads under way get 5 s to finish, then are cut; the report follows \\(${signal} again to cut them now\\)\\n`, 'm'));
    expect(out.stderr.endsWith('\n')).toBe(true);
  });

  it('a second SIGINT cuts at once and the report is still written', async () => {
    const { root, bigLayer } = slowStorage();
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    let bigBytes = 0;
    proxy.script = (req) => (req.method === 'PUT' && req.url.searchParams.get('digest') === bigLayer.digest ? { kind: 'forward', onBody: (n) => (bigBytes += n) } : { kind: 'forward' });
    const report = path.join(tempDir(), 'report.json');
    // A grace far longer than the test: only the second signal can end the run early.
    const { child, out } = start(['push', root, '--to', proxy.host, '--limit-rate', '256KiB/s', '--report', report], { REGMIGRATE_STOP_GRACE_SECONDS: '600' });
    await waitFor(() => bigBytes > 0);
    child.kill('SIGINT');
    await waitFor(() => out.stderr.includes('SIGINT: starting no new uploads'));
    child.kill('SIGINT');
    const result = await child;

    expect(result.exitCode, out.stderr).toBe(130);
    expect(existsSync(report)).toBe(true);
    expect(reasons(report)['big/app:1']).toBe('interrupted');
    expect(await hasBlob(registry.url, 'big/app', bigLayer.digest)).toBe(false);
    expect(bigBytes).toBeLessThan(bigLayer.blob.length);
    expect(out.stderr).toMatch(/^regmigrate: SIGINT again: cleaning up and stopping now: transfers under way are cut, the report is still written\n/m);
    expect(out.stderr.endsWith('\n')).toBe(true);
  });

  it('a retry waiting out "Retry-After: 60" is not made after the signal, and nothing new starts', async () => {
    const { root } = slowStorage();
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    proxy.script = (req) =>
      req.method === 'POST' && req.url.pathname.includes('/blobs/uploads/')
        ? { kind: 'respond', status: 503, headers: { 'retry-after': '60' }, body: JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'busy' }] }) }
        : { kind: 'forward' };
    const report = path.join(tempDir(), 'report.json');
    // One upload slot (the big layer) and two request slots (small blobs): three of the four blobs start at once, the
    // fourth waits for a slot. No slot frees: the first 503 holds new work for 60 s and the refused ones wait to retry.
    const { child, out } = start(['push', root, '--to', proxy.host, '--concurrency', '1', '--max-requests', '2', '--report', report], { REGMIGRATE_STOP_GRACE_SECONDS: '600' });
    await waitFor(() => proxy.log.filter((r) => r.status === 503).length === 3);
    child.kill('SIGINT');
    const signalled = Date.now();
    const result = await child;
    const exited = Date.now();

    expect(result.exitCode, out.stderr).toBe(130);
    expect(reasons(report)).toEqual({ 'big/app:1': 'interrupted', 'small/app:1': 'interrupted' });
    // The three refused first attempts, and after them nothing: no retry, and the fourth blob never started.
    const blobRequests = proxy.log.filter((r) => r.path.includes('/blobs/'));
    expect(blobRequests.map((r) => `${r.method} ${r.status}`)).toEqual(['POST 503', 'POST 503', 'POST 503']);
    expect(new Set(blobRequests.map((r) => r.query)).size).toBe(3);
    // The stop lifts the 60 s hold: the run ends in about a second, not after waiting it out. (The bound is half the
    // hold, so a slow machine passes and a run that waits the hold out cannot: nothing else separates the two, as
    // neither sends a request after the signal.)
    expect(exited - signalled).toBeLessThan(30_000);
  });
});

describe('a stopping run and the registry client', () => {
  it('a backoff wait ends as soon as the stop signal fires, and the failure is Interrupted', async () => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    proxy.script = () => ({ kind: 'respond', status: 503, headers: { 'retry-after': '60' } });
    const stop = new AbortController();
    const dispatcher = new Agent();
    const client = new RegistryClient({ endpoint: parseEndpoint(proxy.host), credentials: undefined, dispatcher, retry: { attempts: 5, baseDelayMs: 500, maxDelayMs: 30_000, signal: stop.signal } });
    let outcome: unknown = 'pending';
    const ping = client.retrying(() => client.ping()).then(
      () => (outcome = 'resolved'),
      (err: unknown) => (outcome = err),
    );
    // The first 503 is in and the client waits out its Retry-After.
    await waitFor(() => client.stats.retries === 1);
    stop.abort();
    // One turn of the event loop, no clock: the wait is over by then.
    await new Promise((resolve) => setImmediate(resolve));
    expect(outcome).toBeInstanceOf(Interrupted);
    expect(String((outcome as Error).message)).toMatch(/GET \/v2\/: 503.*\(not retried: the run is stopping\)/);
    expect(proxy.log).toHaveLength(1);
    await ping;
    await dispatcher.close();
  });
  it('a token fetch under way is cut by the abort signal: the request is Interrupted, not left to time out', async () => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    // A token service that takes the request and never answers.
    let tokenAsked = false;
    const tokens = http.createServer(() => void (tokenAsked = true));
    await new Promise<void>((resolve) => tokens.listen(0, '127.0.0.1', resolve));
    const realm = `http://127.0.0.1:${(tokens.address() as AddressInfo).port}/token`;
    proxy.script = (req) => (req.headers.authorization ? { kind: 'forward' } : { kind: 'respond', status: 401, headers: { 'www-authenticate': `Bearer realm="${realm}",service="test"` } });
    const abort = new AbortController();
    const dispatcher = new Agent();
    const client = new RegistryClient({ endpoint: parseEndpoint(proxy.host), credentials: undefined, dispatcher, retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 }, abort: abort.signal });
    let outcome: unknown = 'pending';
    const probe = client.hasBlob('cut/token', `sha256:${'2'.repeat(64)}`).then(
      () => (outcome = 'resolved'),
      (err: unknown) => (outcome = err),
    );
    await waitFor(() => tokenAsked);
    abort.abort();
    // One turn of the event loop, no clock: the token request is cut by then, not left to the header timeout.
    await new Promise((resolve) => setImmediate(resolve));
    expect(outcome).toBeInstanceOf(Interrupted);
    expect(String((outcome as Error).message)).toMatch(/^HEAD \/v2\/cut\/token\/blobs\/sha256:2+: cut: the run is stopping$/);
    tokens.closeAllConnections();
    tokens.close();
    await probe;
    await dispatcher.close();
  });

  it('a Harbor API request under way is cut by the abort signal: Interrupted, not left to time out', async () => {
    // An API that takes the request and never answers.
    let asked = false;
    const api = http.createServer(() => void (asked = true));
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    const abort = new AbortController();
    const dispatcher = new Agent();
    const harbor = new HarborClient(parseEndpoint(`127.0.0.1:${(api.address() as AddressInfo).port}`), undefined, dispatcher, { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 }, { abort: abort.signal });
    let outcome: unknown = 'pending';
    const listing = harbor.listArtifacts('team/app').then(
      () => (outcome = 'resolved'),
      (err: unknown) => (outcome = err),
    );
    await waitFor(() => asked);
    abort.abort();
    await new Promise((resolve) => setImmediate(resolve));
    expect(outcome).toBeInstanceOf(Interrupted);
    expect(String((outcome as Error).message)).toMatch(/^GET \/api\/v2\.0\/projects\/team\/repositories\/app\/artifacts: cut: the run is stopping$/);
    api.closeAllConnections();
    api.close();
    await listing;
    await dispatcher.close();
  });

  it('a wait for bandwidth (--limit-rate) ends when the run is cut', async () => {
    const registry = await startRegistry();
    // 1 KiB/s without a burst: the second step of the upload waits for its turn.
    const limiter = new RateLimiter(1024, 0);
    let waits = 0;
    let ended = 0;
    const abort = new AbortController();
    const dispatcher = new Agent();
    const throttle = {
      step: limiter.step,
      take: async (bytes: number, signal?: AbortSignal): Promise<void> => {
        waits++;
        try {
          await limiter.take(bytes, signal);
        } finally {
          ended++;
        }
      },
    };
    const client = new RegistryClient({ endpoint: parseEndpoint(registry.host), credentials: undefined, dispatcher, throttle, abort: abort.signal });
    const file = path.join(tempDir(), 'blob');
    const bytes = randomBytes(256 * 1024);
    writeFileSync(file, bytes);
    const blob = fileRangeReader(file, 0, bytes.length, `sha256:${createHash('sha256').update(bytes).digest('hex')}`);
    const outcome = client.uploadBlob({ repository: 'cut/throttled', blob }).catch((err: unknown) => err);
    await waitFor(() => waits === 2);
    abort.abort();
    expect(await outcome).toBeInstanceOf(Interrupted);
    // One turn of the event loop, no clock: the wait is over by then.
    await new Promise((resolve) => setImmediate(resolve));
    expect(ended).toBe(waits);
    await dispatcher.close();
  });

  it('a wait for bandwidth ends when its request fails, with no run stopping: nothing is left to hold the process open', async () => {
    const registry = await startRegistry();
    // The destination side cuts the connection as soon as the body's first bytes arrive.
    const proxy = await startProxy(registry.host);
    proxy.script = (req) => (req.method === 'PUT' ? { kind: 'drop', afterBytes: 1 } : { kind: 'forward' });
    // A wait that ends only by its signal: a body the request gave up on waits for ever unless its wait is ended.
    let waits = 0;
    let ended = 0;
    const throttle = {
      step: 1024,
      take: (_bytes: number, signal?: AbortSignal): Promise<void> => {
        // The first piece goes at once; every later one waits.
        if (waits++ === 0) return Promise.resolve().finally(() => ended++);
        return new Promise<void>((_resolve, reject) => {
          signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
        }).finally(() => ended++);
      },
    };
    const dispatcher = new Agent();
    const client = new RegistryClient({
      endpoint: parseEndpoint(proxy.host),
      credentials: undefined,
      dispatcher,
      throttle,
      retry: { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 },
    });
    const file = path.join(tempDir(), 'blob');
    const bytes = randomBytes(256 * 1024);
    writeFileSync(file, bytes);
    const blob = fileRangeReader(file, 0, bytes.length, `sha256:${createHash('sha256').update(bytes).digest('hex')}`);
    const failure = await client.uploadBlob({ repository: 'cut/dropped', blob }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(Error);
    expect(waits).toBeGreaterThan(1);
    await waitFor(() => ended === waits, 5000);
    expect(ended).toBe(waits);
    await dispatcher.close();
  });
});

/**
 * Fault injection between regmigrate and a real docker-registry: each scenario scripts the proxy, runs the built
 * CLI, and checks the destination's final state, the exit code and that retries stayed bounded.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { addImage, makeLayer, StorageBuilder } from '../../fixtures/builder.js';
import { runCli } from '../helpers/cli.js';
import { startProxy, type ProxyRequest, type ScriptAction } from '../helpers/proxy.js';
import { startRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';
import { buildFaultCorpus, seeded, type FaultCorpus } from './corpus.js';

interface Report {
  images: Array<{ source: string; status: string; reason: string | null; digest: string }>;
  summary: { verified: number; failed: number; blobsUploaded: number };
}

const error = (code: string, message: string) => JSON.stringify({ errors: [{ code, message }] });
const isUploadPut = (req: ProxyRequest) => req.method === 'PUT' && req.url.pathname.includes('/blobs/uploads/');
/** The mount-or-open POST every blob's upload starts with (a push sends no blob HEAD). */
const isUploadPost = (req: ProxyRequest) => req.method === 'POST' && req.url.pathname.includes('/blobs/uploads/');

async function headDigest(url: string, ref: string): Promise<string | null> {
  const at = ref.lastIndexOf(':');
  const res = await fetch(`${url}/v2/${ref.slice(0, at)}/manifests/${ref.slice(at + 1)}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
  });
  return res.status === 200 ? res.headers.get('docker-content-digest') : null;
}

describe('a hostile network between regmigrate and the registry', () => {
  let corpus: FaultCorpus;
  let baseline: number;
  beforeAll(async () => {
    corpus = buildFaultCorpus();
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    const result = await runCli(['push', corpus.root, '--to', proxy.host, '--quiet']);
    expect(result.exitCode, result.stderr).toBe(0);
    baseline = proxy.log.length;
  });

  type Scenario = { name: string; injected: number; script: (random: () => number) => (req: ProxyRequest) => ScriptAction; args?: string[] };
  const scenarios: Scenario[] = [
    {
      name: '500/502/503 bursts on uploads and manifests',
      injected: 6,
      script: () => {
        let left = 6;
        const statuses = [500, 502, 503];
        return (req) => ((isUploadPut(req) || (req.method === 'PUT' && req.url.pathname.includes('/manifests/'))) && left-- > 0 ? { kind: 'respond', status: statuses[left % 3]!, body: error('UNKNOWN', 'upstream trouble') } : { kind: 'forward' });
      },
    },
    {
      name: '429 with Retry-After, and without',
      injected: 4,
      script: () => {
        let left = 4;
        return (req) => (isUploadPost(req) && left-- > 0 ? { kind: 'respond', status: 429, headers: left % 2 ? { 'retry-after': '1' } : {}, body: error('TOOMANYREQUESTS', 'slow down') } : { kind: 'forward' });
      },
    },
    {
      name: 'connection resets mid-blob at random offsets',
      injected: 4,
      script: (random) => {
        let left = 4;
        return (req) => (isUploadPut(req) && Number(req.headers['content-length']) > 100_000 && left-- > 0 ? { kind: 'drop', afterBytes: 1 + Math.floor(random() * 200_000) } : { kind: 'forward' });
      },
    },
    {
      name: 'upload sessions that vanish (404 BLOB_UPLOAD_UNKNOWN, as behind several replicas)',
      injected: 3,
      script: () => {
        let left = 3;
        return (req) => (isUploadPut(req) && left-- > 0 ? { kind: 'respond', status: 404, body: error('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry') } : { kind: 'forward' });
      },
    },
    {
      name: '413 from a proxy with a body limit: chunked uploads take over',
      injected: 1,
      script: () => (req) => (Number(req.headers['content-length'] ?? 0) > 512 * 1024 ? { kind: 'respond', status: 413, headers: { 'content-type': 'text/html' }, body: '<html>413</html>' } : { kind: 'forward' }),
      args: [],
    },
    {
      name: 'a stalled response: the timeout fires, the request goes again',
      injected: 2,
      script: () => {
        let left = 1;
        // Never answer (the first verification's read-back): hold the socket open until the client gives up.
        return (req) => (req.method === 'GET' && req.url.pathname.includes('/manifests/') && left-- > 0 ? { kind: 'forward', delayMs: 60_000 } : { kind: 'forward' });
      },
      args: ['--timeout', '2'],
    },
  ];

  it.each(scenarios.map((s, i) => [s.name, s, i] as const))('%s: every image verified, retries bounded', async (_name, scenario, seed) => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    const script = scenario.script(seeded(seed + 1));
    // The scenario must meet the requests it scripts: a fault never injected proves nothing.
    let injected = 0;
    proxy.script = (req) => {
      const action = script(req);
      if (action.kind !== 'forward' || action.delayMs) injected++;
      return action;
    };
    const report = path.join(tempDir(), 'report.json');
    const result = await runCli(['push', corpus.root, '--to', proxy.host, '--report', report, '--quiet', ...(scenario.args ?? [])]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(injected).toBeGreaterThan(0);
    const doc = JSON.parse(readFileSync(report, 'utf8')) as Report;
    expect(doc.summary.verified).toBe(Object.keys(corpus.tags).length);
    for (const [ref, digest] of Object.entries(corpus.tags)) expect(await headDigest(registry.url, ref)).toBe(digest);
    // Bounded: the clean run's requests, plus a retry (or a restarted upload, or chunks) per injected fault.
    const chunkAllowance = scenario.name.startsWith('413') ? 40 : 0;
    expect(proxy.log.length).toBeLessThanOrEqual(baseline + scenario.injected * 3 + chunkAllowance);
  });

  it('a link that cuts every transfer over 1.5 MiB: the big layer fails in one line that says so, the rest lands; --chunk-size gets it through', async () => {
    const root = path.join(tempDir('regmigrate-cut-'), 'registry');
    const b = new StorageBuilder(root);
    const big = makeLayer('big', 'big\n', 3 * 1024 * 1024, 1);
    b.tag('big/app', '1', addImage(b, 'big/app', { format: 'oci', layers: [big] }).digest);
    b.tag('small/app', '1', addImage(b, 'small/app', { format: 'oci', layers: [makeLayer('small', 'small\n', 100 * 1024)] }).digest);
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    // distribution cannot resume an upload whose PATCH or PUT was cut: every attempt starts a new session.
    proxy.script = (req) => ((req.method === 'PUT' || req.method === 'PATCH') && req.url.pathname.includes('/blobs/uploads/') && Number(req.headers['content-length'] ?? Infinity) > 1.5 * 1024 * 1024 ? { kind: 'drop', afterBytes: 1.5 * 1024 * 1024 } : { kind: 'forward' });
    const report = path.join(tempDir(), 'report.json');
    const result = await runCli(['push', root, '--to', proxy.host, '--report', report, '--quiet', '--retries', '3']);
    expect(result.exitCode).toBe(1);
    const doc = JSON.parse(readFileSync(report, 'utf8')) as Report;
    const reason = doc.images.find((i) => i.source === 'big/app:1')!.reason!;
    expect(reason).toMatch(/^upload-cut: blob sha256:[0-9a-f]{64}: the connection was cut mid-upload on all 3 attempts \(at most [\d.]+ MiB of 3\.0 MiB sent; last: PUT \/v2\/big\/app\/blobs\/uploads\/\S+: .+\); the registry cannot resume a cut upload, so a link that cuts long transfers needs smaller requests: try --chunk-size 1MiB$/);
    expect(reason).not.toMatch(/\n/);
    expect(doc.images.find((i) => i.source === 'small/app:1')!.status).toBe('verified');
    const chunked = await runCli(['push', root, '--to', proxy.host, '--report', report, '--quiet', '--chunk-size', '1MiB']);
    expect(chunked.exitCode, chunked.stderr).toBe(0);
    expect(await headDigest(registry.url, 'big/app:1')).not.toBeNull();
  });

  it('stops retrying a permanent failure and says why (every upload refused with 503 forever)', async () => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    proxy.script = (req) => (isUploadPut(req) && req.url.pathname.includes('/gamma/db/') ? { kind: 'respond', status: 503, headers: { 'x-request-id': 'r-42' }, body: error('UNAVAILABLE', 'maintenance') } : { kind: 'forward' });
    const report = path.join(tempDir(), 'report.json');
    const result = await runCli(['push', corpus.root, '--to', proxy.host, '--report', report, '--quiet', '--retries', '3']);
    expect(result.exitCode).toBe(1);
    const doc = JSON.parse(readFileSync(report, 'utf8')) as Report;
    const failed = doc.images.find((i) => i.source === 'gamma/db:v1')!;
    expect(failed.status).toBe('failed');
    expect(failed.reason).toMatch(/503 UNAVAILABLE: maintenance \(X-Request-Id r-42\)/);
    expect(doc.summary.verified).toBe(Object.keys(corpus.tags).length - 1);
    expect(await headDigest(registry.url, 'gamma/db:v1')).toBeNull();
    // 3 attempts for each of the image's uploads that reached gamma/db, no more.
    expect(proxy.log.filter((r) => r.method === 'PUT' && r.path.includes('/gamma/db/blobs/uploads/')).length).toBeLessThanOrEqual(3 * 2);
  });

  it.each([
    [
      // On a plain registry a 403 is not named a quota (only Harbor's is: test/harbor-policies.test.ts); the words stay.
      'a 403 DENIED in Harbor\'s quota words, from a plain registry',
      (req: ProxyRequest): ScriptAction =>
        isUploadPut(req) && req.url.pathname.includes('/beta/worker/')
          ? { kind: 'respond', status: 403, body: error('DENIED', 'adding 300.0 KiB of storage resource, which when updated to current usage of 10.0 MiB will exceed the configured upper limit of 10.0 MiB.') }
          : { kind: 'forward' },
      'beta/worker:v1',
      /^blob sha256:[0-9a-f]{64}: PUT \/v2\/beta\/worker\/blobs\/uploads\/[^:]+: 403 DENIED: adding 300\.0 KiB .*will exceed the configured upper limit of 10\.0 MiB/,
    ],
    [
      'an immutable tag (412 PRECONDITION)',
      (req: ProxyRequest): ScriptAction =>
        req.method === 'PUT' && req.url.pathname === '/v2/alpha/api/manifests/v1'
          ? { kind: 'respond', status: 412, body: error('PRECONDITION', "Failed to process request due to 'api:v1' configured as immutable.") }
          : { kind: 'forward' },
      'alpha/api:v1',
      /^manifest: PUT \/v2\/alpha\/api\/manifests\/v1: 412 PRECONDITION: Failed to process request due to 'api:v1' configured as immutable\./,
    ],
  ])('%s fails that image with Harbor\'s words, not the others, and is not retried', async (_name, script, ref, reason) => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    proxy.script = script;
    const report = path.join(tempDir(), 'report.json');
    const result = await runCli(['push', corpus.root, '--to', proxy.host, '--report', report, '--quiet']);
    expect(result.exitCode).toBe(1);
    const doc = JSON.parse(readFileSync(report, 'utf8')) as Report;
    expect(doc.images.find((i) => i.source === ref)!.reason).toMatch(reason);
    expect(doc.summary.verified).toBe(Object.keys(corpus.tags).length - 1);
    // Each refused upload or manifest is refused once: a 403 or 412 is not retried.
    const refused = proxy.log.filter((r) => r.status === 403 || r.status === 412).map((r) => `${r.path.replace(/uploads\/[^/]+/, 'uploads')}#${new URLSearchParams(r.query).get('digest') ?? ''}`);
    expect(refused.length).toBeGreaterThan(0);
    expect(new Set(refused).size).toBe(refused.length);
  });

  it('survives the registry being killed and restarted mid-run', async () => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    let restarted = false;
    proxy.script = (req) => {
      if (!restarted && isUploadPut(req)) {
        restarted = true;
        // Kill the registry under the first upload; it comes back on the same port and storage a second later.
        void (async () => {
          await registry.stop();
          await new Promise((r) => setTimeout(r, 1000));
          const { launchRegistry } = await import('../../fixtures/registry-process.js');
          await launchRegistry({ workDir: tempDir('regmigrate-restart-'), root: registry.root, port: registry.port });
        })();
        return { kind: 'drop' };
      }
      return { kind: 'forward' };
    };
    const report = path.join(tempDir(), 'report.json');
    const result = await runCli(['push', corpus.root, '--to', proxy.host, '--report', report, '--quiet']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect((JSON.parse(readFileSync(report, 'utf8')) as Report).summary.verified).toBe(Object.keys(corpus.tags).length);
  });
});

/** A push killed with SIGKILL at random points, then run again: everything lands, nothing is sent twice. */
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, runCli } from '../helpers/cli.js';
import { startProxy } from '../helpers/proxy.js';
import { startRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';
import { buildFaultCorpus, seeded } from './corpus.js';
import { waitFor } from '../helpers/observe.js';


describe('resume after SIGKILL', () => {
  const corpus = buildFaultCorpus();

  it.each([1, 2, 3])('seed %i: the second run completes and re-sends no blob that had landed', async (seed) => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    proxy.script = () => ({ kind: 'forward', delayMs: 40 });
    const landed = (): Array<{ digest: string; bytes: number }> =>
      proxy.log
        .filter((r) => r.method === 'PUT' && r.status === 201 && r.path.includes('/blobs/uploads/'))
        .map((r) => ({ digest: new URLSearchParams(r.query).get('digest')!, bytes: r.bytesIn }));
    const killAfter = 1 + Math.floor(seeded(seed)() * (corpus.uniqueBlobs - 2));
    const child = execa(BIN, ['push', corpus.root, '--to', proxy.host, '--concurrency', '1', '--quiet'], { reject: false });
    await waitFor(() => landed().length >= killAfter);
    child.kill('SIGKILL');
    const killed = await child;
    expect(killed.signal).toBe('SIGKILL');
    const first = landed();
    expect(first.length).toBeGreaterThanOrEqual(killAfter);
    expect(first.length).toBeLessThan(corpus.uniqueBlobs);

    proxy.reset();
    const report = path.join(tempDir(), 'report.json');
    const again = await runCli(['push', corpus.root, '--to', proxy.host, '--report', report, '--quiet']);
    expect(again.exitCode, again.stderr).toBe(0);
    const second = landed();
    const firstDigests = new Set(first.map((u) => u.digest));
    expect(second.filter((u) => firstDigests.has(u.digest))).toEqual([]);
    expect(first.length + second.length).toBe(corpus.uniqueBlobs);
    const doc = JSON.parse(readFileSync(report, 'utf8')) as { summary: { verified: number; skipped: number; bytesUploaded: number } };
    expect(doc.summary.verified + doc.summary.skipped).toBe(Object.keys(corpus.tags).length);
    expect(doc.summary.bytesUploaded).toBe(second.reduce((s, u) => s + u.bytes, 0));
  });
});

describe('SIGINT and SIGTERM', () => {
  const corpus = buildFaultCorpus();

  /** `command` on the corpus through a slow proxy, sent `signal` once the first blob landed. */
  async function stopped(command: 'push' | 'sync', extra: string[], signal: 'SIGINT' | 'SIGTERM') {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    proxy.script = () => ({ kind: 'forward', delayMs: 80 });
    const child = execa(BIN, [command, corpus.root, '--to', proxy.host, '--concurrency', '1', ...extra], { reject: false });
    await waitFor(() => proxy.log.some((r) => r.method === 'PUT' && r.status === 201));
    child.kill(signal);
    return { result: await child, proxy };
  }

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('%s stops new work, lets uploads under way finish, writes the report and exits %i', async (signal, code) => {
    const report = path.join(tempDir(), 'report.json');
    const { result, proxy } = await stopped('push', ['--report', report], signal);
    expect(result.exitCode).toBe(code);
    expect(String(result.stderr)).toContain(`${signal}: starting no new uploads; uploads under way get 5 s to finish, then are cut`);
    // The images not done are `interrupted`, not `failed`: in the table, its summary and the report alike.
    const rows = String(result.stdout).split('\n').filter((l) => /^(alpha|beta|gamma)\//.test(l)).map((l) => l.trim().split(/\s+/).at(-1));
    expect(rows).toHaveLength(Object.keys(corpus.tags).length);
    const interrupted = rows.filter((s) => s === 'interrupted').length;
    expect(interrupted).toBeGreaterThan(0);
    expect(rows.filter((s) => s !== 'interrupted' && s !== 'verified')).toEqual([]);
    expect(String(result.stdout)).not.toMatch(/^Failed:/m);
    expect(String(result.stdout)).toMatch(new RegExp(`^Interrupted: ${interrupted} images? not finished when the run was stopped; run it again to finish them$`, 'm'));
    expect(String(result.stderr)).toMatch(new RegExp(`^\\d+ images? verified, 0 already there, 0 failed, ${interrupted} interrupted; `, 'm'));
    const doc = JSON.parse(readFileSync(report, 'utf8')) as { summary: { failed: number; interrupted: number }; images: Array<{ status: string; reason: string | null }> };
    expect(doc.images.filter((i) => i.status === 'interrupted')).toHaveLength(interrupted);
    expect(doc.summary).toMatchObject({ failed: 0, interrupted });
    // Nothing half-done: every upload that started also finished (no session left open at the registry's end).
    expect(proxy.log.filter((r) => r.status === 'dropped')).toEqual([]);
  });

  it('a sync stopped by SIGINT says `interrupted` for each tag not done, and counts them apart from failures', async () => {
    const { result } = await stopped('sync', ['--state', path.join(tempDir(), 'state.json')], 'SIGINT');
    expect(result.exitCode).toBe(130);
    const stdout = String(result.stdout);
    const pushed = stdout.match(/^pushed /gm)?.length ?? 0;
    const interrupted = stdout.match(/^interrupted (alpha|beta|gamma)\/\S+:v1 -> \S+:v1$/gm)?.length ?? 0;
    expect(interrupted).toBeGreaterThan(0);
    expect(pushed + interrupted).toBe(Object.keys(corpus.tags).length);
    expect(stdout).not.toMatch(/^failed /m);
    expect(stdout).toMatch(new RegExp(`^sync: ${pushed} pushed, 0 unchanged, 0 failed, ${interrupted} interrupted; uploaded `, 'm'));
  });
});

/**
 * The destination's registry process is killed mid-push: the run says so once, starts nothing new, writes its
 * report and exits 3; once the registry is back on the same port and storage, the same command completes.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { launchRegistry } from '../../fixtures/registry-process.js';
import { runCli } from '../helpers/cli.js';
import { servedDigest } from '../helpers/observe.js';
import { startProxy, type ProxyRequest } from '../helpers/proxy.js';
import { startRegistry } from '../helpers/registry.js';
import { atEnd } from '../helpers/teardown.js';
import { tempDir } from '../helpers/tmp.js';
import { buildFaultCorpus } from './corpus.js';

interface Report {
  images: Array<{ source: string; status: string; reason: string | null }>;
  summary: { verified: number; skipped: number; failed: number; interrupted: number };
}

const isUploadPut = (req: ProxyRequest) => req.method === 'PUT' && req.url.pathname.includes('/blobs/uploads/');

describe('a destination that stops answering mid-push', () => {
  const corpus = buildFaultCorpus();
  const images = Object.keys(corpus.tags).length;

  it.each(['push', 'sync'] as const)('%s: is said once, the run ends with its report and exit 3, and a re-run once it is back completes', async (command) => {
    const registry = await startRegistry();
    // The proxy only picks the moment: at the 4th blob upload the registry is SIGKILLed and the proxy goes with it,
    // so from regmigrate's side nothing listens on the destination's port any more (connect ECONNREFUSED).
    const proxy = await startProxy(registry.host);
    const port = Number(proxy.host.split(':')[1]);
    let uploads = 0;
    let killed: Promise<void> | undefined;
    proxy.script = (req) => {
      if (isUploadPut(req) && ++uploads === 4) {
        killed = Promise.all([proxy.stop(), registry.stop('SIGKILL')]).then(() => undefined);
        return { kind: 'drop' };
      }
      return { kind: 'forward' };
    };
    const report = path.join(tempDir(), 'report.json');
    // sync: with a journal, which keeps what was verified before the destination went away.
    const state = path.join(tempDir(), 'state.json');
    const args = (to: string): string[] => [command, corpus.root, '--to', to, '--report', report, ...(command === 'sync' ? ['--state', state] : [])];
    const first = await runCli(args(proxy.host));
    await killed;

    expect(first.exitCode, first.stderr).toBe(3);
    const lines = first.stderr.split('\n');
    // One line says what happened; no image repeats the connection error on a line of its own.
    const gone = lines.filter((l) => l.includes('stopped answering'));
    expect(gone, first.stderr).toHaveLength(1);
    expect(gone[0]).toMatch(new RegExp(`^regmigrate: the destination stopped answering: 127\\.0\\.0\\.1:${port}: connect ECONNREFUSED 127\\.0\\.0\\.1:${port} \\(\\d+ requests in a row over \\d+\\.\\d s got no answer\\); nothing more is sent`));
    expect(lines.filter((l) => /ECONNREFUSED|ECONNRESET|UND_ERR|other side closed|HEAD /.test(l)), first.stderr).toEqual(gone);
    // The report is written: what landed is verified, the rest interrupted, nothing failed for another reason.
    const doc = JSON.parse(readFileSync(report, 'utf8')) as Report;
    expect(doc.images).toHaveLength(images);
    const interrupted = doc.images.filter((i) => i.status === 'interrupted');
    expect(interrupted.length).toBeGreaterThan(0);
    expect(doc.images.filter((i) => i.status !== 'interrupted' && i.status !== 'verified')).toEqual([]);
    expect(doc.summary.verified + doc.summary.interrupted).toBe(images);

    // Back on the same port and storage (and the proxy where it was): the same command finishes the job.
    const again = await launchRegistry({ workDir: tempDir('regmigrate-back-'), root: registry.root, port: registry.port });
    atEnd(() => again.stop());
    const back = await startProxy(registry.host, port);
    const second = await runCli([...args(back.host), '--quiet']);
    expect(second.exitCode, second.stderr).toBe(0);
    const redo = JSON.parse(readFileSync(report, 'utf8')) as Report;
    expect(redo.summary.verified).toBeGreaterThan(0);
    expect(redo.summary.verified + redo.summary.skipped).toBe(images);
    for (const [ref, digest] of Object.entries(corpus.tags)) expect(await servedDigest(again.host, ref)).toBe(digest);
  });
});

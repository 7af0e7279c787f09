/** Progress and the summary count the same bytes: those of blob uploads that landed, not what a cut upload sent. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addImage, makeLayer, StorageBuilder } from '../../fixtures/builder.js';
import { runCli } from '../helpers/cli.js';
import { startProxy } from '../helpers/proxy.js';
import { startRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';

describe('bytes uploaded', () => {
  it('the last progress record, the run-finished record and the report agree, though a cut upload sent 1.5 MiB for nothing', async () => {
    const root = path.join(tempDir('regmigrate-bytes-'), 'registry');
    const b = new StorageBuilder(root);
    b.tag('big/app', '1', addImage(b, 'big/app', { format: 'oci', layers: [makeLayer('big', 'big\n', 3 * 1024 * 1024, 1)] }).digest);
    b.tag('small/app', '1', addImage(b, 'small/app', { format: 'oci', layers: [makeLayer('small', 'small\n', 300 * 1024)] }).digest);
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    // Every upload over 1.5 MiB is cut after 1.5 MiB went through: the big layer never lands.
    proxy.script = (req) => (req.method === 'PUT' && req.url.pathname.includes('/blobs/uploads/') && Number(req.headers['content-length'] ?? 0) > 1.5 * 1024 * 1024 ? { kind: 'drop', afterBytes: 1.5 * 1024 * 1024 } : { kind: 'forward' });
    const report = path.join(tempDir(), 'report.json');
    const result = await runCli(['push', root, '--to', proxy.host, '--report', report, '--retries', '2', '--log-format', 'json']);
    expect(result.exitCode, result.stderr).toBe(1);

    const records = result.stderr.trim().split('\n').map((l) => JSON.parse(l) as { event: string; bytes?: number; reason?: string });
    expect(records.find((r) => r.event === 'image-failed')?.reason).toMatch(/^upload-cut: /);
    const progress = records.filter((r) => r.event === 'progress');
    const finished = records.find((r) => r.event === 'run-finished')!;
    const summary = (JSON.parse(readFileSync(report, 'utf8')) as { summary: { bytesUploaded: number } }).summary;
    // What landed: the small image's layer and both configs, well under what went out.
    expect(summary.bytesUploaded).toBeGreaterThan(300 * 1024);
    expect(summary.bytesUploaded).toBeLessThan(1024 * 1024);
    expect(finished.bytes).toBe(summary.bytesUploaded);
    expect(progress.at(-1)?.bytes).toBe(summary.bytesUploaded);
  });
});

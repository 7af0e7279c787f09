/**
 * Shards that share, on the push corpus: 1, 2, 4 and 8 `--shard k/n` pushes started together into one fresh
 * docker-registry. Bytes sent are the reports' `bytesUploaded` summed over the shards, against the corpus's unique
 * blob bytes (what one process sends); wall time from the first start to the last exit, against one process.
 */
import { execa } from 'execa';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { launchRegistry } from '../fixtures/registry-process.js';
import { buildPushCorpus } from './push-corpus.js';
import { fmt, printTable } from './measure.js';

export async function benchShards(options: { bin: string; workDir: string; counts?: readonly number[] }): Promise<void> {
  const { bin, workDir } = options;
  const corpus = await buildPushCorpus(workDir);
  const { stdout } = await execa(bin, ['scan', corpus.root, '--output', 'json'], { maxBuffer: 1 << 30 });
  const doc = JSON.parse(stdout) as { tags: Array<{ blobs: Array<{ digest: string; size: number }> }> };
  const unique = new Map<string, number>();
  for (const t of doc.tags) for (const b of t.blobs) unique.set(b.digest, b.size);
  const total = [...unique.values()].reduce((a, b) => a + b, 0);

  const rows: string[][] = [];
  let one = 0;
  for (const n of options.counts ?? [1, 2, 4, 8]) {
    const dir = path.join(workDir, 'dest', `shared-shards-${n}`);
    rmSync(dir, { recursive: true, force: true });
    const registry = await launchRegistry({ workDir: dir });
    try {
      const reports = Array.from({ length: n }, (_, k) => path.join(dir, `shard-${k}.json`));
      const started = process.hrtime.bigint();
      const runs = await Promise.all(
        reports.map((report, k) => execa(bin, ['push', corpus.root, '--to', registry.host, ...(n > 1 ? ['--shard', `${k}/${n}`] : []), '--report', report, '--quiet'], { reject: false })),
      );
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      for (const run of runs) if (run.exitCode !== 0) throw new Error(`shard push failed: ${String(run.stderr)}`);
      let sent = 0;
      let verified = 0;
      for (const report of reports) {
        const summary = (JSON.parse(readFileSync(report, 'utf8')) as { summary: { bytesUploaded: number; verified: number } }).summary;
        sent += summary.bytesUploaded;
        verified += summary.verified;
      }
      if (n === 1) one = seconds;
      rows.push([String(n), `${(sent / 1048576).toFixed(0)} MiB`, (sent / total).toFixed(2), String(verified), fmt(seconds), one > 0 ? (seconds / one).toFixed(2) : '-']);
    } finally {
      await registry.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  printTable(
    `shards started together into one docker-registry (${(total / 1048576).toFixed(0)} MiB of unique blobs)`,
    ['shards', 'bytes sent', 'to unique', 'verified', 'seconds', 'to one process'],
    rows,
  );
}

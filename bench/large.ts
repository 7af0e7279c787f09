/**
 * Large-registry benchmark, on the push corpus: push from the tar backup against push from the
 * directory (and the extraction users do today), and 1, 2 and 4 shards in parallel into one registry (what they
 * send: bench/shards.ts).
 */
import { execa } from 'execa';
import { mkdirSync, rmSync, existsSync } from 'node:fs';
import path from 'node:path';
import { launchRegistry } from '../fixtures/registry-process.js';
import { buildPushCorpus } from './push-corpus.js';
import { fmt, measure, printTable } from './measure.js';

async function withRegistry<T>(workDir: string, name: string, job: (host: string) => Promise<T>): Promise<T> {
  const dir = path.join(workDir, 'dest', name);
  rmSync(dir, { recursive: true, force: true });
  const registry = await launchRegistry({ workDir: dir });
  try {
    return await job(registry.host);
  } finally {
    await registry.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchLarge(options: { bin: string; workDir: string }): Promise<void> {
  const { bin, workDir } = options;
  const corpus = await buildPushCorpus(workDir);
  const tar = path.join(workDir, 'push-corpus', 'docker.tar');
  if (!existsSync(tar)) await execa('tar', ['-cf', tar, '-C', corpus.root, 'docker']);
  rmSync(`${tar}.regmigrate-index`, { force: true });

  const rows: string[][] = [];
  const dirRun = await withRegistry(workDir, 'from-dir', (host) => measure(bin, ['push', corpus.root, '--to', host, '--quiet'], { stdoutFile: '/dev/null' }));
  rows.push(['push from the directory', fmt(dirRun.seconds), fmt(dirRun.peakMiB, 0), '1.00']);
  const tarRun = await withRegistry(workDir, 'from-tar', (host) => measure(bin, ['push', tar, '--to', host, '--quiet'], { stdoutFile: '/dev/null' }));
  if (tarRun.exitCode !== 0) throw new Error(`push from the tar exited ${tarRun.exitCode}: ${tarRun.stderr}`);
  rows.push(['push from the tar (index built in the run)', fmt(tarRun.seconds), fmt(tarRun.peakMiB, 0), (tarRun.seconds / dirRun.seconds).toFixed(2)]);
  const tarAgain = await withRegistry(workDir, 'from-tar-2', (host) => measure(bin, ['push', tar, '--to', host, '--quiet'], { stdoutFile: '/dev/null' }));
  rows.push(['push from the tar (index reused)', fmt(tarAgain.seconds), fmt(tarAgain.peakMiB, 0), (tarAgain.seconds / dirRun.seconds).toFixed(2)]);
  const extractDir = path.join(workDir, 'extracted');
  rmSync(extractDir, { recursive: true, force: true });
  mkdirSync(extractDir, { recursive: true });
  const extract = await measure('tar', ['-xf', tar, '-C', extractDir]);
  rmSync(extractDir, { recursive: true, force: true });
  rows.push(['extract the tar first (what users do today), before any push', fmt(extract.seconds), '-', '-']);
  printTable('tar source: the push corpus', ['run', 'seconds', 'peak MiB', 'ratio to directory'], rows);

  // Shards in parallel into one destination.
  const shardRows: string[][] = [];
  let one = 0;
  for (const n of [1, 2, 4]) {
    const seconds = await withRegistry(workDir, `shards-${n}`, async (host) => {
      const started = process.hrtime.bigint();
      const runs = await Promise.all(Array.from({ length: n }, (_, k) => execa(bin, ['push', corpus.root, '--to', host, '--shard', `${k}/${n}`, '--quiet'], { reject: false })));
      for (const run of runs) if (run.exitCode !== 0) throw new Error(`shard push failed: ${String(run.stderr)}`);
      return Number(process.hrtime.bigint() - started) / 1e9;
    });
    if (n === 1) one = seconds;
    shardRows.push([String(n), fmt(seconds), (one / seconds).toFixed(2)]);
  }
  printTable('shards in parallel into one docker-registry (2 cores shared with it)', ['shards', 'seconds', 'speed-up'], shardRows);
}

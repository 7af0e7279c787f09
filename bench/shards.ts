/**
 * `npm run bench -- shards`: the push corpus pushed by 1, 2, 4 and 8 shard processes in parallel (`--shard k/n`)
 * into one fresh docker-registry, behind a delay line at 0 ms (fixtures/delay-line.ts) that counts the bytes sent
 * to the registry. For each: wall time against one process, the blob bytes the shards' reports say they uploaded
 * and the bytes on the wire, each against what one process sends (every unique blob once).
 * $REGMIGRATE_BENCH_SHARDS sets the shard counts (default 2,4,8; one process always runs first).
 */
import { execa } from 'execa';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { withDestination } from './destination.js';
import { fmt, printTable } from './measure.js';
import { buildPushCorpus } from './push-corpus.js';

const MiB = 1024 * 1024;

export async function benchShards(options: { bin: string; workDir: string }): Promise<void> {
  const counts = [1, ...(process.env.REGMIGRATE_BENCH_SHARDS ?? '2,4,8').split(',').map(Number).filter((n) => n > 1)];
  const corpus = await buildPushCorpus(options.workDir);
  const started = Date.now();
  const rows: string[][] = [];
  const ratios: string[] = [];
  let one: { seconds: number; uploaded: number; wire: number } | undefined;
  for (const n of counts) {
    const result = await withDestination(options.workDir, `shards-${n}`, { rttMs: 0 }, async (d) => {
      const reports = Array.from({ length: n }, (_, k) => path.join(options.workDir, `shard-report-${k}-of-${n}.json`));
      const t0 = process.hrtime.bigint();
      const runs = await Promise.all(
        reports.map((report, k) => execa(options.bin, ['push', corpus.root, '--to', d.url, '--quiet', '--report', report, ...(n > 1 ? ['--shard', `${k}/${n}`] : [])], { reject: false })),
      );
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      for (const [k, run] of runs.entries()) if (run.exitCode !== 0) throw new Error(`shard ${k}/${n} exited ${run.exitCode}: ${String(run.stderr).slice(-2000)}`);
      let uploaded = 0;
      let verified = 0;
      for (const report of reports) {
        const summary = (JSON.parse(readFileSync(report, 'utf8')) as { summary: { bytesUploaded: number; verified: number } }).summary;
        uploaded += summary.bytesUploaded;
        verified += summary.verified;
        rmSync(report, { force: true });
      }
      if (verified !== corpus.tags.length) throw new Error(`${n} shards verified ${verified} of ${corpus.tags.length} tags`);
      return { seconds, uploaded, wire: d.line!.stats.bytesUp };
    });
    one ??= result;
    const byteRatio = result.uploaded / one.uploaded;
    rows.push([String(n), fmt(result.seconds), (result.seconds / one.seconds).toFixed(2), `${(result.uploaded / MiB).toFixed(0)} MiB`, byteRatio.toFixed(2), `${(result.wire / MiB).toFixed(0)} MiB`, (result.wire / one.wire).toFixed(2)]);
    if (n > 1) ratios.push(`${n} shards send ${(result.uploaded / MiB).toFixed(0)} MiB of blobs, target ≤ 1.10× the unique bytes: ${byteRatio.toFixed(2)}×`);
  }
  printTable(
    'shards: the push corpus by n processes in parallel into one docker-registry (bytes counted by the reports and at the line)',
    ['shards', 'seconds', '× one process', 'blob bytes uploaded', '× unique', 'bytes on the wire', '× one process'],
    rows,
  );
  process.stdout.write(`${ratios.join('\n')}\nshards section took ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
}

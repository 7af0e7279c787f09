/**
 * Scale benchmark: the metadata storage shape of the scan benchmark (10 tags a repository, each its own
 * manifest, config and small layer over one of 20 shared bases) at 10,000, 50,000 and 200,000 tags, generated once
 * and kept in the bench work dir. For each size: `scan --output json`, a sync into a mirror that holds everything
 * (every tag asked about: the no-op; without a journal, with it, and with it and --full-read), the same with
 * --trust-state, and a full push into a fresh docker-registry
 * (up to $REGMIGRATE_BENCH_PUSH_MAX tags, default 50,000), with time, peak memory and requests per tag; beside them
 * the destination's own ceiling for the no-op (every manifest GET once: the fastest of several readers, bench/ceiling.ts
 * readCeiling). Sizes: $REGMIGRATE_BENCH_SCALE_TAGS (default 10000,50000,200000).
 */
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { launchRegistry } from '../fixtures/registry-process.js';
import { readCeiling } from './ceiling.js';
import { buildMetadataStorage } from './metadata-storage.js';
import { fmt, measure, printTable, type Measurement } from './measure.js';

const TAGS_PER_REPO = 10;

export async function benchScale(options: { bin: string; project: string; workDir: string }): Promise<void> {
  const pushMax = Number(process.env.REGMIGRATE_BENCH_PUSH_MAX ?? 50_000);
  const sizes = (process.env.REGMIGRATE_BENCH_SCALE_TAGS ?? '10000,50000,200000').split(',').map((n) => Math.max(1, Math.round(Number(n) / TAGS_PER_REPO)));
  const noOpRatios: string[] = [];
  const rows: string[][] = [];
  const perTag: Array<{ command: string; tags: number; seconds: number }> = [];
  const row = (command: string, tags: number, m: Measurement, extra = '-'): void => {
    if (m.exitCode !== 0) throw new Error(`${command} at ${tags} tags exited ${m.exitCode}: ${m.stderr.slice(-2000)}`);
    rows.push([command, String(tags), fmt(m.seconds), fmt((m.seconds * 1e6) / tags, 0), fmt(m.peakMiB, 0), extra]);
    perTag.push({ command, tags, seconds: m.seconds });
  };
  for (const repositories of sizes) {
    const tags = repositories * TAGS_PER_REPO;
    const root = path.join(options.workDir, `scan-${repositories}x${TAGS_PER_REPO}`);
    process.stderr.write(`scale bench: ${tags} tags at ${root} ...\n`);
    const started = Date.now();
    const built = buildMetadataStorage(root, { repositories, tagsPerRepo: TAGS_PER_REPO });
    if (!built.reused) process.stderr.write(`scale bench: generated in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);

    row('scan --output json', tags, await measure(options.bin, ['scan', root, '--output', 'json'], { stdoutFile: '/dev/null' }));

    const mirror = await launchRegistry({ workDir: path.join(options.workDir, `scale-mirror-${tags}`), root, readonly: true });
    const state = path.join(options.workDir, `scale-state-${tags}.json`);
    rmSync(state, { force: true });
    try {
      const args = ['sync', root, '--to', mirror.host, '--state', state, '--quiet'];
      const noOp = async (extra: string[] = []): Promise<Measurement> => {
        const m = await measure(options.bin, [...args, ...extra]);
        if (!/0 pushed, \d+ unchanged, 0 failed/.test(m.stdout)) throw new Error(`the no-op sync was not a no-op: ${m.stdout}`);
        return m;
      };
      // The first sync (no journal: it lists every repository) also warms the registry's reads for what follows.
      const first = await noOp();
      const names: Array<[string, string]> = [];
      for (let r = 0; r < repositories; r++) for (let t = 0; t < TAGS_PER_REPO; t++) names.push([`project${r % 50}/service-${r}`, `v${t}`]);
      const ceiling = await readCeiling(options.project, mirror.host, names);
      const against = (m: Measurement): string => `${(m.seconds / ceiling.seconds).toFixed(2)}× the registry's ${fmt(ceiling.seconds)} s for one GET per tag (${ceiling.name})`;
      row('sync, no-op, first run (no journal)', tags, first, against(first));
      // The cron job's run: the journal of the last one names the repositories, so nothing is listed, and tags
      // whose links still name the digests it verified are asked about, not read.
      const cron = await noOp();
      row('sync, no-op, with its journal (asks about every tag, reads none)', tags, cron, against(cron));
      noOpRatios.push(`no-op sync of ${tags} tags with its journal, target ≤ 1.15× the registry's GET ceiling: ${(cron.seconds / ceiling.seconds).toFixed(2)}×`);
      const full = await noOp(['--full-read']);
      row('sync --full-read, no-op (asks about every tag, reads every image)', tags, full, against(full));
      row('sync --trust-state, no-op', tags, await measure(options.bin, [...args, '--trust-state']));
    } finally {
      await mirror.stop();
      rmSync(state, { force: true });
    }

    if (tags > pushMax) continue;
    const target = await launchRegistry({ workDir: path.join(options.workDir, `scale-push-${tags}`) });
    const report = path.join(options.workDir, `scale-push-${tags}.json`);
    try {
      const push = await measure(options.bin, ['push', root, '--to', target.host, '--quiet', '--report', report], { stdoutFile: '/dev/null' });
      const doc = JSON.parse(readFileSync(report, 'utf8')) as { summary: { verified: number; requests: number } };
      if (doc.summary.verified !== tags) throw new Error(`push verified ${doc.summary.verified} of ${tags} tags`);
      const requestsPerTag = doc.summary.requests / tags;
      row('push into a fresh registry', tags, push, `${requestsPerTag.toFixed(2)} requests per tag`);
    } finally {
      await target.stop();
      rmSync(path.join(options.workDir, `scale-push-${tags}`), { recursive: true, force: true });
      rmSync(report, { force: true });
    }
  }
  printTable('scale: 10 tags a repository, each its own manifest, config and layer', ['command', 'tags', 'seconds', 'µs per tag', 'peak MiB', 'note'], rows);
  // Linear in tags: the time per tag at the largest size against the smallest.
  const lines: string[] = [];
  for (const command of new Set(perTag.map((p) => p.command))) {
    const runs = perTag.filter((p) => p.command === command);
    const first = runs[0]!;
    const last = runs.at(-1)!;
    if (runs.length > 1) lines.push(`${command}: time per tag at ${last.tags} tags is ${(last.seconds / last.tags / (first.seconds / first.tags)).toFixed(2)}× that at ${first.tags}`);
  }
  process.stdout.write(`${[...lines, ...noOpRatios].join('\n')}\ntargets: peak ≤ 300 MiB at 50,000 tags (scan, push, sync) and ≤ 400 MiB at 200,000; time per tag flat (≈ 1.00×)\n`);
}

/**
 * `npm run bench -- noop`: the cron job's sync, against the least it must do. The metadata storage of the scan
 * benchmark at $REGMIGRATE_BENCH_NOOP_TAGS tags (default 50,000), served read-only by a docker-registry (a
 * destination that holds it all); one sync writes the journal and warms the registry's reads, then
 * $REGMIGRATE_BENCH_NOOP_ROUNDS rounds (default 3) each run the ceiling (bench/get-ceiling.ts: a plain script that
 * GETs every tag's manifest once, its own process, at 16, 32 and 64 in flight: regmigrate starts at 16 and grows
 * while requests wait; the fastest counts) and the no-op `sync --state` (asks about every tag, reads none), so both
 * are warm and under the same load. The ratio compares medians: the sync's whole process (start-up, journal, walk)
 * against the ceiling's GETs alone.
 */
import { execa } from 'execa';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { launchRegistry } from '../fixtures/registry-process.js';
import { CEILING_IN_FLIGHT, runGetCeiling } from './ceiling.js';
import { buildMetadataStorage } from './metadata-storage.js';
import { fmt, measure, median, printTable } from './measure.js';

const TAGS_PER_REPO = 10;

export async function benchNoop(options: { bin: string; project: string; workDir: string }): Promise<void> {
  const repositories = Math.max(1, Math.round(Number(process.env.REGMIGRATE_BENCH_NOOP_TAGS ?? 50_000) / TAGS_PER_REPO));
  const rounds = Math.max(1, Number(process.env.REGMIGRATE_BENCH_NOOP_ROUNDS ?? 3));
  const tags = repositories * TAGS_PER_REPO;
  const root = path.join(options.workDir, `scan-${repositories}x${TAGS_PER_REPO}`);
  process.stderr.write(`noop bench: ${tags} tags at ${root} ...\n`);
  buildMetadataStorage(root, { repositories, tagsPerRepo: TAGS_PER_REPO });
  const names: string[] = [];
  for (let r = 0; r < repositories; r++) for (let t = 0; t < TAGS_PER_REPO; t++) names.push(`project${r % 50}/service-${r} v${t}`);
  const input = names.join('\n');

  const mirror = await launchRegistry({ workDir: path.join(options.workDir, `noop-mirror-${tags}`), root, readonly: true });
  const state = path.join(options.workDir, `noop-state-${tags}.json`);
  rmSync(state, { force: true });
  const rows: string[][] = [];
  const syncs: number[] = [];
  const ceilings: number[] = [];
  try {
    const sync = async (what: string): Promise<number> => {
      const m = await measure(options.bin, ['sync', root, '--to', mirror.host, '--state', state, '--quiet']);
      if (m.exitCode !== 0 || !/0 pushed, \d+ unchanged, 0 failed/.test(m.stdout)) throw new Error(`the no-op sync was not a no-op (exit ${m.exitCode}): ${m.stdout} ${m.stderr.slice(-2000)}`);
      rows.push([what, fmt(m.seconds), fmt(m.cpuSeconds), fmt((m.seconds * 1e6) / tags, 0), fmt(m.peakMiB, 0)]);
      return m.seconds;
    };
    await sync('regmigrate sync, first run (writes the journal, warms the registry)');
    for (let round = 1; round <= rounds; round++) {
      let best = Infinity;
      for (const inFlight of CEILING_IN_FLIGHT) {
        const c = await runGetCeiling(options.project, mirror.host, input, inFlight);
        rows.push([`round ${round}: GET ceiling, ${inFlight} in flight (GETs alone; whole process ${fmt(c.wall)} s)`, fmt(c.seconds), fmt(c.cpuSeconds), fmt((c.seconds * 1e6) / tags, 0), fmt(c.peakMiB, 0)]);
        best = Math.min(best, c.seconds);
      }
      ceilings.push(best);
      syncs.push(await sync(`round ${round}: regmigrate sync --state, no-op (asks about every tag, reads none)`));
    }
  } finally {
    await mirror.stop();
    rmSync(state, { force: true });
  }
  const load = (await execa('uptime')).stdout.replace(/.*load average: /, '');
  printTable(`noop: sync of ${tags} tags into a registry that holds them all, beside a plain script's GET of every manifest`, ['run', 'seconds', 'CPU s', 'µs per tag', 'peak MiB'], rows);
  const [s, c] = [median(syncs), median(ceilings)];
  process.stdout.write(`no-op sync of ${tags} tags with its journal / the fastest GET ceiling, medians of ${rounds} rounds, target ≤ 1.15: ${(s / c).toFixed(2)}× (${fmt(s)} s against ${fmt(c)} s; load average at the end ${load})\n`);
}

/**
 * `npm run bench -- wan`: pushes across a round trip, through the delay line (fixtures/delay-line.ts) in front of
 * a fresh docker-registry, at each of $REGMIGRATE_BENCH_WAN_RTTS ms (default 0,25,50,100), beside the same runs
 * on plain loopback (no line):
 * - the scale bench's metadata storage (bench/metadata-storage.ts: 10 tags a repository, each its own manifest,
 *   config and small layer) at $REGMIGRATE_BENCH_WAN_TAGS tags (default 2,000), pushed, then pushed again (the no-op);
 * - the push corpus (bench/push-corpus.ts), pushed, and the ceiling through the same line: the faster of the two
 *   reference uploaders (bench/upload-node.ts, bench/upload-python.py) with 32 connections;
 * - the push corpus over HTTPS (a self-signed certificate, `--ca-file`) on loopback and at
 *   $REGMIGRATE_BENCH_WAN_TLS_RTT ms (default 50), with CPU per GiB of regmigrate and of the ceiling.
 */
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { measureCeiling, type ReferenceUpload } from './ceiling.js';
import { makeCertificate, withDestination, type Certificate } from './destination.js';
import { fmt, measure, printTable, type Measurement } from './measure.js';
import { buildMetadataStorage } from './metadata-storage.js';
import { buildPushCorpus } from './push-corpus.js';

const GiB = 1024 ** 3;
const TAGS_PER_REPO = 10;
const CEILING_CONNECTIONS = 32;

interface PushRun {
  readonly m: Measurement;
  readonly verified: number;
}

interface Options {
  readonly bin: string;
  readonly project: string;
  readonly workDir: string;
}

/** `regmigrate push` of `root` into `url`; fails the bench unless every one of `tags` tags is verified. */
async function push(options: Options, root: string, url: string, tags: number, what: string, extra: string[] = []): Promise<PushRun> {
  const report = path.join(options.workDir, 'wan-push-report.json');
  rmSync(report, { force: true });
  const m = await measure(options.bin, ['push', root, '--to', url, '--quiet', '--report', report, ...extra], { stdoutFile: '/dev/null' });
  if (m.exitCode !== 0) throw new Error(`${what}: regmigrate push exited ${m.exitCode}: ${m.stderr.slice(-2000)}`);
  const verified = (JSON.parse(readFileSync(report, 'utf8')) as { summary: { verified: number; skipped?: number } }).summary;
  const count = verified.verified + (verified.skipped ?? 0);
  if (count !== tags) throw new Error(`${what}: ${count} of ${tags} tags verified or unchanged`);
  return { m, verified: count };
}

export async function benchWan(options: Options): Promise<void> {
  const rtts = (process.env.REGMIGRATE_BENCH_WAN_RTTS ?? '0,25,50,100').split(',').map(Number);
  const tags = Number(process.env.REGMIGRATE_BENCH_WAN_TAGS ?? 2000);
  const tlsRtt = Number(process.env.REGMIGRATE_BENCH_WAN_TLS_RTT ?? 50);
  const repositories = Math.max(1, Math.round(tags / TAGS_PER_REPO));
  const metaRoot = path.join(options.workDir, `scan-${repositories}x${TAGS_PER_REPO}`);
  buildMetadataStorage(metaRoot, { repositories, tagsPerRepo: TAGS_PER_REPO });
  const metaTags = repositories * TAGS_PER_REPO;
  const corpus = await buildPushCorpus(options.workDir);

  const rows: string[][] = [];
  const figures = new Map<string, number>();
  const started = Date.now();

  // One round trip setting (undefined: plain loopback, no line): the tags push and its no-op, the corpus and its ceiling.
  async function measureAt(rtt: number | undefined, tls?: Certificate): Promise<{ corpus: PushRun; ceiling: ReferenceUpload }> {
    const where = rtt === undefined ? 'loopback' : `${rtt} ms`;
    const label = `${where}${tls ? ', HTTPS' : ''}`;
    const line = rtt === undefined ? {} : { rttMs: rtt };
    const tlsOptions = tls ? { tls } : {};
    const caArgs = tls ? ['--ca-file', tls.certificate] : [];
    process.stderr.write(`wan bench: ${label} ...\n`);
    if (!tls) {
      await withDestination(options.workDir, 'wan-tags', line, async (d) => {
        const first = await push(options, metaRoot, d.url, metaTags, `${metaTags} tags at ${label}`);
        const again = await push(options, metaRoot, d.url, metaTags, `no-op at ${label}`);
        figures.set(`tags ${where}`, first.m.seconds);
        figures.set(`noop ${where}`, again.m.seconds);
        const base = figures.get('tags loopback');
        const baseNoop = figures.get('noop loopback');
        rows.push([label, `push ${metaTags} tags`, fmt(first.m.seconds), base ? (first.m.seconds / base).toFixed(2) : '1.00', '-', `${fmt(first.m.cpuSeconds)} s CPU`]);
        rows.push([label, `no-op push ${metaTags} tags`, fmt(again.m.seconds), baseNoop ? (again.m.seconds / baseNoop).toFixed(2) : '1.00', '-', `${fmt(again.m.cpuSeconds)} s CPU`]);
      });
    }
    const { ceiling } = await measureCeiling({ project: options.project, root: corpus.root, connections: CEILING_CONNECTIONS, ...(tls ? { caFile: tls.certificate } : {}) }, (name, job) =>
      withDestination(options.workDir, `wan-${name}`, { ...line, ...tlsOptions }, (d) => job(d.url)),
    );
    const run = await withDestination(options.workDir, 'wan-corpus', { ...line, ...tlsOptions }, (d) => push(options, corpus.root, d.url, corpus.tags.length, `corpus at ${label}`, caArgs));
    const key = `corpus ${where}${tls ? ' tls' : ''}`;
    figures.set(key, run.m.seconds);
    figures.set(`${key} ceiling`, ceiling.seconds);
    const base = figures.get(`corpus loopback${tls ? ' tls' : ''}`);
    const gib = ceiling.bytes / GiB;
    const cpu = `${fmt(run.m.cpuSeconds)} s CPU = ${fmt(run.m.cpuSeconds === undefined ? undefined : run.m.cpuSeconds / gib)} s/GiB (ceiling ${fmt(ceiling.cpuSeconds === undefined ? undefined : ceiling.cpuSeconds / gib)} s/GiB)`;
    rows.push([label, 'push the bench corpus', fmt(run.m.seconds), base ? (run.m.seconds / base).toFixed(2) : '1.00', (run.m.seconds / ceiling.seconds).toFixed(2), cpu]);
    rows.push([label, `ceiling (${ceiling.name})`, fmt(ceiling.seconds), '-', '1.00', `${fmt(ceiling.cpuSeconds)} s CPU`]);
    return { corpus: run, ceiling };
  }

  await measureAt(undefined);
  for (const rtt of rtts) await measureAt(rtt);
  const certificate = await makeCertificate(path.join(options.workDir, 'tls'));
  await measureAt(undefined, certificate);
  await measureAt(tlsRtt, certificate);

  printTable(
    `wan: through a delay line (each chunk released a fixed delay after it arrived, no bandwidth cut); ${metaTags} tags of the metadata storage, the ${corpus.tags.length}-tag bench corpus`,
    ['round trip', 'run', 'seconds', '× loopback', '× ceiling (same line)', 'note'],
    rows,
  );
  const ratio = (a: string, b: string): string => {
    const x = figures.get(a);
    const y = figures.get(b);
    return x === undefined || y === undefined ? 'not measured' : `${(x / y).toFixed(2)}×`;
  };
  process.stdout.write(
    [
      `${metaTags}-tag push at 50 ms RTT, target ≤ 1.25× loopback: ${ratio('tags 50 ms', 'tags loopback')}`,
      `${metaTags}-tag push at 100 ms RTT, target ≤ 1.5× loopback: ${ratio('tags 100 ms', 'tags loopback')}`,
      `bench corpus at 50 ms RTT, target ≤ 1.25× the ceiling through the same line (${CEILING_CONNECTIONS} connections): ${ratio('corpus 50 ms', 'corpus 50 ms ceiling')}`,
      `bench corpus over HTTPS at ${tlsRtt} ms RTT against the HTTPS ceiling: ${ratio(`corpus ${tlsRtt} ms tls`, `corpus ${tlsRtt} ms tls ceiling`)}`,
      `the line's own cost at 0 ms (through it / loopback): tags ${ratio('tags 0 ms', 'tags loopback')}, corpus ${ratio('corpus 0 ms', 'corpus loopback')}`,
      `wan section took ${((Date.now() - started) / 1000).toFixed(0)} s`,
    ].join('\n') + '\n',
  );
}

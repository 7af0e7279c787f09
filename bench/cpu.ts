/**
 * `npm run bench -- cpu`: what a push costs the client's CPU, whole process (user + system from GNU time: start-up
 * and planning count), each run into a fresh docker-registry on loopback, over HTTP and over HTTPS, each beside a
 * reference measured the same way in the same run:
 * - $REGMIGRATE_BENCH_CPU_TAGS small tags (default 1,000; the metadata storage of bench/metadata-storage.ts), as ms
 *   per tag, beside the minimal undici client sending the same requests (bench/push-undici.ts, 16 connections);
 * - the push corpus (bench/push-corpus.ts), as s per GiB of its blobs, beside the node:http reference uploader
 *   (bench/upload-node.ts, every blob once, 8 connections: regmigrate's default);
 * - one image with one layer of $REGMIGRATE_BENCH_BIG_MIB MiB (default 2048; bench/push.ts builds it, kept in
 *   the work dir), as s per GiB, beside the Python reference uploader on the same file (bench/upload-python.py) and
 *   the node:http one.
 * Each reference is its own process, so its CPU is its own. The page cache is warmed by reading every file first.
 * regmigrate and its references run in $REGMIGRATE_BENCH_CPU_ROUNDS alternating rounds (default 3) and the medians
 * count. $REGMIGRATE_BENCH_CPU_SCHEMES picks the schemes (default `http,https`).
 */
import { execa } from 'execa';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runMinimalClient, runReferenceUploader, type ReferenceUpload } from './ceiling.js';
import { makeCertificate, withDestination, type Certificate } from './destination.js';
import { fmt, measure, median, printTable } from './measure.js';
import { buildMetadataStorage } from './metadata-storage.js';
import { buildBigLayerStorage } from './push.js';
import { buildPushCorpus } from './push-corpus.js';

const GiB = 1024 ** 3;

async function warm(root: string): Promise<number> {
  const { stdout } = await execa('bash', ['-c', `find "${root}/docker/registry/v2/blobs" -name data -type f -exec cat {} + > /dev/null; du -sb "${root}/docker/registry/v2/blobs" | cut -f1`]);
  return Number(stdout.trim());
}

export async function benchCpu(options: { bin: string; project: string; workDir: string }): Promise<void> {
  const project = options.project;
  const tagsWanted = Number(process.env.REGMIGRATE_BENCH_CPU_TAGS ?? 1000);
  const bigMiB = Number(process.env.REGMIGRATE_BENCH_BIG_MIB ?? 2048);
  const repositories = Math.max(1, Math.round(tagsWanted / 10));
  const tags = repositories * 10;
  const metaRoot = path.join(options.workDir, `scan-${repositories}x10`);
  buildMetadataStorage(metaRoot, { repositories, tagsPerRepo: 10 });
  const corpus = await buildPushCorpus(options.workDir);
  const bigRoot = path.join(options.workDir, `cpu-big-layer-${bigMiB}`);
  const bigMarker = path.join(bigRoot, '.complete');
  if (!existsSync(bigMarker)) {
    process.stderr.write(`cpu bench: writing a storage with one ${bigMiB} MiB layer ...\n`);
    await buildBigLayerStorage(bigRoot, bigMiB * 1024 * 1024);
    writeFileSync(bigMarker, '');
  }
  const certificate = await makeCertificate(path.join(options.workDir, 'tls'));
  const rounds = Math.max(1, Number(process.env.REGMIGRATE_BENCH_CPU_ROUNDS ?? 3));
  const started = Date.now();
  const rows: string[][] = [];
  /** `what scheme` → [regmigrate, its reference], per unit: the medians of the rounds. */
  const figures = new Map<string, [number, number]>();

  interface Run {
    readonly name: string;
    readonly seconds: number;
    readonly cpu: number;
    readonly requests: number;
  }
  const push = async (root: string, expected: number, tls: Certificate | undefined, what: string): Promise<Run> => {
    const report = path.join(options.workDir, 'cpu-push-report.json');
    const m = await withDestination(options.workDir, 'cpu', tls ? { tls } : {}, (d) =>
      measure(options.bin, ['push', root, '--to', d.url, '--quiet', '--report', report, ...(tls ? ['--ca-file', tls.certificate] : [])], { stdoutFile: '/dev/null' }),
    );
    if (m.exitCode !== 0) throw new Error(`${what}: regmigrate push exited ${m.exitCode}: ${m.stderr.slice(-2000)}`);
    const summary = (JSON.parse(readFileSync(report, 'utf8')) as { summary: { verified: number; requests: number } }).summary;
    if (summary.verified !== expected) throw new Error(`${what}: ${summary.verified} of ${expected} tags verified`);
    if (m.cpuSeconds === undefined) throw new Error('the cpu bench needs GNU time at /usr/bin/time');
    return { name: 'regmigrate push', seconds: m.seconds, cpu: m.cpuSeconds, requests: summary.requests };
  };
  const reference = async (tls: Certificate | undefined, run: (url: string, caFile: string | undefined) => Promise<ReferenceUpload>): Promise<Run> => {
    const r = await withDestination(options.workDir, 'cpu-reference', tls ? { tls } : {}, (d) => run(d.url, tls?.certificate));
    if (r.cpuSeconds === undefined) throw new Error('the cpu bench needs GNU time at /usr/bin/time');
    return { name: r.name, seconds: r.seconds, cpu: r.cpuSeconds, requests: r.requests };
  };
  /**
   * regmigrate and its references in alternating rounds (one run of each per round, each into a fresh registry):
   * the CPU of one run moved by a fifth between runs here, with the registry sharing the cores. A row per program
   * with the median seconds and CPU of its rounds; returns the median CPU of each, regmigrate first.
   */
  const alternate = async (what: string, per: (cpu: number) => string, runs: Array<() => Promise<Run>>): Promise<number[]> => {
    const results: Run[][] = runs.map(() => []);
    for (let round = 0; round < rounds; round++) for (const [i, run] of runs.entries()) results[i]!.push(await run());
    return results.map((list) => {
      const cpu = median(list.map((r) => r.cpu));
      rows.push([`${what}: ${list[0]!.name}`, fmt(median(list.map((r) => r.seconds))), fmt(cpu), `${list.map((r) => fmt(r.cpu)).join(' ')}`, per(cpu), `${list[0]!.requests} requests`]);
      return cpu;
    });
  };
  const ca = (caFile: string | undefined) => (caFile ? { caFile } : {});

  await warm(metaRoot);
  const corpusBytes = await warm(corpus.root);
  const bigBytes = await warm(bigRoot);
  const schemes = (process.env.REGMIGRATE_BENCH_CPU_SCHEMES ?? 'http,https').split(',');
  for (const tls of [...(schemes.includes('http') ? [undefined] : []), ...(schemes.includes('https') ? [certificate] : [])]) {
    const scheme = tls ? 'HTTPS' : 'HTTP';
    const perTag = (cpu: number): number => (cpu * 1000) / tags;
    const perGiB = (bytes: number) => (cpu: number): number => cpu / (bytes / GiB);

    const [oursTag, minimal] = await alternate(`${tags} small tags, ${scheme}`, (cpu) => `${fmt(perTag(cpu))} ms per tag`, [
      () => push(metaRoot, tags, tls, 'small tags'),
      () => reference(tls, (url, caFile) => runMinimalClient({ project, root: metaRoot, url, connections: 16, ...ca(caFile) })),
    ]);
    figures.set(`tag ${scheme}`, [perTag(oursTag!), perTag(minimal!)]);

    const corpusPerGiB = perGiB(corpusBytes);
    const [oursCorpus, uploader] = await alternate(`the push corpus, ${scheme}`, (cpu) => `${fmt(corpusPerGiB(cpu))} s/GiB`, [
      () => push(corpus.root, corpus.tags.length, tls, 'the push corpus'),
      () => reference(tls, (url, caFile) => runReferenceUploader('node', { project, root: corpus.root, url, connections: 8, ...ca(caFile) })),
    ]);
    figures.set(`corpus ${scheme}`, [corpusPerGiB(oursCorpus!), corpusPerGiB(uploader!)]);

    // The same layer through node:http (reused buffers, no sendfile): what a Node client that copies the bytes
    // through user space costs here, beside the Python uploader's sendfile (HTTP) that no Node socket can use.
    const bigPerGiB = perGiB(bigBytes);
    const [oursBig, python, nodeBig] = await alternate(`one ${bigMiB} MiB layer, ${scheme}`, (cpu) => `${fmt(bigPerGiB(cpu))} s/GiB`, [
      () => push(bigRoot, 1, tls, 'one layer'),
      () => reference(tls, (url, caFile) => runReferenceUploader('python', { project, root: bigRoot, url, connections: 1, ...ca(caFile) })),
      () => reference(tls, (url, caFile) => runReferenceUploader('node', { project, root: bigRoot, url, connections: 1, ...ca(caFile) })),
    ]);
    figures.set(`big ${scheme}`, [bigPerGiB(oursBig!), bigPerGiB(python!)]);
    figures.set(`big node ${scheme}`, [bigPerGiB(oursBig!), bigPerGiB(nodeBig!)]);
  }
  rmSync(path.join(options.workDir, 'cpu-push-report.json'), { force: true });

  printTable(`cpu: client CPU of the whole process (user + system), page cache warm, into a local docker-registry; medians of ${rounds} alternating rounds`, ['run', 'seconds', 'CPU s', 'CPU s of each round', 'CPU per unit', 'requests'], rows);
  const ratio = (key: string, unit: string): string => {
    const pair = figures.get(key);
    return pair ? `${(pair[0] / pair[1]).toFixed(2)}× (${fmt(pair[0])} against ${fmt(pair[1])} ${unit})` : 'not run';
  };
  const big = (scheme: string, i: 0 | 1): string => fmt(figures.get(`big ${scheme}`)?.[i]);
  const load = (await execa('uptime')).stdout.replace(/.*load average: /, '');
  process.stdout.write(
    [
      `client CPU per tag on ${tags} small tags, regmigrate / the minimal undici client, target ≤ 1.25: HTTP ${ratio('tag HTTP', 'ms')}; HTTPS ${ratio('tag HTTPS', 'ms')}`,
      `client CPU per GiB on the push corpus, regmigrate / the node:http reference uploader, target ≤ 1.25: HTTP ${ratio('corpus HTTP', 's/GiB')}; HTTPS ${ratio('corpus HTTPS', 's/GiB')}`,
      `client CPU on one ${bigMiB} MiB layer, target ≤ 1.0 s/GiB: HTTP ${big('HTTP', 0)} s/GiB; HTTPS ${big('HTTPS', 0)} s/GiB (the Python uploader: ${big('HTTP', 1)} and ${big('HTTPS', 1)}; regmigrate / the node:http uploader: HTTP ${ratio('big node HTTP', 's/GiB')}; HTTPS ${ratio('big node HTTPS', 's/GiB')})`,
      `cpu section took ${((Date.now() - started) / 1000).toFixed(0)} s; load average at the end ${load}`,
    ].join('\n') + '\n',
  );
}

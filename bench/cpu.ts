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
 * $REGMIGRATE_BENCH_CPU_SCHEMES picks the schemes (default `http,https`).
 */
import { execa } from 'execa';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runMinimalClient, runReferenceUploader, type ReferenceUpload } from './ceiling.js';
import { makeCertificate, withDestination, type Certificate } from './destination.js';
import { fmt, measure, printTable } from './measure.js';
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
  const started = Date.now();
  const rows: string[][] = [];
  /** `what scheme` → [regmigrate, its reference], per unit. */
  const figures = new Map<string, [number, number]>();

  const push = async (root: string, expected: number, tls: Certificate | undefined, what: string): Promise<{ cpu: number; requests: number }> => {
    const report = path.join(options.workDir, 'cpu-push-report.json');
    const m = await withDestination(options.workDir, 'cpu', tls ? { tls } : {}, (d) =>
      measure(options.bin, ['push', root, '--to', d.url, '--quiet', '--report', report, ...(tls ? ['--ca-file', tls.certificate] : [])], { stdoutFile: '/dev/null' }),
    );
    if (m.exitCode !== 0) throw new Error(`${what}: regmigrate push exited ${m.exitCode}: ${m.stderr.slice(-2000)}`);
    const summary = (JSON.parse(readFileSync(report, 'utf8')) as { summary: { verified: number; requests: number } }).summary;
    if (summary.verified !== expected) throw new Error(`${what}: ${summary.verified} of ${expected} tags verified`);
    if (m.cpuSeconds === undefined) throw new Error('the cpu bench needs GNU time at /usr/bin/time');
    rows.push([`${what}: regmigrate push`, fmt(m.seconds), fmt(m.cpuSeconds)]);
    return { cpu: m.cpuSeconds, requests: summary.requests };
  };
  const reference = async (tls: Certificate | undefined, what: string, run: (url: string, caFile: string | undefined) => Promise<ReferenceUpload>): Promise<ReferenceUpload> => {
    const r = await withDestination(options.workDir, 'cpu-reference', tls ? { tls } : {}, (d) => run(d.url, tls?.certificate));
    if (r.cpuSeconds === undefined) throw new Error('the cpu bench needs GNU time at /usr/bin/time');
    rows.push([`${what}: ${r.name}`, fmt(r.seconds), fmt(r.cpuSeconds)]);
    return r;
  };
  const ca = (caFile: string | undefined) => (caFile ? { caFile } : {});

  await warm(metaRoot);
  const corpusBytes = await warm(corpus.root);
  const bigBytes = await warm(bigRoot);
  const schemes = (process.env.REGMIGRATE_BENCH_CPU_SCHEMES ?? 'http,https').split(',');
  for (const tls of [...(schemes.includes('http') ? [undefined] : []), ...(schemes.includes('https') ? [certificate] : [])]) {
    const scheme = tls ? 'HTTPS' : 'HTTP';
    const perTag = (cpu: number): number => (cpu * 1000) / tags;
    const perGiB = (cpu: number, bytes: number): number => cpu / (bytes / GiB);

    const tagsWhat = `${tags} small tags, ${scheme}`;
    const ours = await push(metaRoot, tags, tls, tagsWhat);
    rows.at(-1)!.push(`${fmt(perTag(ours.cpu))} ms per tag`, `${ours.requests} requests`);
    const minimal = await reference(tls, tagsWhat, (url, caFile) => runMinimalClient({ project, root: metaRoot, url, connections: 16, ...ca(caFile) }));
    rows.at(-1)!.push(`${fmt(perTag(minimal.cpuSeconds!))} ms per tag`, `${minimal.requests} requests`);
    figures.set(`tag ${scheme}`, [perTag(ours.cpu), perTag(minimal.cpuSeconds!)]);

    const corpusWhat = `the push corpus, ${scheme}`;
    const corpusOurs = await push(corpus.root, corpus.tags.length, tls, corpusWhat);
    rows.at(-1)!.push(`${fmt(perGiB(corpusOurs.cpu, corpusBytes))} s/GiB`, `${corpusOurs.requests} requests`);
    const uploader = await reference(tls, corpusWhat, (url, caFile) => runReferenceUploader('node', { project, root: corpus.root, url, connections: 8, ...ca(caFile) }));
    rows.at(-1)!.push(`${fmt(perGiB(uploader.cpuSeconds!, corpusBytes))} s/GiB`, `${uploader.requests} requests`);
    figures.set(`corpus ${scheme}`, [perGiB(corpusOurs.cpu, corpusBytes), perGiB(uploader.cpuSeconds!, corpusBytes)]);

    const bigWhat = `one ${bigMiB} MiB layer, ${scheme}`;
    const big = await push(bigRoot, 1, tls, bigWhat);
    rows.at(-1)!.push(`${fmt(perGiB(big.cpu, bigBytes))} s/GiB`, `${big.requests} requests`);
    const python = await reference(tls, bigWhat, (url, caFile) => runReferenceUploader('python', { project, root: bigRoot, url, connections: 1, ...ca(caFile) }));
    rows.at(-1)!.push(`${fmt(perGiB(python.cpuSeconds!, bigBytes))} s/GiB`, `${python.requests} requests`);
    figures.set(`big ${scheme}`, [perGiB(big.cpu, bigBytes), perGiB(python.cpuSeconds!, bigBytes)]);
    // The same layer through node:http (reused buffers, no sendfile): what a Node client that copies the bytes
    // through user space costs here, beside the Python uploader's sendfile (HTTP) that no Node socket can use.
    const nodeBig = await reference(tls, bigWhat, (url, caFile) => runReferenceUploader('node', { project, root: bigRoot, url, connections: 1, ...ca(caFile) }));
    rows.at(-1)!.push(`${fmt(perGiB(nodeBig.cpuSeconds!, bigBytes))} s/GiB`, `${nodeBig.requests} requests`);
    figures.set(`big node ${scheme}`, [perGiB(big.cpu, bigBytes), perGiB(nodeBig.cpuSeconds!, bigBytes)]);
  }
  rmSync(path.join(options.workDir, 'cpu-push-report.json'), { force: true });

  printTable('cpu: client CPU of the whole process (user + system), page cache warm, into a local docker-registry', ['run', 'seconds', 'CPU s', 'CPU per unit', 'requests'], rows);
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

/**
 * `npm run bench -- cpu`: what a push costs the client's CPU, whole process (user + system from GNU time: start-up
 * and planning count), each run into a fresh docker-registry on loopback, over HTTP and over HTTPS:
 * - $REGMIGRATE_BENCH_CPU_TAGS small tags (default 1,000; the metadata storage of bench/metadata-storage.ts), as ms per tag;
 * - the push corpus (bench/push-corpus.ts), as s per GiB of its blobs;
 * - one image with one layer of $REGMIGRATE_BENCH_BIG_MIB MiB (default 2048; bench/push.ts builds it, kept in
 *   the work dir), as s per GiB, beside the Python reference uploader on the same file (bench/upload-python.py).
 * The page cache is warmed by reading every file first.
 */
import { execa } from 'execa';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runReferenceUploader } from './ceiling.js';
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
  const figures = new Map<string, number>();

  const push = async (root: string, expected: number, tls: Certificate | undefined, what: string): Promise<number> => {
    const report = path.join(options.workDir, 'cpu-push-report.json');
    const m = await withDestination(options.workDir, 'cpu', tls ? { tls } : {}, (d) =>
      measure(options.bin, ['push', root, '--to', d.url, '--quiet', '--report', report, ...(tls ? ['--ca-file', tls.certificate] : [])], { stdoutFile: '/dev/null' }),
    );
    if (m.exitCode !== 0) throw new Error(`${what}: regmigrate push exited ${m.exitCode}: ${m.stderr.slice(-2000)}`);
    const verified = (JSON.parse(readFileSync(report, 'utf8')) as { summary: { verified: number } }).summary.verified;
    if (verified !== expected) throw new Error(`${what}: ${verified} of ${expected} tags verified`);
    if (m.cpuSeconds === undefined) throw new Error('the cpu bench needs GNU time at /usr/bin/time');
    rows.push([what, fmt(m.seconds), fmt(m.cpuSeconds)]);
    return m.cpuSeconds;
  };

  await warm(metaRoot);
  const corpusBytes = await warm(corpus.root);
  const bigBytes = await warm(bigRoot);
  for (const tls of [undefined, certificate]) {
    const scheme = tls ? 'HTTPS' : 'HTTP';
    const tagCpu = await push(metaRoot, tags, tls, `${tags} small tags, ${scheme}`);
    rows.at(-1)!.push(`${fmt((tagCpu * 1000) / tags)} ms per tag`);
    figures.set(`tag ${scheme}`, (tagCpu * 1000) / tags);
    const corpusCpu = await push(corpus.root, corpus.tags.length, tls, `the bench corpus, ${scheme}`);
    rows.at(-1)!.push(`${fmt(corpusCpu / (corpusBytes / GiB))} s/GiB`);
    figures.set(`corpus ${scheme}`, corpusCpu / (corpusBytes / GiB));
    const bigCpu = await push(bigRoot, 1, tls, `one ${bigMiB} MiB layer, ${scheme}`);
    rows.at(-1)!.push(`${fmt(bigCpu / (bigBytes / GiB))} s/GiB`);
    figures.set(`big ${scheme}`, bigCpu / (bigBytes / GiB));
    const reference = await withDestination(options.workDir, 'cpu-reference', tls ? { tls } : {}, (d) =>
      runReferenceUploader('python', { project, root: bigRoot, url: d.url, connections: 1, ...(tls ? { caFile: tls.certificate } : {}) }),
    );
    rows.push([`one ${bigMiB} MiB layer, ${scheme}: ${reference.name}`, fmt(reference.seconds), fmt(reference.cpuSeconds), `${fmt((reference.cpuSeconds ?? NaN) / (bigBytes / GiB))} s/GiB`]);
  }
  rmSync(path.join(options.workDir, 'cpu-push-report.json'), { force: true });

  printTable('cpu: client CPU of the whole process (user + system), page cache warm, into a local docker-registry', ['run', 'seconds', 'CPU s', 'CPU per unit'], rows);
  const against = (key: string, target: number, unit: string): string =>
    `${fmt(figures.get(`${key} HTTP`))} ${unit} (${((figures.get(`${key} HTTP`) ?? NaN) / target).toFixed(2)}× the target; HTTPS ${fmt(figures.get(`${key} HTTPS`))} ${unit})`;
  process.stdout.write(
    [
      `client CPU per tag on ${tags} small tags, target ≤ 1.5 ms per tag: ${against('tag', 1.5, 'ms')}`,
      `client CPU on the bench corpus, target ≤ 1.5 s/GiB: ${against('corpus', 1.5, 's/GiB')}`,
      `client CPU on one ${bigMiB} MiB layer, target ≤ 1.0 s/GiB: ${against('big', 1.0, 's/GiB')}`,
      `cpu section took ${((Date.now() - started) / 1000).toFixed(0)} s`,
    ].join('\n') + '\n',
  );
}

/**
 * `npm run bench -- ceiling`: the push corpus uploaded by the reference uploaders (bench/upload-node.ts and
 * bench/upload-python.py, each its own process, every blob file once; the faster is the ceiling) and by curl
 * (bench/ceiling.sh), against `regmigrate push` of the same corpus, each into a fresh docker-registry: wall time
 * and CPU per GiB of each whole process (user + system, GNU time), and regmigrate's ratios to the ceiling.
 * $REGMIGRATE_BENCH_CEILING_CONNECTIONS sets the uploaders' connections (default 8, regmigrate's default).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { measureCeiling } from './ceiling.js';
import { withDestination } from './destination.js';
import { fmt, measure, printTable } from './measure.js';
import { buildPushCorpus } from './push-corpus.js';

const GiB = 1024 ** 3;

export async function benchCeiling(options: { bin: string; project: string; workDir: string }): Promise<void> {
  const corpus = await buildPushCorpus(options.workDir);
  const connections = Number(process.env.REGMIGRATE_BENCH_CEILING_CONNECTIONS ?? 8);
  const { ceiling, runs } = await measureCeiling({ project: options.project, root: corpus.root, connections }, (name, job) =>
    withDestination(options.workDir, name, {}, (d) => job(d.url)),
  );
  const gib = ceiling.bytes / GiB;
  const rows = runs.map((r) => [r.name, fmt(r.seconds), fmt(r.cpuSeconds), fmt(r.cpuSeconds === undefined ? undefined : r.cpuSeconds / gib), (r.seconds / ceiling.seconds).toFixed(2), `${r.requests} requests`]);

  const curl = await withDestination(options.workDir, 'ceiling-curl', {}, (d) => measure('bash', [path.join(options.project, 'bench/ceiling.sh'), corpus.root, d.host, String(connections)]));
  if (curl.exitCode !== 0) throw new Error(`bench/ceiling.sh exited ${curl.exitCode}: ${curl.stderr.slice(-1000)}`);
  rows.push([`curl per blob (bench/ceiling.sh), ${connections} at a time`, fmt(curl.seconds), fmt(curl.cpuSeconds), fmt(curl.cpuSeconds === undefined ? undefined : curl.cpuSeconds / gib), (curl.seconds / ceiling.seconds).toFixed(2), 'a bash and two curls per blob']);

  const report = path.join(options.workDir, 'ceiling-push-report.json');
  const push = await withDestination(options.workDir, 'ceiling-regmigrate', {}, (d) => measure(options.bin, ['push', corpus.root, '--to', d.url, '--quiet', '--report', report], { stdoutFile: '/dev/null' }));
  if (push.exitCode !== 0) throw new Error(`regmigrate push exited ${push.exitCode}: ${push.stderr.slice(-2000)}`);
  const summary = (JSON.parse(readFileSync(report, 'utf8')) as { summary: { requests: number; verified: number; bytesUploaded: number } }).summary;
  const pushCpuPerGiB = push.cpuSeconds === undefined ? undefined : push.cpuSeconds / gib;
  rows.push(['regmigrate push', fmt(push.seconds), fmt(push.cpuSeconds), fmt(pushCpuPerGiB), (push.seconds / ceiling.seconds).toFixed(2), `${summary.requests} requests, ${summary.verified} tags verified`]);

  printTable(`ceiling: the push corpus (${(ceiling.bytes / 1048576).toFixed(0)} MiB of blobs) into a fresh docker-registry`, ['uploader', 'seconds', 'CPU s', 'CPU s/GiB', '× ceiling', 'note'], rows);
  process.stdout.write(`ceiling this run: ${ceiling.name}\n`);
  process.stdout.write(`regmigrate push / ceiling, time: ${(push.seconds / ceiling.seconds).toFixed(2)}×\n`);
  if (push.cpuSeconds !== undefined && ceiling.cpuSeconds !== undefined) {
    process.stdout.write(`regmigrate push / ceiling, CPU: ${(push.cpuSeconds / ceiling.cpuSeconds).toFixed(2)}× (${fmt(pushCpuPerGiB)} against ${fmt(ceiling.cpuSeconds / gib)} s/GiB)\n`);
    process.stdout.write(`client CPU on the bench corpus, target ≤ 1.5 s/GiB: ${fmt(pushCpuPerGiB)} s/GiB (${((pushCpuPerGiB ?? NaN) / 1.5).toFixed(2)}× the target)\n`);
  }
}

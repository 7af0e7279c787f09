/**
 * Push benchmark, side by side in one run on the ~570 MiB corpus, each into a fresh docker-registry:
 * (a) the ceiling: every blob file once with curl, 8 at a time; (b) the hard-link `dir:` + `skopeo sync` recipe;
 * (c) `skopeo copy --all` per tag; (d) `regmigrate push`. Then a no-op second run, and peak memory on a 2 GiB layer.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import { createGzip } from 'node:zlib';
import pLimit from 'p-limit';
import { Agent } from 'undici';
import { StorageBuilder, MEDIA, tarOneFile } from '../fixtures/builder.js';
import { launchRegistry, type RegistryProcess } from '../fixtures/registry-process.js';
import { RegistryClient } from '../src/registry/client.js';
import { parseEndpoint } from '../src/registry/endpoint.js';
import { measureCeiling } from './ceiling.js';
import { buildPushCorpus } from './push-corpus.js';
import { fmt, measure, printTable } from './measure.js';

interface Expected {
  readonly destination: string;
  readonly digest: string;
}

/** What a correct migration must serve: every tag (single-level names under library/) at its source digest. */
async function expectedTags(bin: string, root: string): Promise<Expected[]> {
  const { stdout } = await execa(bin, ['scan', root, '--output', 'json'], { maxBuffer: 1 << 30 });
  const doc = JSON.parse(stdout) as { tags: Array<{ repository: string; tag: string; digest: string }> };
  return doc.tags.map((t) => ({ destination: `${t.repository.includes('/') ? t.repository : `library/${t.repository}`}:${t.tag}`, digest: t.digest }));
}

async function countVerified(host: string, expected: readonly Expected[]): Promise<number> {
  const dispatcher = new Agent();
  const client = new RegistryClient({ endpoint: parseEndpoint(host), credentials: undefined, dispatcher });
  const limit = pLimit(16);
  const ok = await Promise.all(
    expected.map((e) =>
      limit(async () => {
        const at = e.destination.lastIndexOf(':');
        const got = await client.getManifest(e.destination.slice(0, at), e.destination.slice(at + 1)).catch(() => undefined);
        return got !== undefined && `sha256:${createHash('sha256').update(got.bytes).digest('hex')}` === e.digest;
      }),
    ),
  );
  await dispatcher.close();
  return ok.filter(Boolean).length;
}

async function withRegistry<T>(workDir: string, name: string, job: (registry: RegistryProcess) => Promise<T>): Promise<T> {
  const dir = path.join(workDir, 'dest', name);
  rmSync(dir, { recursive: true, force: true });
  const registry = await launchRegistry({ workDir: dir, schema1: true });
  try {
    return await job(registry);
  } finally {
    await registry.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A storage holding one image whose layer is `size` bytes of incompressible data, written as a stream. */
export async function buildBigLayerStorage(root: string, size: number): Promise<void> {
  rmSync(root, { recursive: true, force: true });
  const b = new StorageBuilder(root);
  const tmp = path.join(root, 'layer.tmp');
  const gz = createGzip({ level: 1 });
  const out = createWriteStream(tmp);
  const gzHash = createHash('sha256');
  const tarHash = createHash('sha256');
  let gzSize = 0;
  gz.on('data', (c: Buffer) => {
    gzHash.update(c);
    gzSize += c.length;
  });
  gz.pipe(out);
  const header = tarOneFile('big.bin', Buffer.alloc(0)).subarray(0, 512);
  // Patch the header's size field for the real size and recompute its checksum.
  header.write(size.toString(8).padStart(11, '0') + '\0', 124, 'ascii');
  header.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  const write = async (chunk: Buffer): Promise<void> => {
    tarHash.update(chunk);
    if (!gz.write(chunk)) await once(gz, 'drain');
  };
  await write(header);
  let x = 0x9e3779b9;
  const block = Buffer.alloc(4 * 1024 * 1024);
  for (let written = 0; written < size; written += block.length) {
    for (let i = 0; i < block.length; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      block.writeInt32LE(x | 0, i);
    }
    await write(block.subarray(0, Math.min(block.length, size - written)));
  }
  await write(Buffer.alloc((512 - (size % 512)) % 512 + 1024));
  gz.end();
  await once(out, 'close');
  const digest = `sha256:${gzHash.digest('hex')}`;
  const blobPath = b.blobPath(digest);
  mkdirSync(path.dirname(blobPath), { recursive: true });
  await execa('mv', [tmp, blobPath]);
  b.writeLink(path.join(b.repoDir('big/layer'), '_layers', 'sha256', digest.slice(7), 'link'), digest);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${tarHash.digest('hex')}`] } }));
  const configDigest = b.addBlob('big/layer', config);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.dockerManifest,
    config: { mediaType: MEDIA.dockerConfig, size: config.length, digest: configDigest },
    layers: [{ mediaType: MEDIA.dockerLayer, size: gzSize, digest }],
  });
  b.tag('big/layer', 'v1', b.addManifest('big/layer', manifest));
}

export async function benchPush(options: { bin: string; project: string; workDir: string }): Promise<void> {
  const { bin, workDir } = options;
  const corpus = await buildPushCorpus(workDir);
  const expected = await expectedTags(bin, corpus.root);
  const { stdout: du } = await execa('du', ['-sm', path.join(corpus.root, 'docker/registry/v2/blobs')]);
  const corpusMiB = Number(du.split('\t')[0]);
  process.stderr.write(`push bench: corpus ${corpusMiB} MiB, ${expected.length} tags\n`);
  const rows: string[][] = [];
  const results: Record<string, number> = {};
  const record = (name: string, seconds: number, verified: number, peak: number | undefined, note: string): void => {
    results[name] = seconds;
    rows.push([name, fmt(seconds), `${verified}/${expected.length}`, fmt(peak, 0), note]);
  };

  // (a0) the ceiling: the faster of the two reference uploaders (each its own process), every blob once, 8 keep-alive
  // connections, largest first (bench/ceiling.ts measureCeiling)
  const { ceiling: fastest } = await measureCeiling({ project: options.project, root: corpus.root, connections: 8 }, (name, job) =>
    withRegistry(workDir, name, (registry) => job(`http://${registry.host}`)),
  );
  results.reference = fastest.seconds;
  results.referenceCpu = fastest.cpuSeconds ?? NaN;
  rows.push([`ceiling: ${fastest.name}, each blob once`, fmt(fastest.seconds), '0', '-', `uploads only; client CPU ${fmt(fastest.cpuSeconds)} s`]);

  // (a) the curl reference point
  await withRegistry(workDir, 'ceiling', async (registry) => {
    const m = await measure('bash', [path.join(options.project, 'bench/ceiling.sh'), corpus.root, registry.host, '8']);
    if (m.exitCode !== 0) throw new Error(`ceiling failed: ${m.stderr}`);
    record('ceiling: curl each blob once, 8 at a time', m.seconds, 0, undefined, 'uploads only, no manifests');
  });

  // (b) the dir: recipe
  await withRegistry(workDir, 'recipe', async (registry) => {
    const out = path.join(workDir, 'recipe-out');
    rmSync(out, { recursive: true, force: true });
    const link = await measure('bash', [path.join(options.project, 'bench/recipe.sh'), 'link', corpus.root, out]);
    const sync = await measure('bash', [path.join(options.project, 'bench/recipe.sh'), 'sync', out, registry.host]);
    rmSync(out, { recursive: true, force: true });
    results.recipeLink = link.seconds;
    record('recipe: hard-link dir: + skopeo sync per project', link.seconds + sync.seconds, await countVerified(registry.host, expected), undefined, `link step ${fmt(link.seconds)} s`);
  });

  // The skopeo route: export against the recipe's link step, push --via skopeo against the recipe end to end.
  {
    const out = path.join(workDir, 'export-out');
    rmSync(out, { recursive: true, force: true });
    const m = await measure(bin, ['export', corpus.root, '--out', out], { stdoutFile: '/dev/null' });
    if (m.exitCode !== 0) throw new Error(`regmigrate export exited ${m.exitCode}: ${m.stderr}`);
    rmSync(out, { recursive: true, force: true });
    results.export = m.seconds;
    rows.push(['regmigrate export (hard links)', fmt(m.seconds), '-', fmt(m.peakMiB, 0), `recipe link step ${fmt(results.recipeLink)} s`]);
  }
  await withRegistry(workDir, 'via-skopeo', async (registry) => {
    const m = await measure(bin, ['push', corpus.root, '--to', registry.host, '--via', 'skopeo', '--work-dir', path.join(workDir, 'work'), '--quiet'], { stdoutFile: '/dev/null' });
    if (m.exitCode !== 0) throw new Error(`regmigrate push --via skopeo exited ${m.exitCode}: ${m.stderr}`);
    record('regmigrate push --via skopeo', m.seconds, await countVerified(registry.host, expected), m.peakMiB, 'skopeo copy per image, 8 at a time');
  });

  // (c) skopeo copy --all per tag, from the old registry running again
  await withRegistry(workDir, 'skopeo-copy', async (registry) => {
    const source = await launchRegistry({ workDir: path.join(workDir, 'dest', 'skopeo-src'), root: corpus.root, readonly: true });
    try {
      const started = process.hrtime.bigint();
      for (const e of expected) {
        const sourceRef = corpus.tags.find((t) => e.destination.endsWith(`/${t}`) || e.destination === t) ?? e.destination;
        await execa('skopeo', ['copy', '--quiet', '--all', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${source.host}/${sourceRef}`, `docker://${registry.host}/${e.destination}`], { reject: false });
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      record('skopeo copy --all per tag (serial)', seconds, await countVerified(registry.host, expected), undefined, 'needs the old registry running');
    } finally {
      await source.stop();
    }
  });

  // (d) regmigrate push, then a no-op second run
  await withRegistry(workDir, 'regmigrate', async (registry) => {
    const report = path.join(workDir, 'push-report.json');
    const m = await measure(bin, ['push', corpus.root, '--to', registry.host, '--quiet', '--report', report], { stdoutFile: '/dev/null' });
    if (m.exitCode !== 0) throw new Error(`regmigrate push exited ${m.exitCode}: ${m.stderr}`);
    const summary = (JSON.parse(readFileSync(report, 'utf8')) as { summary: { requests: number } }).summary;
    results.pushCpu = m.cpuSeconds ?? NaN;
    results.pushRequests = summary.requests;
    record('regmigrate push', m.seconds, await countVerified(registry.host, expected), m.peakMiB, `verified by regmigrate too; client CPU ${fmt(m.cpuSeconds)} s; ${summary.requests} requests`);
    const again = await measure(bin, ['push', corpus.root, '--to', registry.host, '--quiet'], { stdoutFile: '/dev/null' });
    record('regmigrate push, second run (no-op)', again.seconds, await countVerified(registry.host, expected), again.peakMiB, 'target < 2 s');
  });

  printTable(`push: ${corpusMiB} MiB, ${expected.length} tags, into a local docker-registry`, ['approach', 'seconds', 'verified', 'peak MiB', 'note'], rows);
  const ceiling = results['ceiling: curl each blob once, 8 at a time']!;
  process.stdout.write(`regmigrate export / recipe link step: ${(results.export! / results.recipeLink!).toFixed(2)} (target < 1)\n`);
  process.stdout.write(
    `regmigrate push --via skopeo / recipe: ${(results['regmigrate push --via skopeo']! / results['recipe: hard-link dir: + skopeo sync per project']!).toFixed(2)} (target <= 1)\n`,
  );
  for (const name of ['recipe: hard-link dir: + skopeo sync per project', 'skopeo copy --all per tag (serial)', 'regmigrate push --via skopeo', 'regmigrate push']) {
    process.stdout.write(`${name} / curl ceiling: ${(results[name]! / ceiling).toFixed(2)}\n`);
  }
  const gib = corpusMiB / 1024;
  process.stdout.write(`regmigrate push / the ceiling (${fastest.name}): ${(results['regmigrate push']! / results.reference!).toFixed(2)}\n`);
  process.stdout.write(`regmigrate push client CPU per GiB: ${(results.pushCpu! / gib).toFixed(2)} s (target <= 1.5; the ceiling: ${(results.referenceCpu! / gib).toFixed(2)} s)\n`);
  process.stdout.write(`regmigrate push requests per tag: ${(results.pushRequests! / expected.length).toFixed(2)}\n`);

  // Memory with one 2 GiB layer: the upload streams from the file.
  const bigRoot = path.join(workDir, 'big-layer');
  process.stderr.write('push bench: writing a storage with one 2 GiB layer ...\n');
  await buildBigLayerStorage(bigRoot, 2 * 1024 * 1024 * 1024);
  await withRegistry(workDir, 'big', async (registry) => {
    const m = await measure(bin, ['push', bigRoot, '--to', registry.host, '--quiet'], { stdoutFile: '/dev/null' });
    if (m.exitCode !== 0) throw new Error(`regmigrate push (2 GiB layer) exited ${m.exitCode}: ${m.stderr}`);
    printTable('push: one image with a 2 GiB layer', ['approach', 'seconds', 'peak MiB', 'target'], [['regmigrate push', fmt(m.seconds), fmt(m.peakMiB, 0), '< 300 MiB']]);
  });
  rmSync(bigRoot, { recursive: true, force: true });
}

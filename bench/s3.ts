/**
 * S3 benchmark: a registry storage held in a real S3 server (Ceph RGW, memstore: the data lives in RAM and is
 * uploaded afresh at each run), read by regmigrate directly, side by side in one run with
 * (a) the fastest plain reader we can write, as its own process (bench/s3-plain.ts), that sends only the requests a scan needs: the delimiter listings that
 *     find repositories, one flat listing of each repository's _manifests/ (its tags, its revisions, and each link's
 *     ETag: the MD5 of the digest the link holds, so a link needs no GET of its own), one flat listing of blobs/
 *     (presence of every blob, 1,000 a request) and one GET per unique manifest, with regmigrate's number of reads in
 *     flight;
 * (b) the same storage read from its directory: push of the push corpus and a no-op sync.
 * The bucket holds exactly the filesystem driver's tree (the layout is the same), so it is filled by uploading the
 * directory's files.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pLimit from 'p-limit';
import { Pool } from 'undici';
import { launchRegistry } from '../fixtures/registry-process.js';
import { launchRgw, type Rgw } from '../fixtures/rgw-process.js';
import { s3Writer } from '../fixtures/s3-writer.js';
import { encodeRfc3986, encodeS3Path, EMPTY_SHA256, SigV4Signer } from '../src/storage/s3/sigv4.js';
import { S3_CONNECTIONS } from '../src/tuning.js';
import { buildMetadataStorage } from './metadata-storage.js';
import { fmt, measure, printTable, type Measurement } from './measure.js';
import { buildPushCorpus } from './push-corpus.js';

const BUCKET = 'registry-bench';
const V2 = 'docker/registry/v2/';

interface Counted {
  readonly requests: number;
  readonly tags: number;
  readonly manifests: number;
}

/** The plain reader: a Pool, the signer, regular expressions over the listing XML. Nothing else. */
export async function minimalScan(rgw: Pick<Rgw, 'endpoint' | 'region' | 'accessKey' | 'secretKey'>, bucket: string, root: string, inFlight: number): Promise<Counted> {
  const origin = rgw.endpoint;
  const host = new URL(origin).host;
  const pool = new Pool(origin, { connections: inFlight });
  const signer = new SigV4Signer(rgw.region);
  const credentials = { accessKeyId: rgw.accessKey, secretAccessKey: rgw.secretKey };
  const limit = pLimit(inFlight);
  let requests = 0;
  const get = (key: string | undefined, query: Array<[string, string]>): Promise<Buffer> =>
    limit(async () => {
      requests++;
      const p = `/${encodeRfc3986(bucket)}${key === undefined ? '' : `/${encodeS3Path(key)}`}`;
      const qs = query.map(([k, v]) => `${encodeRfc3986(k)}=${encodeRfc3986(v)}`).join('&');
      const headers = signer.sign({ method: 'GET', host, path: p, query, payloadHash: EMPTY_SHA256 }, credentials);
      const res = await pool.request({ method: 'GET', path: qs ? `${p}?${qs}` : p, headers });
      const body = Buffer.from(await res.body.arrayBuffer());
      if (res.statusCode !== 200) throw new Error(`GET ${p}: ${res.statusCode}`);
      return body;
    });
  const list = async (prefix: string, delimiter: boolean): Promise<{ keys: string[]; etags: string[]; prefixes: string[] }> => {
    const keys: string[] = [];
    const etags: string[] = [];
    const prefixes: string[] = [];
    let token: string | undefined;
    do {
      const query: Array<[string, string]> = [['list-type', '2'], ['prefix', prefix]];
      if (delimiter) query.push(['delimiter', '/']);
      if (token) query.push(['continuation-token', token]);
      const xml = (await get(undefined, query)).toString('utf8');
      for (const m of xml.matchAll(/<Contents><Key>([^<]*)<\/Key>.*?<ETag>(?:&quot;|")?([0-9a-f]*)/g)) {
        keys.push(m[1]!);
        etags.push(m[2]!);
      }
      for (const m of xml.matchAll(/<CommonPrefixes><Prefix>([^<]*)<\/Prefix>/g)) prefixes.push(m[1]!);
      token = /<IsTruncated>true<\/IsTruncated>/.test(xml) ? /<NextContinuationToken>([^<]*)</.exec(xml)?.[1] : undefined;
    } while (token);
    return { keys, etags, prefixes };
  };

  const base = `${root}/${V2}`;
  // Every blob's presence: one flat listing per first hex digit, in parallel.
  const blobs = new Set<string>();
  const blobListings = [...'0123456789abcdef'].map(async (c) => {
    for (const key of (await list(`${base}blobs/sha256/${c}`, false)).keys) blobs.add(`sha256:${key.split('/').at(-2)}`);
  });
  // Repositories: a delimiter listing per level, a level holding `_manifests/` is a repository; its tags and their
  // digests from one flat listing of it: a `current/link` whose ETag is the MD5 of `sha256:<hex>` for a listed
  // revision holds that digest; any other link is read with a GET.
  const digests: string[] = [];
  let tags = 0;
  const md5 = (text: string): string => createHash('md5').update(text).digest('hex');
  const walk = async (prefix: string): Promise<void> => {
    const { prefixes } = await list(prefix, true);
    if (prefixes.includes(`${prefix}_manifests/`)) {
      const { keys, etags } = await list(`${prefix}_manifests/`, false);
      const revisions = new Map<string, string>();
      const links: Array<[string, string]> = [];
      keys.forEach((key, i) => {
        const rest = key.slice(prefix.length + '_manifests/'.length);
        const revision = /^revisions\/sha256\/([0-9a-f]{64})\/link$/.exec(rest);
        if (revision) revisions.set(md5(`sha256:${revision[1]!}`), `sha256:${revision[1]!}`);
        else if (/^tags\/[^/]+\/current\/link$/.test(rest)) links.push([key, etags[i]!]);
      });
      tags += links.length;
      await Promise.all(links.map(async ([key, etag]) => digests.push(revisions.get(etag) ?? (await get(key, [])).toString('utf8').trim())));
    }
    await Promise.all(prefixes.filter((p) => !p.slice(prefix.length).startsWith('_')).map(walk));
  };
  await Promise.all([walk(`${base}repositories/`), ...blobListings]);
  const unique = [...new Set(digests)];
  await Promise.all(
    unique.map(async (digest) => {
      const bytes = await get(`${base}blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}/data`, []);
      if (`sha256:${createHash('sha256').update(bytes).digest('hex')}` !== digest) throw new Error(`manifest ${digest}: digest does not match`);
      const manifest = JSON.parse(bytes.toString('utf8')) as { config?: { digest: string }; layers?: Array<{ digest: string }> };
      for (const d of [manifest.config?.digest, ...(manifest.layers ?? []).map((l) => l.digest)]) if (d && !blobs.has(d)) throw new Error(`blob ${d} is missing`);
    }),
  );
  await pool.close();
  return { requests, tags, manifests: unique.length };
}

/** A pass-through HTTP proxy that counts requests by method (to read how many requests a command sends the store). */
async function countingProxy(target: string): Promise<{ url: string; counts: Map<string, number>; close(): Promise<void> }> {
  const counts = new Map<string, number>();
  const to = new URL(target);
  const server = createServer((req, res) => {
    counts.set(req.method!, (counts.get(req.method!) ?? 0) + 1);
    const upstream = httpRequest({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode!, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, counts, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

export async function benchS3(options: { bin: string; workDir: string; tags?: number }): Promise<void> {
  const tags = options.tags ?? Number(process.env.REGMIGRATE_BENCH_S3_TAGS ?? 10_000);
  const tagsPerRepo = 10;
  const repositories = Math.max(1, Math.round(tags / tagsPerRepo));
  const root = path.join(options.workDir, `scan-${repositories}x${tagsPerRepo}`);
  buildMetadataStorage(root, { repositories, tagsPerRepo });
  const corpus = await buildPushCorpus(options.workDir);

  process.stderr.write('s3 bench: starting the S3 server (Ceph RGW, memstore)\n');
  const rgw = await launchRgw({ memstoreBytes: 6 * 1024 ** 3, timeoutMs: 120_000 });
  const writer = s3Writer(rgw);
  const env = { AWS_ACCESS_KEY_ID: rgw.accessKey, AWS_SECRET_ACCESS_KEY: rgw.secretKey, AWS_REGION: rgw.region, AWS_EC2_METADATA_DISABLED: 'true' };
  const s3Args = (endpoint: string) => ['--s3-endpoint', endpoint, '--s3-region', rgw.region];
  const run = async (args: string[], what: string, extraEnv: Record<string, string> = {}): Promise<Measurement> => {
    const m = await measure(options.bin, args, { env: { ...env, ...extraEnv }, stdoutFile: '/dev/null' });
    if (m.exitCode !== 0) throw new Error(`${what} exited ${m.exitCode}: ${m.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    return m;
  };
  try {
    await writer.createBucket(BUCKET);
    const started = process.hrtime.bigint();
    const objects = await writer.putTree(BUCKET, 'meta/', root, 32);
    const fillSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const corpusObjects = await writer.putTree(BUCKET, 'corpus/', corpus.root, 16);
    process.stderr.write(`s3 bench: ${objects} objects for ${tags} tags in ${fmt(fillSeconds, 0)} s, ${corpusObjects} for the push corpus\n`);

    // scan: regmigrate against the plain reader, alternating, median of 3; then once through a counting proxy.
    const scanRows: string[][] = [];
    // The plain reader is its own process (bench/s3-plain.ts), measured as regmigrate is: start-up and all.
    const minimal: Array<{ seconds: number; cpu: number; counted: Counted }> = [];
    const ours: Measurement[] = [];
    const plainScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 's3-plain.js');
    for (let i = 0; i < 3; i++) {
      const p = await measure(process.execPath, [plainScript, BUCKET, 'meta', String(S3_CONNECTIONS)], { env: { ...env, S3_ENDPOINT: rgw.endpoint } });
      if (p.exitCode !== 0) throw new Error(`the plain reader exited ${p.exitCode}: ${p.stderr.slice(-1000)}`);
      minimal.push({ seconds: p.seconds, cpu: p.cpuSeconds ?? NaN, counted: JSON.parse(p.stdout.trim().split('\n').at(-1)!) as Counted });
      ours.push(await run(['scan', `s3://${BUCKET}/meta`, ...s3Args(rgw.endpoint), '--output', 'json'], 'regmigrate scan (s3)'));
    }
    const mid = <T>(xs: T[], key: (x: T) => number): T => [...xs].sort((a, b) => key(a) - key(b))[1]!;
    const m = mid(minimal, (x) => x.seconds);
    const o = mid(ours, (x) => x.seconds);
    const proxy = await countingProxy(rgw.endpoint);
    await run(['scan', `s3://${BUCKET}/meta`, ...s3Args(proxy.url), '--output', 'json'], 'regmigrate scan (s3, counted)');
    await proxy.close();
    const ourRequests = [...proxy.counts.values()].reduce((a, b) => a + b, 0);
    const dir = await run(['scan', root, '--output', 'json'], 'regmigrate scan (directory)');
    scanRows.push(['plain reader (listings + manifest GETs)', fmt(m.seconds), fmt((m.cpu * 1000) / m.counted.tags, 3), fmt(m.counted.requests / m.counted.tags, 2), '-', '1.00']);
    scanRows.push(['regmigrate scan s3://', fmt(o.seconds), fmt(((o.cpuSeconds ?? NaN) * 1000) / tags, 3), fmt(ourRequests / tags, 2), fmt(o.peakMiB, 0), `${fmt(o.seconds / m.seconds)} (target <= 1.25, peak < 300 MiB)`]);
    scanRows.push(['regmigrate scan <directory>', fmt(dir.seconds), fmt(((dir.cpuSeconds ?? NaN) * 1000) / tags, 3), '-', fmt(dir.peakMiB, 0), fmt(dir.seconds / m.seconds)]);
    const methods = [...proxy.counts.entries()].map(([k, v]) => `${k} ${v}`).join(', ');
    printTable(`s3 scan: ${tags} tags in ${repositories} repositories held in Ceph RGW (median of 3; requests to the store: ${methods})`, ['reader', 'seconds', 'CPU ms per tag', 'requests per tag', 'peak MiB', 'ratio to the plain reader'], scanRows);

    // push: the corpus from the bucket and from its directory, each into a fresh registry.
    const pushRows: string[][] = [];
    const pushInto = async (name: string, source: string, extra: string[]): Promise<Measurement> => {
      const workDir = path.join(options.workDir, 'dest', `s3-${name}`);
      rmSync(workDir, { recursive: true, force: true });
      const registry = await launchRegistry({ workDir });
      try {
        return await run(['push', source, '--to', registry.host, '--quiet', ...extra], `regmigrate push (${name})`);
      } finally {
        await registry.stop();
        rmSync(workDir, { recursive: true, force: true });
      }
    };
    const fromDir = await pushInto('dir', corpus.root, []);
    const fromS3 = await pushInto('s3', `s3://${BUCKET}/corpus`, s3Args(rgw.endpoint));
    pushRows.push(['regmigrate push <directory>', fmt(fromDir.seconds), fmt(fromDir.cpuSeconds), fmt(fromDir.peakMiB, 0), '1.00']);
    pushRows.push(['regmigrate push s3://', fmt(fromS3.seconds), fmt(fromS3.cpuSeconds), fmt(fromS3.peakMiB, 0), `${fmt(fromS3.seconds / fromDir.seconds)} (target <= 1.15)`]);
    printTable(`s3 push: the push corpus (${corpus.tags.length} tags) into a fresh docker-registry`, ['source', 'seconds', 'CPU s', 'peak MiB', 'ratio to the directory'], pushRows);

    // no-op sync: a destination that already holds every tag (a registry serving the directory read-only).
    const mirror = await launchRegistry({ workDir: path.join(options.workDir, 's3-sync-mirror'), root, readonly: true });
    const syncRows: string[][] = [];
    try {
      // Each journal written once; then the two no-op syncs alternate, three rounds, medians (one run each moved the
      // ratio between 1.2 and 1.5 on this machine).
      const state = (name: string): string => path.join(options.workDir, `s3-sync-${name}.json`);
      const args = (source: string, extra: string[], name: string): string[] => ['sync', source, '--to', mirror.host, '--state', state(name), '--quiet', ...extra];
      const sources: Array<[string, string, string[]]> = [
        ['dir', root, []],
        ['s3', `s3://${BUCKET}/meta`, s3Args(rgw.endpoint)],
      ];
      for (const [name, source, extra] of sources) {
        rmSync(state(name), { force: true });
        await run(args(source, extra, name), `first sync (${name})`);
      }
      const runs = new Map<string, Measurement[]>(sources.map(([name]) => [name, []]));
      for (let round = 0; round < 3; round++) {
        for (const [name, source, extra] of sources) {
          const m = await measure(options.bin, args(source, extra, name), { env });
          if (m.exitCode !== 0 || !/0 pushed, \d+ unchanged, 0 failed/.test(m.stdout)) throw new Error(`the no-op sync (${name}) was not a no-op: ${m.stdout} ${m.stderr}`);
          runs.get(name)!.push(m);
        }
      }
      for (const [name] of sources) rmSync(state(name), { force: true });
      const dirSync = mid(runs.get('dir')!, (x) => x.seconds);
      const s3Sync = mid(runs.get('s3')!, (x) => x.seconds);
      const all = (name: string): string => runs.get(name)!.map((m) => fmt(m.seconds)).join(', ');
      syncRows.push([`regmigrate sync <directory> (${all('dir')} s)`, fmt(dirSync.seconds), fmt(((dirSync.cpuSeconds ?? NaN) * 1000) / tags, 3), fmt(dirSync.peakMiB, 0), '1.00']);
      syncRows.push([`regmigrate sync s3:// (${all('s3')} s)`, fmt(s3Sync.seconds), fmt(((s3Sync.cpuSeconds ?? NaN) * 1000) / tags, 3), fmt(s3Sync.peakMiB, 0), `${fmt(s3Sync.seconds / dirSync.seconds)} (target <= 1.25)`]);
    } finally {
      await mirror.stop();
    }
    printTable(`s3 sync: no-op, ${tags} tags already in the destination (median of 3, alternating)`, ['source', 'seconds', 'CPU ms per tag', 'peak MiB', 'ratio to the directory'], syncRows);
  } finally {
    await writer.close();
    await rgw.stop();
  }
}

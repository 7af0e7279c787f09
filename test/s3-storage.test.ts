/**
 * Every command on a registry storage in a bucket: the bucket is written by the real registry (distribution 2.8's s3
 * driver, test/helpers/s3-registry.ts) into a real S3 server (Ceph RGW), read through a fault proxy that logs every
 * request, and each result is checked against the same images read from the filesystem registry's storage. One
 * gateway and one bucket for the whole file.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Agent } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { addImage, makeLayer, StorageBuilder } from '../fixtures/builder.js';
import { buildFaultyStorage } from '../fixtures/trees.js';
import { S3SourceClient } from '../src/storage/s3/client.js';
import { staticCredentials } from '../src/storage/s3/credentials.js';
import { openStorage } from '../src/storage/open.js';
import { BIN, runCli, type CliResult } from './helpers/cli.js';
import { startRegistry } from './helpers/registry.js';
import { startRgw, type RunningRgw } from './helpers/rgw.js';
import { buildS3Tree, type S3Tree } from './helpers/s3-registry.js';
import { startS3FaultProxy, type S3FaultAction, type S3FaultProxy, type S3FaultRequest } from './helpers/s3-fault-proxy.js';
import { s3Writer, type S3Writer } from './helpers/s3-writer.js';
import { waitFor } from './helpers/observe.js';
import { tempDir } from './helpers/tmp.js';

const BUCKET = 'registry';
const SOURCE = `s3://${BUCKET}/prod/registry`;
const sha256Hex = (text: string): string => createHash('sha256').update(text).digest('hex');

let rgw: RunningRgw;
let tree: S3Tree;
let proxy: S3FaultProxy;
let writer: S3Writer;
let env: Record<string, string>;
/** The faulty fixture storage, as a directory and uploaded under `faulty/`. */
let faultyDir: string;
const dispatcher = new Agent({ connections: 8 });

beforeAll(async () => {
  rgw = await startRgw();
  tree = await buildS3Tree(rgw, BUCKET, '/prod/registry');
  writer = s3Writer(rgw);
  proxy = await startS3FaultProxy(rgw.endpoint);
  const none = path.join(tempDir('regmigrate-aws-'), 'none');
  env = {
    AWS_ACCESS_KEY_ID: rgw.accessKey,
    AWS_SECRET_ACCESS_KEY: rgw.secretKey,
    AWS_REGION: rgw.region,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SHARED_CREDENTIALS_FILE: none,
    AWS_CONFIG_FILE: none,
  };
  faultyDir = path.join(buildFaultyStorage(path.join(tempDir('regmigrate-faulty-'), 'registry')).root, 'docker', 'registry', 'v2');
  await writer.putTree(BUCKET, 'faulty/docker/registry/v2/', faultyDir);
}, 600_000);

afterAll(() => dispatcher.close());

afterEach(() => proxy.reset());

/** The CLI on the bucket, through the proxy. */
function s3Cli(args: string[], extraEnv: Record<string, string> = {}): Promise<CliResult> {
  return runCli([...args, '--s3-endpoint', proxy.endpoint], { env: { ...env, ...extraEnv } });
}

/** The source store was only read: every request the proxy passed on was a GET or a HEAD. */
function expectOnlyReads(): void {
  expect(proxy.log.length).toBeGreaterThan(0);
  expect([...new Set(proxy.log.map((e) => e.method))].filter((m) => m !== 'GET' && m !== 'HEAD')).toEqual([]);
  expect(proxy.log.filter((e) => /uploads|uploadId|partNumber/.test(e.query))).toEqual([]);
}

/**
 * Listings in which the objects `opaque` picks carry an ETag that is not the MD5 of their bytes, as a bucket with
 * SSE-KMS or SSE-C gives (or an object written in parts): a link the reader cannot answer from its listing.
 */
function opaqueETags(opaque: (key: string) => boolean): (req: S3FaultRequest) => S3FaultAction | undefined {
  return (req) =>
    req.url.searchParams.get('list-type') === '2'
      ? {
          kind: 'rewrite',
          edit: (body) =>
            body.replace(/<Contents><Key>([^<]*)<\/Key>(.*?)<ETag>[^<]*<\/ETag>/g, (whole, key: string, between: string) =>
              opaque(decodeURIComponent(key)) ? `<Contents><Key>${key}</Key>${between}<ETag>&quot;${createHash('md5').update(key).digest('hex')}-1&quot;</ETag>` : whole,
            ),
        }
      : undefined;
}

/** The storage opened in this process, through the proxy (or `endpoint`); the credential chain reads the process's environment, as in the CLI. */
async function openWithEnv(url: string, endpoint = proxy.endpoint): Promise<Awaited<ReturnType<typeof openStorage>>> {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    return await openStorage(url, { endpoint, region: rgw.region });
  } finally {
    for (const name of Object.keys(env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
  }
}

/** The tag links the reader asked for with a GET. */
function linkGets(): number {
  return proxy.log.filter((e) => e.method === 'GET' && e.path.endsWith('/current/link')).length;
}

interface ScanTag {
  repository: string;
  tag: string;
  digest: string | null;
  mediaType: string | null;
  platforms: string[];
  size: number;
  pushedAt: string | null;
  blobs: Array<{ digest: string; size: number }>;
  faults: Array<{ kind: string; digest: string | null; message: string }>;
}
interface ScanDoc {
  root: string;
  tags: ScanTag[];
  summary: Record<string, unknown>;
}

/** What must be the same whatever the backend: everything but the places named in messages and the push times. */
function comparable(doc: ScanDoc): unknown {
  return {
    tags: doc.tags.map((t) => ({ ...t, pushedAt: undefined, faults: t.faults.map((f) => [f.kind, f.digest]) })),
    summary: doc.summary,
  };
}

async function scanJson(args: string[], s3: boolean): Promise<{ result: CliResult; doc: ScanDoc }> {
  const result = s3 ? await s3Cli(['scan', ...args, '--output', 'json']) : await runCli(['scan', ...args, '--output', 'json']);
  return { result, doc: JSON.parse(result.stdout) as ScanDoc };
}

function client(): S3SourceClient {
  return new S3SourceClient({ bucket: BUCKET, endpoint: rgw.endpoint, region: rgw.region, credentials: staticCredentials({ accessKeyId: rgw.accessKey, secretAccessKey: rgw.secretKey }, 'the test'), dispatcher });
}

function dataKey(prefix: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return `${prefix}blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
}

describe('scan of a bucket written by the registry', () => {
  it('finds every tag with the digests, sizes and media types of the filesystem copy, push times from the links, reading only', async () => {
    const fromDir = await scanJson([tree.fsV2], false);
    const fromS3 = await scanJson([SOURCE], true);
    expect(fromS3.result.exitCode, fromS3.result.stderr).toBe(0);
    expectOnlyReads();
    expect(fromS3.doc.tags.length).toBe(tree.tags.length + 1);
    expect(comparable(fromS3.doc)).toEqual(comparable(fromDir.doc));
    expect(fromS3.doc.root).toBe(`s3://${BUCKET}/prod/registry/docker/registry/v2`);
    // The push time is the tag link's Last-Modified in the bucket (to the second, as HTTP dates go).
    const modified = new Map<string, string>();
    for await (const page of client().list({ prefix: `${tree.v2Prefix}repositories/` })) for (const o of page.objects) modified.set(o.key, o.lastModified);
    for (const t of fromS3.doc.tags) {
      const listed = modified.get(`${tree.v2Prefix}repositories/${t.repository}/_manifests/tags/${t.tag}/current/link`);
      expect(listed, `${t.repository}:${t.tag}`).toBeDefined();
      expect(Math.abs(Date.parse(t.pushedAt!) - Date.parse(listed!))).toBeLessThan(1000);
    }
  });

  it('reads blob sizes from listings of the fan-out directories, not a HEAD per blob, with many requests in flight', async () => {
    const { result } = await scanJson([SOURCE], true);
    expect(result.exitCode).toBe(0);
    const heads = proxy.log.filter((e) => e.method === 'HEAD').length;
    const blobLists = proxy.log.filter((e) => e.method === 'GET' && /prefix=[^&]*blobs%2Fsha256%2F/.test(e.query)).length;
    expect(heads).toBe(0);
    expect(blobLists).toBeGreaterThan(0);
  });

  it("answers each tag link from its repository's listing (its ETag is the MD5 of the digest it holds), and GETs the links whose ETag is not an MD5 (SSE-KMS): the same inventory, the same push times", async () => {
    const listed = await scanJson([SOURCE], true);
    expect(listed.result.exitCode, listed.result.stderr).toBe(0);
    expect(linkGets()).toBe(0);
    proxy.reset();
    // Every object's ETag opaque, as in a bucket with SSE-KMS: each link is read with a GET.
    const everyKey = opaqueETags(() => true);
    proxy.script = (req) => everyKey(req) ?? { kind: 'forward' };
    const encrypted = await scanJson([SOURCE], true);
    expect(encrypted.result.exitCode, encrypted.result.stderr).toBe(0);
    expect(linkGets()).toBe(tree.tags.length + 1);
    expect(comparable(encrypted.doc)).toEqual(comparable(listed.doc));
    // The listing's LastModified and the GET's Last-Modified (whole seconds) name the same instant.
    for (const t of encrypted.doc.tags) {
      const other = listed.doc.tags.find((u) => u.repository === t.repository && u.tag === t.tag)!;
      expect(Math.abs(Date.parse(t.pushedAt!) - Date.parse(other.pushedAt!)), `${t.repository}:${t.tag}`).toBeLessThan(1000);
    }
  });

  it('a tag link that names a manifest with no revision link, or holds garbage, is read with a GET and judged as before', async () => {
    const root = path.join(tempDir('regmigrate-etag-'), 'registry');
    const b = new StorageBuilder(root);
    const image = addImage(b, 'etag/odd', { format: 'docker', layers: [makeLayer('e', 'etag odd\n')] });
    b.tag('etag/odd', 'good', image.digest);
    b.tag('etag/odd', 'unrevised', image.digest);
    b.tag('etag/odd', 'garbage', image.digest);
    b.writeLink(path.join(b.repoDir('etag/odd'), '_manifests', 'tags', 'garbage', 'current', 'link'), 'not a digest');
    // A second repository whose revision link is gone: its tag's ETag matches no listed revision.
    addImage(b, 'etag/bare', { format: 'docker', layers: [makeLayer('e', 'etag odd\n')] });
    b.tag('etag/bare', 'v1', image.digest);
    await writer.putTree(BUCKET, 'etag/', root, 16);
    const fromDir = await scanJson([root], false);
    const revision = `etag/docker/registry/v2/repositories/etag/bare/_manifests/revisions/sha256/${image.digest.slice(7)}/link`;
    await writer.delete(BUCKET, revision);
    const fromS3 = await scanJson([`s3://${BUCKET}/etag`], true);
    // The garbage link is a fault either way; every other tag as from the directory.
    expect(fromS3.result.exitCode).toBe(1);
    expect(comparable(fromS3.doc)).toEqual(comparable(fromDir.doc));
    const got = proxy.log.filter((e) => e.method === 'GET' && e.path.endsWith('/current/link')).map((e) => e.path.split('/_manifests/tags/')[1]);
    expect(got.sort()).toEqual(['garbage/current/link', 'v1/current/link']);
  });

  it('reads a link again from the store when asked fresh (the last check before a deletion), not from the listing', async () => {
    const storage = await openWithEnv(SOURCE);
    const t = tree.tags[0]!;
    const listing = await storage.listManifestNames!(t.repository);
    expect(listing.tags.ok && listing.tags.names).toContain(t.tag);
    proxy.reset();
    const fresh = await storage.readTagLink(t.repository, t.tag, { fresh: true });
    expect(fresh).toMatchObject({ ok: true, digest: t.digest });
    expect(linkGets()).toBe(1);
    const listed = await storage.readTagLink(t.repository, t.tag);
    expect(listed).toMatchObject({ ok: true, digest: t.digest });
    expect(linkGets()).toBe(1);
    // An entry answers once: the next read asks the store.
    await storage.readTagLink(t.repository, t.tag);
    expect(linkGets()).toBe(2);
  });

  it('a scan of the whole storage lists the blobs by first hex digit, 16 listings; a selection lists only the fan-out directories it meets', async () => {
    const blobPrefixes = (): string[] =>
      proxy.log.filter((e) => e.method === 'GET' && /prefix=[^&]*blobs%2Fsha256%2F/.test(e.query)).map((e) => decodeURIComponent(/prefix=([^&]*)/.exec(e.query)![1]!).slice(`${tree.v2Prefix}blobs/sha256/`.length));
    const whole = await scanJson([SOURCE], true);
    expect(whole.result.exitCode, whole.result.stderr).toBe(0);
    expect(blobPrefixes().sort()).toEqual([...'0123456789abcdef']);
    expect(proxy.log.filter((e) => e.method === 'HEAD')).toEqual([]);
    proxy.reset();
    const some = await scanJson([SOURCE, '--include', 'big/**'], true);
    expect(some.result.exitCode, some.result.stderr).toBe(0);
    const fans = new Set(some.doc.tags.flatMap((t) => t.blobs.map((b) => `${b.digest.slice(7, 9)}/`)));
    expect(blobPrefixes().sort()).toEqual([...fans].sort());
    // The same sizes either way.
    expect(some.doc.tags[0]).toEqual(whole.doc.tags.find((t) => t.repository === 'big/layer'));
  });

  it("lists each repository's _manifests/ once for both its tags and its revisions (a page holds them)", async () => {
    const { result, doc } = await scanJson([SOURCE], true);
    expect(result.exitCode, result.stderr).toBe(0);
    const listed = proxy.log.filter((e) => e.query.includes('list-type=2')).map((e) => ({ prefix: decodeURIComponent(/prefix=([^&]*)/.exec(e.query)![1]!), delimiter: e.query.includes('delimiter=') }));
    const flat = listed.filter((l) => !l.delimiter && l.prefix.endsWith('/_manifests/')).map((l) => l.prefix);
    const repositories = new Set(doc.tags.map((t) => t.repository));
    expect(repositories.size).toBeGreaterThan(3);
    expect(flat.sort()).toEqual([...repositories].map((r) => `${tree.v2Prefix}repositories/${r}/_manifests/`).sort());
    expect(listed.filter((l) => /_manifests\/(tags|revisions)/.test(l.prefix))).toEqual([]);
  });

  it('a repository with more keys than a page pages on; one whose flat listing fails: tags and revisions listed apart, the same names', async () => {
    const root = path.join(tempDir('regmigrate-long-'), 'registry');
    const b = new StorageBuilder(root);
    const repo = 'long/history';
    const image = addImage(b, repo, { format: 'docker', layers: [makeLayer('f', 'long history\n')] });
    // 350 tags (a current and an index link each) and 650 revisions no tag points at: 1,351 keys below _manifests/.
    for (let t = 0; t < 350; t++) b.tag(repo, `v${t}`, image.digest);
    for (let r = 0; r < 650; r++) b.writeLink(path.join(b.repoDir(repo), '_manifests', 'revisions', 'sha256', sha256Hex(`revision ${r}`), 'link'), `sha256:${sha256Hex(`revision ${r}`)}`);
    await writer.putTree(BUCKET, 'long/', root, 32);
    const fromDir = await scanJson([root], false);
    const fromS3 = await scanJson([`s3://${BUCKET}/long`], true);
    expect(fromS3.result.exitCode, fromS3.result.stderr).toBe(0);
    expect(fromS3.doc.tags).toHaveLength(350);
    expect(fromS3.doc.summary.untaggedManifests).toBe(650);
    expect(comparable(fromS3.doc)).toEqual(comparable(fromDir.doc));
    const prefixes = proxy.log.filter((e) => e.query.includes('list-type=2')).map((e) => decodeURIComponent(/prefix=([^&]*)/.exec(e.query)![1]!));
    expect(prefixes.filter((p) => p.endsWith(`${repo}/_manifests/`))).toHaveLength(2);
    expect(prefixes.filter((p) => /_manifests\/(tags|revisions)/.test(p))).toEqual([]);
    expect(linkGets()).toBe(0);
    proxy.reset();

    // A refused flat listing: the two listings it stands for are asked for instead, and give the same inventory.
    const { doc: clean } = await scanJson([SOURCE], true);
    proxy.reset();
    const victim = `${tree.v2Prefix}repositories/${tree.tags[0]!.repository}/_manifests/`;
    proxy.script = (req) => (req.url.searchParams.get('prefix') === victim && !req.url.searchParams.has('delimiter') ? { kind: 'error', status: 403, code: 'AccessDenied' } : { kind: 'forward' });
    const refused = await scanJson([SOURCE], true);
    expect(refused.result.exitCode, refused.result.stderr).toBe(0);
    expect(comparable(refused.doc)).toEqual(comparable(clean));
    expect(proxy.log.filter((e) => e.query.includes(encodeURIComponent(`${victim}tags/`)))).toHaveLength(1);
  });

  it('names the same storage however the root is written (with or without docker/registry/v2)', async () => {
    const short = await scanJson([SOURCE], true);
    const long = await scanJson([`${SOURCE}/docker/registry/v2`], true);
    expect(comparable(long.doc)).toEqual(comparable(short.doc));
    expect(long.doc.root).toBe(short.doc.root);
  });

  it('--include lists only below the selection', async () => {
    const { result, doc } = await scanJson([SOURCE, '--include', 'big/**'], true);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(doc.tags.map((t) => `${t.repository}:${t.tag}`)).toEqual(['big/layer:1']);
    const listed = proxy.log.filter((e) => e.query.includes('list-type=2')).map((e) => decodeURIComponent(/prefix=([^&]*)/.exec(e.query)![1]!));
    expect(listed.filter((p) => p.includes('/repositories/') && !p.includes('/repositories/big'))).toEqual([]);
  });

  it('walks more namespaces than it has reads in flight (a level waiting on the levels below holds no read)', async () => {
    // 80 projects of one repository: more than WALK_DIRECTORY_READS (64) directories that each wait on their own.
    const root = path.join(tempDir('regmigrate-wide-'), 'registry');
    const b = new StorageBuilder(root);
    const expected: string[] = [];
    for (let p = 0; p < 80; p++) {
      const repo = `project${p}/service`;
      b.tag(repo, 'v1', addImage(b, repo, { format: 'docker', layers: [makeLayer('f', `project ${p}\n`)] }).digest);
      expected.push(`${repo}:v1`);
    }
    await writer.putTree(BUCKET, 'wide/', root, 32);
    const { result, doc } = await scanJson([`s3://${BUCKET}/wide`], true);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(doc.tags.map((t) => `${t.repository}:${t.tag}`).sort()).toEqual(expected.sort());
  });

  it('reports the faults of a broken storage exactly as the same tree read from a directory', async () => {
    const fromDir = await scanJson([faultyDir], false);
    const fromS3 = await scanJson([`s3://${BUCKET}/faulty`], true);
    expect(fromS3.result.exitCode).toBe(1);
    expect(fromDir.result.exitCode).toBe(1);
    expect(comparable(fromS3.doc)).toEqual(comparable(fromDir.doc));
    expect(fromS3.doc.tags.flatMap((t) => t.faults.map((f) => f.kind))).toEqual(expect.arrayContaining(['missing-manifest', 'missing-blob', 'missing-child', 'invalid-manifest', 'invalid-link', 'invalid-name']));
    // A missing blob is named by its key in the bucket.
    const missing = fromS3.doc.tags.flatMap((t) => t.faults).find((f) => f.kind === 'missing-blob')!;
    expect(missing.message).toContain(`s3://${BUCKET}/faulty/docker/registry/v2/blobs/sha256/`);
  });

  it('--verify finds a blob whose bytes do not match its digest', async () => {
    const prefix = 'corrupt/docker/registry/v2/';
    await writer.putTree(BUCKET, prefix, tree.fsV2.replace(/\/$/, ''), 16);
    const victim = tree.tags.find((t) => t.repository === 'library/alpine') ?? tree.tags[0]!;
    const { doc: before } = await scanJson([`s3://${BUCKET}/corrupt`, '--include', victim.repository], true);
    const layer = before.tags[0]!.blobs.at(-1)!;
    const original = readFileSync(path.join(tree.fsV2, dataKey('', layer.digest)));
    const flipped = Buffer.from(original);
    flipped[flipped.length >> 1] = flipped[flipped.length >> 1]! ^ 0xff;
    await writer.put(BUCKET, dataKey(prefix, layer.digest), flipped);
    const { result, doc } = await scanJson([`s3://${BUCKET}/corrupt`, '--include', victim.repository, '--verify'], true);
    expect(result.exitCode).toBe(1);
    expect(doc.tags.flatMap((t) => t.faults).filter((f) => f.kind === 'corrupt-blob').map((f) => f.digest)).toContain(layer.digest);
    expectOnlyReads();
  });
});

describe('faults a store makes mid-run', () => {
  it('a storm of 503 SlowDown is ridden out: the same inventory', async () => {
    const { doc: clean } = await scanJson([SOURCE], true);
    proxy.reset();
    // Every third request refused once with SlowDown: each is retried with backoff.
    const refused = new Set<string>();
    proxy.script = (req) => {
      const key = `${req.method} ${req.url.pathname}${req.url.search}`;
      if (req.seen % 3 === 0 && !refused.has(key)) {
        refused.add(key);
        return { kind: 'error', status: 503, code: 'SlowDown' };
      }
      return { kind: 'forward' };
    };
    const { result, doc } = await scanJson([SOURCE], true);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(refused.size).toBeGreaterThan(5);
    expect(comparable(doc)).toEqual(comparable(clean));
  });

  it('a SIGINT during a SlowDown storm: the reads under backoff are not retried, the image is interrupted (exit 130)', async () => {
    const registry = await startRegistry();
    const bigKey = `/${BUCKET}/${dataKey(tree.v2Prefix, tree.big.layer)}`;
    // The big layer's bytes are refused with SlowDown every time: its read waits in backoff, attempt after attempt.
    proxy.script = (req) => (req.method === 'GET' && req.url.pathname === bigKey ? { kind: 'error', status: 503, code: 'SlowDown' } : { kind: 'forward' });
    const report = path.join(tempDir(), 'report.json');
    const child = execa(BIN, ['push', SOURCE, '--include', 'big/**', '--to', registry.host, '--report', report, '--s3-endpoint', proxy.endpoint], {
      reject: false,
      env: { ...env, REGMIGRATE_NO_PROGRESS: '1' },
    });
    const refusals = (): number => proxy.log.filter((e) => e.path === bigKey && e.outcome === 503).length;
    await waitFor(() => refusals() >= 1);
    child.kill('SIGINT');
    const atSignal = refusals();
    const result = await child;
    expect(result.exitCode, String(result.stderr)).toBe(130);
    // Not one more attempt after the signal (the policy allows five), and not a failure: interrupted.
    expect(refusals()).toBe(atSignal);
    const doc = JSON.parse(readFileSync(report, 'utf8')) as { images: Array<{ source: string; status: string; reason: string | null }> };
    expect(doc.images.map((i) => [i.source, i.status]), JSON.stringify(doc.images)).toEqual([[`${tree.big.repository}:${tree.big.tag}`, 'interrupted']]);
  });

  /**
   * A scan in which one tag link's GET gets `status`/`code` every time: its listing entry's ETag is not an MD5 (as
   * with SSE-KMS), so the link is read with a GET. Checks the rest are read; gives the victim's faults.
   */
  async function scanWithLinkFault(victim: S3Tree['tags'][number], status: number, code: string): Promise<ScanTag['faults']> {
    const linkPath = `/${BUCKET}/${tree.v2Prefix}repositories/${victim.repository}/_manifests/tags/${victim.tag}/current/link`;
    const opaque = opaqueETags((key) => linkPath.endsWith(key));
    proxy.script = (req) => opaque(req) ?? (req.url.pathname === linkPath ? { kind: 'error', status, code } : { kind: 'forward' });
    const { result, doc } = await scanJson([SOURCE], true);
    expect(result.exitCode).toBe(1);
    const hit = doc.tags.find((t) => t.repository === victim.repository && t.tag === victim.tag)!;
    expect(hit.faults.map((f) => f.kind)).toEqual(['unreadable']);
    expect(doc.tags.filter((t) => t.faults.length === 0)).toHaveLength(tree.tags.length);
    return hit.faults;
  }

  it('a 403 on one tag link mid-run: that tag is unreadable (never absent, never gone), the rest are read', async () => {
    const faults = await scanWithLinkFault(tree.tags[0]!, 403, 'AccessDenied');
    expect(faults[0]!.message).toContain('403 AccessDenied');
  });

  it('a tag link that answers 503 past every retry: that tag is unreadable (never absent, never gone), the rest are read', async () => {
    const faults = await scanWithLinkFault(tree.tags[1]!, 503, 'SlowDown');
    expect(faults[0]!.message).toMatch(/did not answer after \d+ attempts \(503 SlowDown\)/);
  });

  it("a 403 on a blob's listing and on its HEAD: unreadable, never a missing blob", async () => {
    const hex = tree.big.layer.slice('sha256:'.length);
    const fan = `${tree.v2Prefix}blobs/sha256/${hex.slice(0, 2)}/`;
    const dataPath = `/${BUCKET}/${dataKey(tree.v2Prefix, tree.big.layer)}`;
    proxy.script = (req) =>
      (req.method === 'GET' && req.url.searchParams.get('prefix') === fan) || (req.method === 'HEAD' && req.url.pathname === dataPath) ? { kind: 'error', status: 403, code: 'AccessDenied' } : { kind: 'forward' };
    const { result, doc } = await scanJson([SOURCE, '--include', 'big/**'], true);
    expect(result.exitCode).toBe(1);
    const faults = doc.tags.find((t) => t.repository === tree.big.repository)!.faults;
    expect(faults.map((f) => [f.kind, f.digest])).toEqual([['unreadable', tree.big.layer]]);
    // A HEAD answer has no body: the status is all the store says.
    expect(faults[0]!.message).toContain('access denied (403) with credentials from the environment');
  });

  it("a 403 on the listing of a whole scan's blobs: those blobs are asked for by HEAD, and a 403 there is unreadable, never missing", async () => {
    const hex = tree.big.layer.slice('sha256:'.length);
    const wide = `${tree.v2Prefix}blobs/sha256/${hex[0]}`;
    const dataPath = `/${BUCKET}/${dataKey(tree.v2Prefix, tree.big.layer)}`;
    proxy.script = (req) =>
      (req.method === 'GET' && req.url.searchParams.get('prefix') === wide) || (req.method === 'HEAD' && req.url.pathname === dataPath) ? { kind: 'error', status: 403, code: 'AccessDenied' } : { kind: 'forward' };
    const { result, doc } = await scanJson([SOURCE], true);
    expect(result.exitCode).toBe(1);
    expect(doc.tags.find((t) => t.repository === tree.big.repository)!.faults.map((f) => [f.kind, f.digest])).toEqual([['unreadable', tree.big.layer]]);
    // Every other blob under that digit was found by its HEAD.
    expect(doc.tags.filter((t) => t.faults.length === 0)).toHaveLength(tree.tags.length);
    expect(proxy.log.filter((e) => e.method === 'HEAD').length).toBeGreaterThan(0);
  });
});

describe('push, diff, sync and export from a bucket', () => {
  it('push (oci) lands every image at its digest; diff from the filesystem copy then finds all the same', async () => {
    const registry = await startRegistry({ schema1: true });
    // A connection cut in the middle of the big layer: the read resumes from the next byte.
    const bigKey = `/${BUCKET}/${dataKey(tree.v2Prefix, tree.big.layer)}`;
    let cut = false;
    proxy.script = (req) => {
      if (req.url.pathname === bigKey && req.method === 'GET' && !cut) {
        cut = true;
        return { kind: 'cut', afterBytes: 5 * 1024 * 1024 };
      }
      return { kind: 'forward' };
    };
    const push = await s3Cli(['push', SOURCE, '--to', registry.host]);
    expect(push.exitCode, push.stderr).toBe(0);
    expect(cut).toBe(true);
    expectOnlyReads();
    const diff = await runCli(['diff', tree.fsV2, '--to', registry.host, '--output', 'json']);
    const summary = (JSON.parse(diff.stdout) as { summary: Record<string, number> }).summary;
    expect(summary).toMatchObject({ new: 0, changed: 0, faulty: 0, same: tree.tags.length + 1 });
    // diff from the bucket says the same.
    const fromS3 = await s3Cli(['diff', SOURCE, '--to', registry.host, '--output', 'json']);
    expect((JSON.parse(fromS3.stdout) as { summary: Record<string, number> }).summary).toEqual(summary);
    await registry.stop();
  });

  it('push --shard k/2 of each shard together land everything', async () => {
    const registry = await startRegistry({ schema1: true });
    const shards = await Promise.all([0, 1].map((k) => s3Cli(['push', SOURCE, '--to', registry.host, '--shard', `${k}/2`, '--exclude', 'big/**'])));
    for (const s of shards) expect(s.exitCode, s.stderr).toBe(0);
    const diff = await runCli(['diff', tree.fsV2, '--to', registry.host, '--output', 'json', '--exclude', 'big/**']);
    expect((JSON.parse(diff.stdout) as { summary: Record<string, number> }).summary).toMatchObject({ new: 0, changed: 0, same: tree.tags.length });
    await registry.stop();
  });

  it('sync keeps a journal and deletes only what the store says is gone', async () => {
    const prefix = 'syncsrc/docker/registry/v2/';
    await writer.putTree(BUCKET, prefix, tree.fsV2, 16);
    const source = `s3://${BUCKET}/syncsrc`;
    const registry = await startRegistry({ schema1: true });
    const state = path.join(tempDir('regmigrate-s3sync-'), 'state.json');
    const first = await s3Cli(['sync', source, '--to', registry.host, '--state', state, '--exclude', 'big/**']);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`^sync: ${tree.tags.length} pushed, 0 unchanged, 0 failed`, 'm'));
    const again = await s3Cli(['sync', source, '--to', registry.host, '--state', state, '--exclude', 'big/**']);
    expect(again.stdout).toMatch(new RegExp(`^sync: 0 pushed, ${tree.tags.length} unchanged, 0 failed`, 'm'));
    // Two tags go from the source; a 403 on the second one's link keeps it: not known to be gone.
    // Tags whose manifest no other tag shares: a plain registry deletes a tag by deleting its manifest.
    const unique = tree.tags.filter((t) => !t.repository.startsWith('big/') && tree.tags.filter((u) => u.digest === t.digest).length === 1);
    const [gone, denied] = unique.slice(-2);
    const linkKey = (t: { repository: string; tag: string }): string => `${prefix}repositories/${t.repository}/_manifests/tags/${t.tag}/current/link`;
    await writer.delete(BUCKET, linkKey(gone!));
    await writer.delete(BUCKET, linkKey(denied!));
    proxy.script = (req) => (req.url.pathname === `/${BUCKET}/${linkKey(denied!)}` ? { kind: 'error', status: 403, code: 'AccessDenied' } : { kind: 'forward' });
    const deleting = await s3Cli(['sync', source, '--to', registry.host, '--state', state, '--exclude', 'big/**', '--delete-extra', '--yes', '--max-delete', '5']);
    expectOnlyReads();
    // The 403 makes the read of the source unclean: nothing is deleted at all.
    expect(deleting.exitCode).toBe(1);
    expect(deleting.stdout).not.toMatch(/^deleted /m);
    proxy.reset();
    const clean = await s3Cli(['sync', source, '--to', registry.host, '--state', state, '--exclude', 'big/**', '--delete-extra', '--yes', '--max-delete', '5']);
    expect(clean.exitCode, clean.stdout + clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(new RegExp(`^deleted \\S+ sha256:[0-9a-f]{64} \\(source ${gone!.repository.replace(/[/.]/g, '\\$&')}:${gone!.tag} is gone\\)`, 'm'));
    expectOnlyReads();
    await registry.stop();
  });

  it("the sync lock's key is the bucket and root, however written, and the endpoint", async () => {
    // The credential chain reads the process's environment, as in the CLI.
    const [short, long, other, direct] = await Promise.all([openWithEnv(SOURCE), openWithEnv(`${SOURCE}/docker/registry/v2/`), openWithEnv(`s3://${BUCKET}/faulty`), openWithEnv(SOURCE, rgw.endpoint)]);
    expect(long.key).toBe(short.key);
    expect(new Set([short.key, other.key, direct.key]).size).toBe(3);
    expect(short.key).toBe(`s3://${BUCKET}/prod/registry/docker/registry/v2@${new URL(proxy.endpoint).host}`);
  });

  it('sync --final reads every link again and ends with a diff that finds nothing to do', async () => {
    const registry = await startRegistry({ schema1: true });
    const state = path.join(tempDir('regmigrate-s3final-'), 'state.json');
    const final = await s3Cli(['sync', SOURCE, '--to', registry.host, '--state', state, '--include', 'library/**', '--final']);
    expect(final.exitCode, final.stdout + final.stderr).toBe(0);
    expectOnlyReads();
    await registry.stop();
  });

  it('push --via skopeo downloads into the dir: layouts, says so, and lands the images', async () => {
    const registry = await startRegistry();
    const push = await s3Cli(['push', SOURCE, '--to', registry.host, '--via', 'skopeo', '--include', 'library/**']);
    expect(push.exitCode, push.stderr).toBe(0);
    expect(push.stderr).toContain('the storage is an S3 bucket: its blobs are downloaded into the layouts, not hard-linked');
    const diff = await runCli(['diff', tree.fsV2, '--to', registry.host, '--output', 'json', '--include', 'library/**']);
    expect((JSON.parse(diff.stdout) as { summary: Record<string, number> }).summary).toMatchObject({ new: 0, changed: 0, faulty: 0 });
    expectOnlyReads();
    await registry.stop();
  });

  it('push --include-untagged moves the manifests no tag points at, by digest', async () => {
    const dir = path.join(tempDir('regmigrate-s3untagged-'), 'registry');
    const b = new StorageBuilder(dir);
    const tagged = addImage(b, 'team/app', { format: 'oci', layers: [makeLayer('a', 'tagged\n')], label: 'tagged' });
    b.tag('team/app', 'v1', tagged.digest);
    const untagged = addImage(b, 'team/app', { format: 'oci', layers: [makeLayer('a', 'untagged\n')], label: 'untagged' });
    await writer.putTree(BUCKET, 'untagged/docker/registry/v2/', path.join(dir, 'docker', 'registry', 'v2'));
    const registry = await startRegistry();
    const push = await s3Cli(['push', `s3://${BUCKET}/untagged`, '--to', registry.host, '--include-untagged']);
    expect(push.exitCode, push.stderr).toBe(0);
    for (const digest of [tagged.digest, untagged.digest]) {
      const res = await fetch(`http://${registry.host}/v2/team/app/manifests/${digest}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      expect(res.status, digest).toBe(200);
    }
    expectOnlyReads();
    await registry.stop();
  });

  it('export downloads the blobs into dir: layouts (no hard links) and says so; the files equal the filesystem export', async () => {
    const fromS3 = path.join(tempDir('regmigrate-s3export-'), 'out');
    const fromDir = path.join(tempDir('regmigrate-direxport-'), 'out');
    const s3 = await s3Cli(['export', SOURCE, '--out', fromS3]);
    const dir = await runCli(['export', tree.fsV2, '--out', fromDir]);
    expect(s3.exitCode, s3.stderr).toBe(0);
    expect(dir.exitCode, dir.stderr).toBe(0);
    expect(s3.stderr).toContain('the storage is an S3 bucket: its blobs are downloaded into the layouts, not hard-linked');
    expect(s3.stderr).toMatch(/files: 0 hard-linked, [1-9]\d* copied/);
    // A schema1 manifest is signed afresh at each export (a new key and time): only its presence is compared.
    const schema1 = (files: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries(files).map(([f, h]) => [f, f.startsWith('legacy/') && f.endsWith('manifest.json') ? 'signed' : h]));
    expect(schema1(hashTree(fromS3))).toEqual(schema1(hashTree(fromDir)));
    expectOnlyReads();
  });
});

describe('bad input, one line each', () => {
  it.each([
    ['a bucket that does not exist', ['scan', 's3://no-such-bucket/r'], {}, /^regmigrate: s3:\/\/no-such-bucket: no such bucket at http:\/\/127\.0\.0\.1:\d+$/m],
    ['wrong credentials', ['scan', SOURCE], { AWS_SECRET_ACCESS_KEY: 'wrong-secret-wrong-secret-wrong-secret00' }, /^regmigrate: s3:\/\/registry: access denied \(403 SignatureDoesNotMatch\) with credentials from the environment \(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY\) \(access key …\w{4}\)$/m],
    ['a root without docker/registry/v2', ['scan', `s3://${BUCKET}/prod`], {}, /^regmigrate: s3:\/\/registry\/prod: not a registry storage \(no prod\/docker\/registry\/v2\/repositories\/ or blobs\/ in bucket registry\)$/m],
  ])('%s', async (_, args, extraEnv, line) => {
    const result = await s3Cli(args, extraEnv);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(line);
    expect(result.stderr).not.toContain('wrong-secret');
    expect(result.stderr).not.toContain(rgw.secretKey);
    expect(result.stderr.split('\n').filter((l) => l.startsWith('regmigrate:'))).toHaveLength(1);
  });

  it('the root that holds a storage deeper is named in the hint', async () => {
    const result = await s3Cli(['scan', `s3://${BUCKET}/prod`]);
    expect(result.stderr).toMatch(/^hint: s3:\/\/registry\/prod\/ holds registry\/: give the registry's s3 rootdirectory/m);
  });

  it('a wrong region: the store names the right one', async () => {
    proxy.script = () => ({ kind: 'error', status: 301, code: 'PermanentRedirect', headers: { 'x-amz-bucket-region': 'eu-central-1' } });
    const result = await s3Cli(['scan', SOURCE, '--s3-region', 'us-west-2']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/^regmigrate: s3:\/\/registry: the bucket is in region eu-central-1, not us-west-2$/m);
    expect(result.stderr).toMatch(/^hint: pass --s3-region eu-central-1$/m);
  });

  it('a wrong endpoint (an HTTP server that is not S3)', async () => {
    const registry = await startRegistry();
    const result = await runCli(['scan', SOURCE, '--s3-endpoint', `http://${registry.host}`], { env });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/^regmigrate: s3:\/\/registry: unexpected answer 404/m);
    await registry.stop();
  });

  it('an endpoint where nothing listens: one line after the retries, the hint names --s3-endpoint', async () => {
    const result = await runCli(['scan', SOURCE, '--s3-endpoint', 'http://127.0.0.1:9'], { env });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/^regmigrate: s3:\/\/registry: the store did not answer after \d+ attempts \(ECONNREFUSED\)$/m);
    expect(result.stderr).toMatch(/^hint: no S3 answer from http:\/\/127\.0\.0\.1:9: check --s3-endpoint/m);
  });

  it('flags that do not fit are refused before any request', async () => {
    const result = await runCli(['scan', tree.fsV2, '--s3-endpoint', 'ftp://x', '--s3-region', 'EU WEST'], { env });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('--s3-endpoint and --s3-region go with an s3:// source');
    const bad = await runCli(['scan', SOURCE, '--s3-endpoint', 'ftp://x', '--s3-region', 'EU WEST'], { env });
    expect(bad.stderr).toContain('--s3-endpoint "ftp://x" is not an http:// or https:// URL');
    expect(bad.stderr).toContain('--s3-region "EU WEST" is not a region name');
  });

  it('a blob that vanishes mid-run (garbage collection): that image fails naming the key, the others land', async () => {
    const registry = await startRegistry({ schema1: true });
    const victim = tree.tags.find((t) => t.repository === 'big/layer')!;
    const bigKey = `/${BUCKET}/${dataKey(tree.v2Prefix, tree.big.layer)}`;
    // Listed at the start, gone when its bytes are asked for.
    proxy.script = (req) => (req.url.pathname === bigKey && req.method === 'GET' ? { kind: 'error', status: 404, code: 'NoSuchKey' } : { kind: 'forward' });
    const push = await s3Cli(['push', SOURCE, '--to', registry.host, '--include', 'big/**', '--include', 'library/**']);
    expect(push.exitCode).toBe(1);
    expect(push.stdout + push.stderr).toMatch(new RegExp(`${victim.repository}:${victim.tag}.*s3://registry/${dataKey(tree.v2Prefix, tree.big.layer)}: no such key`));
    const diff = await runCli(['diff', tree.fsV2, '--to', registry.host, '--output', 'json', '--include', 'library/**']);
    expect((JSON.parse(diff.stdout) as { summary: Record<string, number> }).summary).toMatchObject({ new: 0, changed: 0 });
    expectOnlyReads();
    await registry.stop();
  });
});

describe('the config file', () => {
  it('takes the source and the storage keys, and config check knows them', async () => {
    const file = path.join(tempDir('regmigrate-s3config-'), 'regmigrate.yaml');
    writeFileSync(file, `source: ${SOURCE}\nstorage:\n  s3Endpoint: ${proxy.endpoint}\n  s3Region: ${rgw.region}\nselection:\n  include: ['big/**']\n`);
    const check = await runCli(['config', 'check', file]);
    expect(check.exitCode, check.stderr).toBe(0);
    const scan = await runCli(['scan', '--config', file, '--output', 'json'], { env });
    expect(scan.exitCode, scan.stderr).toBe(0);
    expect((JSON.parse(scan.stdout) as ScanDoc).tags.map((t) => t.repository)).toEqual(['big/layer']);
    writeFileSync(file, `storage:\n  s3Endpoint: ftp://x\n  s3Region: EU\n  secretAccessKey: abc\n`);
    const bad = await runCli(['config', 'check', file]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('storage.s3Endpoint: "ftp://x" is not an http:// or https:// URL');
    expect(bad.stderr).toContain('storage.s3Region: "EU" is not a region name');
    expect(bad.stderr).toContain('storage.secretAccessKey: secrets are not allowed in the config file');
  });
});

/** Every file under `dir` by its relative path → sha256 of its bytes. */
function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    out[path.relative(dir, file)] = createHash('sha256').update(readFileSync(file)).digest('hex');
  }
  return out;
}

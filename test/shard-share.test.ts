/**
 * Shards that share: a blob needed by repositories in several shards crosses the wire once. Every shard agrees on
 * its home (the first repository needing it in source name order); the other shards mount it from there once it
 * has landed, and a shard run alone uploads it itself after REGMIGRATE_SHARD_WAIT_SECONDS.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addImage, makeLayer, StorageBuilder, type Layer } from '../fixtures/builder.js';
import { shardOf } from '../src/plan/shard.js';
import { runCli } from './helpers/cli.js';
import { startHarborDouble } from './helpers/harbor-double.js';
import { startProxy, type LoggedProxyRequest } from './helpers/proxy.js';
import { startRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

const MiB = 1024 * 1024;

interface SharedStorage {
  readonly root: string;
  /** Its home `team/alpha` is in shard 1 of 2; shard 0's team/bravo and team/foxtrot need it too. */
  readonly base: Layer;
  /** Its home `team/bravo` is in shard 0 of 2; shard 1's team/delta needs it too. */
  readonly other: Layer;
  /** `repo:tag` → the blob digests that repository must hold. */
  readonly images: ReadonlyMap<string, readonly string[]>;
}

function sharedStorage(): SharedStorage {
  const root = path.join(tempDir('regmigrate-src-'), 'registry');
  const b = new StorageBuilder(root);
  const base = makeLayer('base/rootfs', 'shared base\n', 2 * MiB, 1);
  const other = makeLayer('base/tools', 'second base\n', MiB, 1);
  const uses: Array<[string, Layer[]]> = [
    ['team/alpha', [base]],
    ['team/bravo', [base, other]],
    ['team/charlie', [base]],
    ['team/delta', [other]],
    ['team/foxtrot', [base]],
  ];
  const images = new Map<string, string[]>();
  for (const [repo, bases] of uses) {
    const app = makeLayer('srv/app', `${repo}\n`, 64 * 1024, 1);
    const image = addImage(b, repo, { format: 'oci', layers: [...bases, app], label: repo });
    b.tag(repo, 'v1', image.digest);
    images.set(`${repo}:v1`, [image.config, ...bases.map((l) => l.digest), app.digest]);
  }
  return { root, base, other, images };
}

/** Bytes of one blob that reached the registry: the bodies of uploads that name its digest. */
function bytesSentOf(log: readonly LoggedProxyRequest[], digest: string): number {
  const named = encodeURIComponent(digest);
  return log.filter((r) => (r.method === 'PUT' || r.method === 'PATCH') && r.path.includes('/blobs/uploads/') && (r.query.includes(named) || r.query.includes(digest))).reduce((sum, r) => sum + r.bytesIn, 0);
}

interface Report {
  summary: { bytesUploaded: number; verified: number };
  images: Array<{ destination: string; status: string }>;
}

/** Every image's blobs are in its repository and its tag is served: asked of the registry directly. */
async function expectComplete(registryHost: string, images: ReadonlyMap<string, readonly string[]>, which: (repository: string) => boolean): Promise<void> {
  for (const [ref, blobs] of images) {
    const [repository, tag] = ref.split(':') as [string, string];
    if (!which(repository)) continue;
    const manifest = await fetch(`http://${registryHost}/v2/${repository}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    expect(manifest.status, ref).toBe(200);
    for (const digest of blobs) expect((await fetch(`http://${registryHost}/v2/${repository}/blobs/${digest}`, { method: 'HEAD' })).status, `${ref} ${digest}`).toBe(200);
  }
}

describe('shards that share', () => {
  it('the storage puts each base’s home in the shard the tests expect', () => {
    expect(['team/alpha', 'team/charlie', 'team/delta'].map((r) => shardOf(r, 2, 'repository'))).toEqual([1, 1, 1]);
    expect(['team/bravo', 'team/foxtrot'].map((r) => shardOf(r, 2, 'repository'))).toEqual([0, 0]);
  });

  it('two shards run together: each shared base crosses the wire once, every image verified', async () => {
    const storage = sharedStorage();
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    const reports = tempDir('regmigrate-reports-');
    const runs = await Promise.all(
      [0, 1].map((k) => runCli(['push', storage.root, '--to', proxy.host, '--shard', `${k}/2`, '--report', path.join(reports, `shard-${k}.json`)])),
    );
    for (const run of runs) expect(run.exitCode, run.stderr).toBe(0);
    expect(bytesSentOf(proxy.log, storage.base.digest)).toBe(storage.base.blob.length);
    expect(bytesSentOf(proxy.log, storage.other.digest)).toBe(storage.other.blob.length);
    // Waiting is done with the mount itself, never by pulling the blob.
    expect(proxy.log.filter((r) => r.method === 'GET' && r.path.includes('/blobs/') && !r.path.includes('/uploads/'))).toEqual([]);
    const parts = [0, 1].map((k) => JSON.parse(readFileSync(path.join(reports, `shard-${k}.json`), 'utf8')) as Report);
    const unique = new Map<string, number>();
    for (const digests of storage.images.values()) for (const digest of digests) unique.set(digest, 0);
    const uploaded = proxy.log.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/')).length;
    expect(uploaded).toBe(unique.size);
    expect(parts.reduce((sum, p) => sum + p.summary.bytesUploaded, 0)).toBe(bytesSentOfAll(proxy.log));
    expect(parts.flatMap((p) => p.images.map((i) => `${i.destination} ${i.status}`)).sort()).toEqual([...storage.images.keys()].map((ref) => `${ref} verified`).sort());
    await expectComplete(registry.host, storage.images, () => true);
  });

  it('a shard run alone completes: after REGMIGRATE_SHARD_WAIT_SECONDS it uploads what the other shard would have', async () => {
    const storage = sharedStorage();
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    const report = path.join(tempDir('regmigrate-reports-'), 'shard-0.json');
    // The upload session each poll opened, in order (the registry's Location, as the proxy passes it on).
    const sessions: string[] = [];
    proxy.script = (req) =>
      req.method === 'POST' && req.url.searchParams.get('from') === 'team/alpha' ? { kind: 'forward', rewriteLocation: (location) => (sessions.push(new URL(location, proxy.url).pathname), location) } : { kind: 'forward' };
    const run = await runCli(['push', storage.root, '--to', proxy.host, '--shard', '0/2', '--report', report], { env: { REGMIGRATE_SHARD_WAIT_SECONDS: '1' } });
    expect(run.exitCode, run.stderr).toBe(0);
    // It asked for the base where shard 1 would have put it, with the mount, and gave up each session it opened...
    const polls = proxy.log.filter((r) => r.method === 'POST' && r.query.includes('from=team%2Falpha'));
    expect(polls.length).toBeGreaterThan(1);
    expect(sessions).toHaveLength(polls.length);
    const deleted = proxy.log.filter((r) => r.method === 'DELETE' && r.path.includes('/blobs/uploads/')).map((r) => r.path);
    expect(deleted).toEqual(sessions.slice(0, -1));
    // ...but the last: the base went up into that one, the only session that carried its bytes.
    const named = encodeURIComponent(storage.base.digest);
    expect(proxy.log.filter((r) => r.method === 'PUT' && r.query.includes(named)).map((r) => r.path)).toEqual([sessions.at(-1)]);
    expect(bytesSentOf(proxy.log, storage.base.digest)).toBe(storage.base.blob.length);
    const doc = JSON.parse(readFileSync(report, 'utf8')) as Report;
    const mine = [...storage.images.keys()].filter((ref) => shardOf(ref.split(':')[0]!, 2, 'repository') === 0);
    expect(doc.images.map((i) => `${i.destination} ${i.status}`).sort()).toEqual(mine.map((ref) => `${ref} verified`).sort());
    await expectComplete(registry.host, storage.images, (repository) => shardOf(repository, 2, 'repository') === 0);
  });

  it('on Harbor, a poll refused for want of pull on the home repository (no session) is the last: the shard uploads at once', async () => {
    // shared/base (shard 1, the base's home: first in name order) is in a project the developer of team may not
    // pull from: Harbor answers its mount 401 and opens no session [src/server/middleware/v2auth/access.go], so a
    // mount will never do and waiting for shard 1 would be for nothing.
    expect([shardOf('shared/base', 2, 'repository'), shardOf('team/app', 2, 'repository')]).toEqual([1, 0]);
    const root = path.join(tempDir('regmigrate-src-'), 'registry');
    const b = new StorageBuilder(root);
    const base = makeLayer('base/rootfs', 'shared base\n', 2 * MiB, 1);
    for (const repo of ['shared/base', 'team/app']) b.tag(repo, 'v1', addImage(b, repo, { format: 'oci', layers: [base, makeLayer('srv/app', `${repo}\n`, 64 * 1024, 1)], label: repo }).digest);
    const password = 'Sh4rd-dev-Pw9';
    const harbor = await startHarborDouble({ users: { dev: { password, roles: { team: 'developer' } } }, projects: [{ name: 'team', public: false }, { name: 'shared', public: false }] });
    const run = await runCli(['push', root, '--to', harbor.host, '--shard', '0/2', '--username', 'dev', '--password-stdin'], { input: `${password}\n`, env: { REGMIGRATE_SHARD_WAIT_SECONDS: '1' } });
    expect(run.exitCode, run.stderr).toBe(0);
    const polls = harbor.log.filter((r) => r.method === 'POST' && r.query.includes('from=shared%2Fbase'));
    // One poll: the mount, and the same request again with a fresh token (registry/http.ts), refused both times.
    expect(polls.map((r) => r.status)).toEqual([401, 401]);
    expect(harbor.log.filter((r) => r.method === 'DELETE')).toEqual([]);
    expect(harbor.tagDigest('team/app', 'v1')).toMatch(/^sha256:/);
  });

  it('on Harbor, an account that may not delete leaves the sessions its polls opened, and the shard still completes', async () => {
    const storage = sharedStorage();
    const password = 'Sh4rd-dev-Pw9';
    const harbor = await startHarborDouble({ users: { dev: { password, roles: { team: 'developer' } } }, projects: [{ name: 'team', public: false }] });
    const report = path.join(tempDir('regmigrate-reports-'), 'shard-0.json');
    const run = await runCli(['push', storage.root, '--to', harbor.host, '--shard', '0/2', '--username', 'dev', '--password-stdin', '--report', report], {
      input: `${password}\n`,
      env: { REGMIGRATE_SHARD_WAIT_SECONDS: '1' },
    });
    expect(run.exitCode, run.stderr).toBe(0);
    // A developer has no delete right [src/server/middleware/v2auth/access.go getAction]: the first DELETE is
    // refused, and the shard asks no more.
    const deletes = harbor.log.filter((r) => r.method === 'DELETE' && r.path.includes('/blobs/uploads/'));
    expect(deletes.length).toBeGreaterThan(0);
    expect(deletes.every((r) => r.status === 401 || r.status === 403)).toBe(true);
    expect(new Set(deletes.map((r) => r.path)).size).toBe(1);
    const doc = JSON.parse(readFileSync(report, 'utf8')) as Report;
    const mine = [...storage.images.keys()].filter((ref) => shardOf(ref.split(':')[0]!, 2, 'repository') === 0);
    expect(doc.images.map((i) => `${i.destination} ${i.status}`).sort()).toEqual(mine.map((ref) => `${ref} verified`).sort());
  });
});

function bytesSentOfAll(log: readonly LoggedProxyRequest[]): number {
  return log.filter((r) => (r.method === 'PUT' || r.method === 'PATCH') && r.path.includes('/blobs/uploads/')).reduce((sum, r) => sum + r.bytesIn, 0);
}

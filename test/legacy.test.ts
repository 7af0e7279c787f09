import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { scanStorage } from '../src/inventory/scan.js';
import type { SourceInventory } from '../src/inventory/types.js';
import { openStorage } from '../src/storage/open.js';
import { runCli } from './helpers/cli.js';
import { buildLegacyTree, type LegacyTree } from './helpers/legacy-tree.js';
import { startProxy } from './helpers/proxy.js';
import { startRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';
import { servedDigest } from './helpers/observe.js';
import { DOCKER_MANIFEST, SCHEMA1_SIGNED } from '../src/image/media-types.js';

interface Report {
  images: Array<{ source: string; destination: string; digest: string; status: string; reason: string | null; convertedTo: string | null; subject: string | null }>;
  summary: { verified: number; skipped: number; failed: number; blobsUploaded: number; blobsMounted: number; manifestsPut: number };
}


async function push(root: string, host: string, extra: string[] = []): Promise<{ exitCode: number; report: Report; stdout: string; stderr: string }> {
  const file = path.join(tempDir(), 'report.json');
  const result = await runCli(['push', root, '--to', host, '--report', file, ...extra]);
  return { exitCode: result.exitCode, report: JSON.parse(readFileSync(file, 'utf8')) as Report, stdout: result.stdout, stderr: result.stderr };
}

const row = (report: Report, source: string) => report.images.find((i) => i.source === source)!;

describe('what an old registry holds', () => {
  let tree: LegacyTree;
  let inventory: SourceInventory;
  beforeAll(async () => {
    tree = await buildLegacyTree();
    inventory = await scanStorage(await openStorage(tree.root), { include: [], exclude: [], verify: true, concurrency: 8, countUntagged: true });
  });

  it('scan: schema1 images, a foreign layer that is not a fault, odd link files, and the untagged count', () => {
    for (const [ref, digest] of Object.entries(tree.schema1)) {
      const entry = inventory.tags.find((t) => `${t.repository}:${t.tag}` === ref)!;
      expect(entry.mediaType).toBe('application/vnd.docker.distribution.manifest.v1+prettyjws');
      expect(entry.digest).toBe(digest);
      expect(entry.faults).toEqual([]);
    }
    const win = inventory.tags.find((t) => `${t.repository}:${t.tag}` === tree.foreign.ref)!;
    expect(win.faults).toEqual([]);
    expect(win.blobs.find((b) => b.digest === tree.foreign.foreignLayer)).toMatchObject({ foreign: true, present: false });
    expect(inventory.untaggedCount).toBe(1);
  });

  it('keep: schema1 lands with its own digest where schema1 is accepted, signed for the occasion', async () => {
    const registry = await startRegistry({ schema1: true, allowManifestUrls: true });
    const { exitCode, report } = await push(tree.root, registry.host);
    expect(exitCode, JSON.stringify(report.images.filter((i) => i.status === 'failed'))).toBe(0);
    for (const [ref, digest] of Object.entries(tree.schema1)) {
      expect(row(report, ref)).toMatchObject({ status: 'verified', digest, convertedTo: null });
      const head = await fetch(`${registry.url}/v2/${ref.replace(':', '/manifests/')}`, { method: 'HEAD', headers: { accept: 'application/vnd.docker.distribution.manifest.v1+prettyjws' } });
      expect(head.headers.get('docker-content-digest')).toBe(digest);
    }
  });

  it('keep falls back to convert where schema1 is refused; the converted image pulls and its diff IDs hold', async () => {
    const registry = await startRegistry({ allowManifestUrls: true });
    const { exitCode, report, stdout } = await push(tree.root, registry.host);
    expect(exitCode).toBe(0);
    for (const ref of Object.keys(tree.schema1)) {
      const r = row(report, ref);
      expect(r.status).toBe('verified');
      expect(r.convertedTo).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(r.convertedTo).not.toBe(r.digest);
      expect(r.reason).toMatch(/converted from schema1: the destination refused schema1/);
      expect(await servedDigest(registry.host, ref)).toBe(r.convertedTo);
    }
    expect(stdout).toMatch(/Notes:\n {2}legacy\/alpine:2016: converted from schema1/);
    // podman unpacks every layer and checks it against the config's diff IDs.
    const podman = tempDir('regmigrate-podman-');
    for (const ref of Object.keys(tree.schema1)) {
      const pull = await execa('podman', ['--storage-driver', 'vfs', '--root', path.join(podman, 'root'), '--runroot', path.join(podman, 'run'), 'pull', '--tls-verify=false', `${registry.host}/${ref}`], { reject: false });
      expect(pull.exitCode, String(pull.stderr)).toBe(0);
    }
  });

  it('convert converts everywhere, deterministically; skip reports and leaves out', async () => {
    const registry = await startRegistry({ schema1: true, allowManifestUrls: true });
    const converted = await push(tree.root, registry.host, ['--schema1', 'convert']);
    const again = await push(tree.root, (await startRegistry({ allowManifestUrls: true })).host, ['--schema1', 'convert']);
    for (const ref of Object.keys(tree.schema1)) {
      expect(row(converted.report, ref).convertedTo).toBe(row(again.report, ref).convertedTo);
      expect(row(converted.report, ref).reason).toBe('converted from schema1 (--schema1 convert)');
    }
    const skipRegistry = await startRegistry({ schema1: true, allowManifestUrls: true });
    const skipped = await push(tree.root, skipRegistry.host, ['--schema1', 'skip']);
    expect(skipped.exitCode).toBe(0);
    for (const ref of Object.keys(tree.schema1)) {
      expect(row(skipped.report, ref)).toMatchObject({ status: 'skipped', reason: 'schema1 image (--schema1 skip)' });
      expect(await servedDigest(skipRegistry.host, ref)).toBeUndefined();
    }
  });

  it('pushes a Windows-style manifest as is, without its absent foreign layer', async () => {
    const registry = await startRegistry({ allowManifestUrls: true });
    const proxy = await startProxy(registry.host);
    const { report } = await push(tree.root, proxy.host);
    expect(row(report, tree.foreign.ref)).toMatchObject({ status: 'verified', digest: tree.foreign.digest });
    expect(proxy.log.some((r) => r.query.includes(tree.foreign.foreignLayer.slice(7)) || r.path.includes(tree.foreign.foreignLayer))).toBe(false);
  });

  it('says clearly when a destination refuses foreign-layer URLs, and pushes the rest', async () => {
    const registry = await startRegistry();
    const { exitCode, report } = await push(tree.root, registry.host, ['--retries', '1', '--include', 'win/**', '--include', 'signed/**']);
    expect(exitCode).toBe(1);
    expect(row(report, tree.foreign.ref).reason).toMatch(/^foreign-layer: the destination refuses manifests whose layers point at URLs \(Windows base layers\): .*sha256:f{64}/);
    expect(row(report, 'signed/app:v1').status).toBe('verified');
  });

  it('pushes signatures and referrers after their subject, and groups them under it', async () => {
    const registry = await startRegistry({ allowManifestUrls: true });
    const proxy = await startProxy(registry.host);
    const { report, stdout } = await push(tree.root, proxy.host);
    const puts = proxy.log.filter((r) => r.method === 'PUT' && r.path.startsWith('/v2/signed/app/manifests/')).map((r) => r.path.split('/').pop());
    const subjectAt = puts.indexOf('v1');
    expect(subjectAt).toBeGreaterThanOrEqual(0);
    expect(puts.indexOf(tree.signed.sigTag)).toBeGreaterThan(subjectAt);
    expect(puts.indexOf('sbom')).toBeGreaterThan(subjectAt);
    expect(row(report, `signed/app:${tree.signed.sigTag}`).subject).toBe(tree.signed.subjectDigest);
    expect(row(report, 'signed/app:sbom')).toMatchObject({ status: 'verified', subject: tree.signed.subjectDigest });
    expect(stdout).toMatch(/^signed\/app:v1 .*\n {2}↳ signed\/app:(sbom|sha256-)/m);
  });

  it('--include-untagged pushes the manifest no tag points at, by digest', async () => {
    const registry = await startRegistry({ allowManifestUrls: true });
    const without = await push(tree.root, registry.host);
    expect(without.report.images.some((i) => i.source.includes('@'))).toBe(false);
    const { exitCode, report } = await push(tree.root, registry.host, ['--include-untagged']);
    expect(exitCode).toBe(0);
    const untagged = row(report, `${tree.untagged.repository}@${tree.untagged.digest}`);
    expect(untagged).toMatchObject({ status: 'verified', destination: `${tree.untagged.repository}@${tree.untagged.digest}` });
    expect(await servedDigest(registry.host, `${tree.untagged.repository}@${tree.untagged.digest}`)).toBe(tree.untagged.digest);
  });

  it('into the Harbor double too: schema1 kept, foreign layer and referrers', async () => {
    const { startHarborDouble } = await import('./helpers/harbor-double.js');
    const harbor = await startHarborDouble({ users: { admin: { password: 'Legacy-1', admin: true } }, projects: [] });
    const file = path.join(tempDir(), 'report.json');
    const result = await runCli(['push', tree.root, '--to', harbor.host, '--report', file, '--username', 'admin', '--password-stdin'], { input: 'Legacy-1\n' });
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    const report = JSON.parse(readFileSync(file, 'utf8')) as Report;
    for (const [ref, digest] of Object.entries(tree.schema1)) expect(row(report, ref)).toMatchObject({ status: 'verified', digest, convertedTo: null });
    expect([...harbor.projects.keys()].sort()).toEqual(['legacy', 'signed', 'win']);
    // Harbor's registry keeps schema1, tagged through its API at the payload digest: a second push finds it there.
    const again = await runCli(['push', tree.root, '--to', harbor.host, '--report', file, '--username', 'admin', '--password-stdin'], { input: 'Legacy-1\n' });
    expect(again.exitCode, again.stdout + again.stderr).toBe(0);
    const second = JSON.parse(readFileSync(file, 'utf8')) as Report;
    for (const [ref, digest] of Object.entries(tree.schema1)) expect(row(second, ref)).toMatchObject({ status: 'skipped-existing', digest, convertedTo: null });
    expect(second.summary).toMatchObject({ verified: 0, failed: 0, blobsUploaded: 0, blobsMounted: 0, manifestsPut: 0 });
  });
});

describe('converted schema1 images stay in sync', () => {
  it('sync records the conversion; the next sync and diff --state see the pair as the same', async () => {
    const tree = await buildLegacyTree();
    const registry = await startRegistry({ allowManifestUrls: true });
    const state = path.join(tempDir(), 'state.json');
    const first = await runCli(['sync', tree.root, '--to', registry.host, '--state', state]);
    expect(first.exitCode, first.stdout).toBe(0);
    const journal = JSON.parse(readFileSync(state, 'utf8')) as { tags: Record<string, { digest: string; destinationDigest: string | null }> };
    expect(journal.tags['legacy/alpine:2016']!.destinationDigest).toMatch(/^sha256:/);
    const second = await runCli(['sync', tree.root, '--to', registry.host, '--state', state]);
    expect(second.stdout).toMatch(/^sync: 0 pushed, \d+ unchanged, 0 failed/m);
    const diff = await runCli(['diff', tree.root, '--to', registry.host, '--state', state, '--output', 'json']);
    const doc = JSON.parse(diff.stdout) as { tags: Array<{ destination: string; status: string }> };
    expect(doc.tags.find((t) => t.destination === 'legacy/alpine:2016')!.status).toBe('same');
    const withoutJournal = JSON.parse((await runCli(['diff', tree.root, '--to', registry.host, '--output', 'json'])).stdout) as typeof doc;
    expect(withoutJournal.tags.find((t) => t.destination === 'legacy/alpine:2016')!.status).toBe('changed');
  });
});

describe('a second push of converted schema1 images, without a journal', () => {
  it('converts at once where schema1 is refused, then recognises its conversions: nothing uploaded, mounted or put', async () => {
    const tree = await buildLegacyTree();
    const registry = await startRegistry({ allowManifestUrls: true });
    const proxy = await startProxy(registry.host);
    const first = await push(tree.root, proxy.host);
    expect(first.exitCode, JSON.stringify(first.report.images.filter((i) => i.status === 'failed'))).toBe(0);
    // The registry's refusal of schema1 is known from its answer: one schema1 PUT per image, no retries.
    const schema1Puts = proxy.log.filter((r) => r.method === 'PUT' && r.headers['content-type'] === SCHEMA1_SIGNED);
    expect(schema1Puts.map((r) => r.status)).toEqual(Object.keys(tree.schema1).map(() => 500));
    const convertedTo = new Map(Object.keys(tree.schema1).map((ref) => [ref, row(first.report, ref).convertedTo]));
    for (const to of convertedTo.values()) expect(to).toMatch(/^sha256:[0-9a-f]{64}$/);

    // No layer is decompressed to recognise a conversion: the layers' bytes, zeroed (same sizes), are never read.
    const blob = (digest: string) => path.join(tree.root, 'docker/registry/v2/blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data');
    for (const digest of Object.values(tree.schema1)) {
      const { fsLayers } = JSON.parse(readFileSync(blob(digest), 'utf8')) as { fsLayers: Array<{ blobSum: string }> };
      for (const { blobSum } of fsLayers) writeFileSync(blob(blobSum), Buffer.alloc(statSync(blob(blobSum)).size));
    }
    proxy.reset();
    const second = await push(tree.root, proxy.host);
    expect(second.exitCode).toBe(0);
    for (const [ref, to] of convertedTo) {
      expect(row(second.report, ref)).toMatchObject({ status: 'skipped-existing', digest: tree.schema1[ref], convertedTo: to });
      expect(await servedDigest(registry.host, ref)).toBe(to);
    }
    expect(second.report.summary).toMatchObject({ verified: 0, skipped: second.report.images.length, failed: 0, blobsUploaded: 0, blobsMounted: 0, manifestsPut: 0 });
    // Only reads reached the destination.
    expect(proxy.log.filter((r) => r.method !== 'GET' && r.method !== 'HEAD')).toEqual([]);
  });

  it('a manifest at the tag that is not the conversion is not taken for it: the image is converted and put again', async () => {
    const tree = await buildLegacyTree();
    const registry = await startRegistry({ allowManifestUrls: true });
    const first = await push(tree.root, registry.host);
    const ref = 'legacy/alpine:2016';
    const to = row(first.report, ref).convertedTo!;
    // Another image under the same layers: the converted manifest with a config whose history differs.
    const manifest = JSON.parse((await (await fetch(`${registry.url}/v2/legacy/alpine/manifests/${to}`, { headers: { accept: DOCKER_MANIFEST } })).text())) as { config: { digest: string; size: number } };
    const config = JSON.parse(await (await fetch(`${registry.url}/v2/legacy/alpine/blobs/${manifest.config.digest}`)).text()) as { history: unknown[] };
    const other = Buffer.from(JSON.stringify({ ...config, history: [] }));
    const otherDigest = `sha256:${createHash('sha256').update(other).digest('hex')}`;
    const session = await fetch(`${registry.url}/v2/legacy/alpine/blobs/uploads/`, { method: 'POST' });
    const location = new URL(session.headers.get('location')!, registry.url);
    location.searchParams.set('digest', otherDigest);
    expect((await fetch(location, { method: 'PUT', body: other, headers: { 'content-type': 'application/octet-stream' } })).status).toBe(201);
    const otherManifest = JSON.stringify({ ...manifest, config: { ...manifest.config, digest: otherDigest, size: other.length } });
    expect((await fetch(`${registry.url}/v2/legacy/alpine/manifests/2016`, { method: 'PUT', body: otherManifest, headers: { 'content-type': DOCKER_MANIFEST } })).status).toBe(201);

    const second = await push(tree.root, registry.host, ['--include', 'legacy/alpine']);
    expect(row(second.report, ref)).toMatchObject({ status: 'verified', convertedTo: to });
    expect(second.report.summary.manifestsPut).toBe(1);
    expect(await servedDigest(registry.host, ref)).toBe(to);
  });
});

describe('schema1 through the skopeo route', () => {
  it('export writes schema1 signed, so skopeo pushes it and it keeps its digest', async () => {
    const tree = await buildLegacyTree();
    const registry = await startRegistry({ schema1: true, allowManifestUrls: true });
    const file = path.join(tempDir(), 'report.json');
    const result = await runCli(['push', tree.root, '--to', registry.host, '--via', 'skopeo', '--report', file, '--include', 'legacy/**']);
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    const report = JSON.parse(readFileSync(file, 'utf8')) as Report;
    for (const [ref, digest] of Object.entries(tree.schema1)) expect(row(report, ref)).toMatchObject({ status: 'verified', digest });
    // Re-exporting keeps the signed manifest (same payload) instead of rewriting it.
    const out = path.join(tempDir(), 'layouts');
    await runCli(['export', tree.root, '--out', out, '--include', 'legacy/**']);
    const again = await runCli(['export', tree.root, '--out', out, '--include', 'legacy/**']);
    expect(again.stderr).toMatch(/files: 0 hard-linked, 0 copied/);
  });
});

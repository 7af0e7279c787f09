/**
 * A sync with its journal does not read the images whose tag link still names the digest the journal verified: it
 * asks the destination about them and takes their report rows from the journal. `--full-read` reads everything.
 * Each test has its own storage, destination and journal.
 */
import { execa } from 'execa';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addImage, makeLayer, MEDIA, StorageBuilder } from '../fixtures/builder.js';
import { DEMO_STORAGE, runCli } from './helpers/cli.js';
import { startHarborDouble } from './helpers/harbor-double.js';
import { startProxy, type ScriptedProxy } from './helpers/proxy.js';
import { startRegistry, type RunningRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

interface ReportImage {
  source: string;
  destination: string;
  digest: string;
  mediaType: string | null;
  size: number;
  status: string;
  reason: string | null;
  subject: string | null;
  destinationPushedAt?: string | null;
}

interface Setup {
  readonly root: string;
  readonly builder: StorageBuilder;
  readonly registry: RunningRegistry;
  readonly proxy: ScriptedProxy;
  readonly state: string;
  readonly dir: string;
}

/** The demo storage plus an OCI signature of team/api:1.1 (an image with a `subject`), a destination, a journal. */
async function setUp(): Promise<Setup> {
  const dir = tempDir('regmigrate-unread-');
  const root = path.join(dir, 'registry');
  cpSync(DEMO_STORAGE, root, { recursive: true, preserveTimestamps: true });
  const builder = new StorageBuilder(root);
  const api11 = link(root, 'team/api', '1.1');
  const bytes = readFileSync(builder.blobPath(api11));
  const signature = addImage(builder, 'team/api', { format: 'oci', layers: [makeLayer('sig', 'signature of api 1.1\n')], label: 'sig', subject: { mediaType: MEDIA.ociManifest, digest: api11, size: bytes.length } });
  builder.tag('team/api', 'sig', signature.digest);
  const registry = await startRegistry();
  const proxy = await startProxy(registry.host);
  return { root, builder, registry, proxy, state: path.join(dir, 'state.json'), dir };
}

function link(root: string, repository: string, tag: string): string {
  return readFileSync(path.join(root, 'docker/registry/v2/repositories', repository, '_manifests/tags', tag, 'current/link'), 'utf8').trim();
}

async function sync(s: Setup, report: string, extra: string[] = []): Promise<{ exitCode: number; stdout: string; stderr: string; images: ReportImage[] }> {
  const file = path.join(s.dir, report);
  const run = await runCli(['sync', s.root, '--to', s.proxy.host, '--state', s.state, '--report', file, ...extra]);
  let images: ReportImage[] = [];
  try {
    images = (JSON.parse(readFileSync(file, 'utf8')) as { images: ReportImage[] }).images;
  } catch {
    // No report: the assertions on the exit status say why.
  }
  return { ...run, images };
}

/** A report row without its status: what a tag's row says whether it was pushed now or found unchanged. */
/** A report row without what only the run that pushed the image knows: its status and Harbor's push time of it. */
function row(image: ReportImage): Omit<ReportImage, 'status' | 'destinationPushedAt'> {
  const { status: _status, destinationPushedAt: _pushed, ...rest } = image;
  return rest;
}

describe('sync with its journal reads only what changed', () => {
  it('asks the destination about an unchanged tag without reading it: a manifest removed since goes unseen, and --full-read finds it', async () => {
    const s = await setUp();
    const first = await sync(s, 'first.json');
    expect(first.exitCode, first.stdout + first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^sync: 8 pushed, 0 unchanged, 0 failed/m);
    const journal = JSON.parse(readFileSync(s.state, 'utf8')) as { tags: Record<string, { mediaType: string; size: number; subject?: string }> };
    expect(journal.tags['team/api:sig']).toMatchObject({ mediaType: MEDIA.ociManifest, subject: link(s.root, 'team/api', '1.1') });
    expect(journal.tags['infra/tools/kubectl:1.29']).toMatchObject({ mediaType: MEDIA.dockerList, size: first.images.find((i) => i.source === 'infra/tools/kubectl:1.29')!.size });

    // The manifest of team/api:1.0 goes; its tag link still names it.
    const api10 = link(s.root, 'team/api', '1.0');
    rmSync(s.builder.blobPath(api10));
    s.proxy.reset();
    const second = await sync(s, 'second.json');
    expect(second.exitCode, second.stdout + second.stderr).toBe(0);
    expect(second.stdout).toMatch(/^sync: 0 pushed, 8 unchanged, 0 failed/m);
    // Every tag was asked about at the destination.
    const asked = s.proxy.log.filter((r) => r.method === 'GET' && r.path.includes('/manifests/')).map((r) => r.path);
    expect(asked.sort()).toEqual(first.images.map((i) => `/v2/${i.destination.replace(/:([^:]+)$/, '/manifests/$1')}`).sort());
    // Each row as the run that pushed it wrote it: digest, media type, size, subject.
    expect(second.images.map((i) => i.status)).toEqual(first.images.map(() => 'skipped-existing'));
    expect(second.images.map(row)).toEqual(first.images.map(row));
    expect(second.images.find((i) => i.source === 'team/api:sig')?.subject).toBe(link(s.root, 'team/api', '1.1'));

    // A tag selection: the signature follows the image it signs, as the journal recorded its subject.
    const selected = await sync(s, 'selected.json', ['--tag-include', '1.1']);
    expect(selected.exitCode, selected.stdout + selected.stderr).toBe(0);
    expect(selected.images.map((i) => i.source)).toEqual(['team/api:1.1', 'team/api:sig']);

    // --trust-state's rows come from the journal too.
    const trusted = await sync(s, 'trusted.json', ['--trust-state']);
    expect(trusted.exitCode, trusted.stdout + trusted.stderr).toBe(0);
    expect(trusted.images.map(row)).toEqual(first.images.map(row));

    const full = await sync(s, 'full.json', ['--full-read']);
    expect(full.exitCode, full.stdout + full.stderr).toBe(1);
    expect(full.stdout).toMatch(new RegExp(`^failed team/api:1\\.0 -> team/api:1\\.0: missing-manifest: manifest ${api10} is missing`, 'm'));
    expect(full.stdout).toMatch(/^sync: 0 pushed, 7 unchanged, 1 failed/m);
  });

  it('on Harbor too: asked through its API, not read, the rows as the pushing run wrote them', async () => {
    const harbor = await startHarborDouble({ users: { admin: { password: 'Unread-pass-1', admin: true } }, projects: [] });
    const dir = tempDir('regmigrate-unread-harbor-');
    const root = path.join(dir, 'registry');
    cpSync(DEMO_STORAGE, root, { recursive: true, preserveTimestamps: true });
    const env = { REGMIGRATE_USERNAME: 'admin', REGMIGRATE_PASSWORD: 'Unread-pass-1' };
    const state = path.join(dir, 'state.json');
    const run = async (report: string): Promise<{ exitCode: number; stdout: string; images: ReportImage[] }> => {
      const result = await runCli(['sync', root, '--to', harbor.host, '--state', state, '--report', path.join(dir, report)], { env });
      return { ...result, images: result.exitCode === 0 ? (JSON.parse(readFileSync(path.join(dir, report), 'utf8')) as { images: ReportImage[] }).images : [] };
    };
    const first = await run('first.json');
    expect(first.exitCode, first.stdout).toBe(0);
    rmSync(new StorageBuilder(root).blobPath(link(root, 'team/api', '1.0')));
    const second = await run('second.json');
    expect(second.exitCode, second.stdout).toBe(0);
    expect(second.stdout).toMatch(/^sync: 0 pushed, 7 unchanged, 0 failed/m);
    expect(second.images.map(row)).toEqual(first.images.map(row));
  });

  it('reads a tag the destination no longer holds at the journal digest: pushed again, or failed if it is faulty now', async () => {
    const s = await setUp();
    const first = await sync(s, 'first.json');
    expect(first.exitCode).toBe(0);
    // Someone re-points team/api:1.0 and library/busybox:1.36 at the destination; busybox's layer is gone from the source.
    const copy = (from: string, to: string) =>
      execa('skopeo', ['copy', '--quiet', '--all', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${s.registry.host}/${from}`, `docker://${s.registry.host}/${to}`]);
    await copy('team/api:1.1', 'team/api:1.0');
    await copy('library/alpine:3.19', 'library/busybox:1.36');
    const busybox = JSON.parse(readFileSync(s.builder.blobPath(link(s.root, 'busybox', '1.36')), 'utf8')) as { layers: Array<{ digest: string }> };
    rmSync(s.builder.blobPath(busybox.layers[0]!.digest));
    const again = await sync(s, 'again.json');
    expect(again.exitCode, again.stdout + again.stderr).toBe(1);
    const api10 = link(s.root, 'team/api', '1.0');
    expect(again.stdout).toMatch(new RegExp(`^pushed team/api:1\\.0 -> team/api:1\\.0 ${api10}$`, 'm'));
    expect(again.stdout).toMatch(new RegExp(`^failed busybox:1\\.36 -> library/busybox:1\\.36: missing-blob: layer blob ${busybox.layers[0]!.digest} is missing`, 'm'));
    expect(again.stdout).toMatch(/^sync: 1 pushed, 6 unchanged, 1 failed/m);
    const served = await fetch(`${s.registry.url}/v2/team/api/manifests/1.0`, { headers: { accept: MEDIA.ociManifest } });
    expect(served.headers.get('docker-content-digest')).toBe(api10);
    // The report row of the tag read again is what its first push wrote.
    expect(row(again.images.find((i) => i.source === 'team/api:1.0')!)).toEqual(row(first.images.find((i) => i.source === 'team/api:1.0')!));
  });

  it('a blob only unchanged images hold is mounted from one of them, or not asked about where one holds it already', async () => {
    const s = await setUp();
    expect((await sync(s, 'first.json')).exitCode).toBe(0);
    // The demo's base layer, held at the destination by library/alpine, team/api and infra/tools: a new repository
    // on it, and a new tag of team/api on it.
    const base = makeLayer('etc/os-release', 'NAME="fixture-base"\n', 24 * 1024);
    const webLayer = makeLayer('srv/web', 'web v1\n', 2 * 1024);
    const web = addImage(s.builder, 'team/web', { format: 'oci', layers: [base, webLayer], label: 'web-1' });
    s.builder.tag('team/web', '1', web.digest);
    const apiLayer = makeLayer('srv/app', 'api v1.2\n', 2 * 1024);
    const api12 = addImage(s.builder, 'team/api', { format: 'oci', layers: [base, apiLayer], label: 'api-1.2' });
    s.builder.tag('team/api', '1.2', api12.digest);
    s.proxy.reset();
    const run = await sync(s, 'new.json');
    expect(run.exitCode, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^sync: 2 pushed, 8 unchanged, 0 failed/m);
    const uploaded = s.proxy.log.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/'));
    const own = [webLayer.blob.length, apiLayer.blob.length, ...[web.config, api12.config].map((d) => readFileSync(s.builder.blobPath(d)).length)];
    expect(uploaded.reduce((n, r) => n + r.bytesIn, 0)).toBe(own.reduce((a, b) => a + b));
    // One mount, into the new repository; team/api holds the base already and is not asked about it.
    const aboutBase = s.proxy.log.filter((r) => r.path.includes('/blobs/') && (r.path.includes(base.digest) || r.query.includes(encodeURIComponent(base.digest))));
    expect(aboutBase).toEqual([expect.objectContaining({ method: 'POST', path: '/v2/team/web/blobs/uploads/', status: 201, query: expect.stringMatching(/from=(library%2Falpine|team%2Fapi|infra%2Ftools)(&|$)/) })]);
  });

  it('reads the tags of a journal without the report fields once, and keeps them from then on', async () => {
    const s = await setUp();
    const first = await sync(s, 'first.json');
    expect(first.exitCode).toBe(0);
    // The journal as an older regmigrate wrote it: no media type, size or subject.
    const journal = JSON.parse(readFileSync(s.state, 'utf8')) as { tags: Record<string, Record<string, unknown>> };
    for (const entry of Object.values(journal.tags)) {
      delete entry.mediaType;
      delete entry.size;
      delete entry.subject;
    }
    writeFileSync(s.state, JSON.stringify(journal, null, 1));
    const api10 = link(s.root, 'team/api', '1.0');
    const manifest = readFileSync(s.builder.blobPath(api10));
    rmSync(s.builder.blobPath(api10));
    // Its entries have nothing to make the rows of: every tag is read, and the missing manifest is seen.
    const old = await sync(s, 'old.json');
    expect(old.exitCode, old.stdout + old.stderr).toBe(1);
    expect(old.stdout).toMatch(/^failed team\/api:1\.0 -> team\/api:1\.0: missing-manifest: /m);
    writeFileSync(s.builder.blobPath(api10), manifest);
    const read = await sync(s, 'read.json');
    expect(read.exitCode, read.stdout + read.stderr).toBe(0);
    expect(read.images.map(row)).toEqual(first.images.map(row));
    const upgraded = JSON.parse(readFileSync(s.state, 'utf8')) as { tags: Record<string, { mediaType: string | null; size: number | null }> };
    expect(Object.values(upgraded.tags).every((e) => e.mediaType !== null && e.size !== null)).toBe(true);
    // From then on an unchanged tag is not read.
    rmSync(s.builder.blobPath(api10));
    const unread = await sync(s, 'unread.json');
    expect(unread.exitCode, unread.stdout + unread.stderr).toBe(0);
    expect(unread.images.map(row)).toEqual(first.images.map(row));
  });

  it('--full-read needs --state and does not go with --trust-state', async () => {
    const root = path.join(tempDir(), 'registry');
    cpSync(DEMO_STORAGE, root, { recursive: true });
    const alone = await runCli(['sync', root, '--to', '127.0.0.1:1', '--full-read']);
    expect(alone.exitCode).toBe(2);
    expect(alone.stderr).toMatch(/--full-read goes with --state/);
    const both = await runCli(['sync', root, '--to', '127.0.0.1:1', '--state', path.join(tempDir(), 's.json'), '--full-read', '--trust-state']);
    expect(both.exitCode).toBe(2);
    expect(both.stderr).toMatch(/--full-read reads every image, --trust-state skips those the journal vouches for: give one of them/);
  });
});

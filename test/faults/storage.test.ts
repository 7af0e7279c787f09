/** Bad storage: each problem is one image's error, the run goes on, nothing crashes, nothing is written. */
import { execa, execaSync } from 'execa';
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { sha256, StorageBuilder } from '../../fixtures/builder.js';
import { buildDemoStorage } from '../../fixtures/trees.js';
import { runCli } from '../helpers/cli.js';
import { startProxy } from '../helpers/proxy.js';
import { startRegistry } from '../helpers/registry.js';
import { openUp, runAsNobody } from '../helpers/nobody.js';
import { tempDir } from '../helpers/tmp.js';

interface ScanJson {
  tags: Array<{ repository: string; tag: string; status: string; faults: Array<{ kind: string; message: string }> }>;
}

function buildBadStorage(): { root: string; rotten: string } {
  const root = path.join(tempDir('regmigrate-bad-'), 'registry');
  buildDemoStorage(root);
  const b = new StorageBuilder(root);
  const tagDir = (repo: string, tag: string) => path.join(b.repoDir(repo), '_manifests', 'tags', tag, 'current');
  // A link that is a symlink to a file outside the storage: never followed.
  mkdirSync(tagDir('bad/outside', 'v1'), { recursive: true });
  symlinkSync('/etc/hostname', path.join(tagDir('bad/outside', 'v1'), 'link'));
  // A symlink loop among the repositories: the walk does not follow it.
  symlinkSync('.', path.join(b.v2, 'repositories', 'loop'));
  // Binary garbage in a link and in a manifest (with its right digest: it is what was stored).
  mkdirSync(tagDir('bad/garbage-link', 'v1'), { recursive: true });
  writeFileSync(path.join(tagDir('bad/garbage-link', 'v1'), 'link'), Buffer.from([0, 1, 2, 0xff, 0xfe]));
  const junk = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0xff]);
  b.tag('bad/garbage-manifest', 'v1', b.addManifest('bad/garbage-manifest', junk));
  // A manifest over 4 MiB.
  const huge = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { digest: sha256('x'), size: 1 }, layers: [], annotations: { pad: 'x'.repeat(5 * 1024 * 1024) } }));
  b.tag('bad/huge', 'v1', b.addManifest('bad/huge', huge));
  // A name distribution never writes.
  const alpine = readFileSync(path.join(b.repoDir('library/alpine'), '_manifests/tags/3.19/current/link'), 'utf8');
  b.tag('bad/dots..name', 'v1', alpine);
  // A repository "directory" that is a file, and a _manifests that is a file.
  writeFileSync(path.join(b.v2, 'repositories', 'bad', 'plainfile'), 'not a directory');
  mkdirSync(path.join(b.repoDir('bad/manifests-file')), { recursive: true });
  writeFileSync(path.join(b.repoDir('bad/manifests-file'), '_manifests'), 'not a directory');
  // An unreadable layer (for users other than root).
  const api11 = readFileSync(path.join(b.repoDir('team/api'), '_manifests/tags/1.1/current/link'), 'utf8');
  const manifest = JSON.parse(readFileSync(b.blobPath(api11), 'utf8')) as { layers: Array<{ digest: string }> };
  const rotten = manifest.layers[manifest.layers.length - 1]!.digest;
  // A tag link nobody may read: unreadable, never taken for a tag directory without a link (no tag at all).
  b.tag('bad/locked-link', 'v1', alpine);
  openUp(root);
  chmodSync(b.blobPath(rotten), 0o000);
  chmodSync(path.join(tagDir('bad/locked-link', 'v1'), 'link'), 0o000);
  return { root, rotten };
}

describe('bad storage', () => {
  let bad: { root: string; rotten: string };
  let scan: ScanJson;
  let scanExit: number;
  beforeAll(async () => {
    bad = buildBadStorage();
    const result = await runAsNobody(['scan', bad.root, '--output', 'json']);
    scanExit = result.exitCode;
    scan = JSON.parse(result.stdout) as ScanJson;
  });
  const find = (ref: string) => scan.tags.find((t) => `${t.repository}:${t.tag}` === ref);

  it.each([
    ['bad/outside:v1', 'invalid-link', /symbolic link \(not followed\)/],
    ['bad/garbage-link:v1', 'invalid-link', /not sha256:<64 hex>/],
    ['bad/garbage-manifest:v1', 'invalid-manifest', /not JSON/],
    ['bad/huge:v1', 'invalid-manifest', /registries refuse more than 4 MiB/],
    ['bad/dots..name:v1', 'invalid-name', /dots\.\.name/],
    ['team/api:1.1', 'unreadable', /EACCES/],
    ['bad/locked-link:v1', 'unreadable', /tag link \S+\/bad\/locked-link\/_manifests\/tags\/v1\/current\/link cannot be read \(EACCES\)/],
  ])('%s: %s, one line, naming what is wrong', (ref, kind, message) => {
    const tag = find(ref)!;
    expect(tag, ref).toBeDefined();
    expect(tag.status).toBe('faulty');
    const fault = tag.faults.find((f) => f.kind === kind)!;
    expect(fault.message).toMatch(message);
    expect(fault.message).not.toContain('\n');
  });

  it('goes on with everything else, follows no symlink loop, and ignores files where directories belong', () => {
    expect(scanExit).toBe(1);
    for (const ref of ['library/alpine:3.19', 'library/alpine:latest', 'busybox:1.36', 'infra/tools/kubectl:1.29', 'infra/tools:latest', 'team/api:1.0']) {
      expect(find(ref)?.status, ref).toBe('ok');
    }
    expect(scan.tags.some((t) => t.repository.startsWith('loop'))).toBe(false);
  });

  it('push moves the healthy images and reports each bad one', async () => {
    const registry = await startRegistry();
    const result = await runAsNobody(['push', bad.root, '--to', registry.host, '--output', 'json', '--quiet']);
    expect(result.exitCode).toBe(1);
    const doc = JSON.parse(result.stdout) as { images: Array<{ source: string; status: string; reason: string }> };
    expect(doc.images.filter((i) => i.status === 'verified').map((i) => i.source).sort()).toEqual(
      ['busybox:1.36', 'infra/tools/kubectl:1.29', 'infra/tools:latest', 'library/alpine:3.19', 'library/alpine:latest', 'team/api:1.0'].sort(),
    );
    expect(doc.images.find((i) => i.source === 'team/api:1.1')!.reason).toMatch(/^unreadable: /);
  });

  it('a blob that shrinks while it is being sent fails that image with the file named', async () => {
    const root = path.join(tempDir('regmigrate-shrink-'), 'registry');
    buildDemoStorage(root);
    const b = new StorageBuilder(root);
    const link = readFileSync(path.join(b.repoDir('busybox'), '_manifests/tags/1.36/current/link'), 'utf8');
    const layer = (JSON.parse(readFileSync(b.blobPath(link), 'utf8')) as { layers: Array<{ digest: string }> }).layers[0]!.digest;
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    let cut = false;
    proxy.script = (req) => {
      // Someone truncates the layer after the scan, just as its repository's uploads begin.
      if (!cut && req.method === 'POST' && req.url.pathname === '/v2/library/busybox/blobs/uploads/') {
        cut = true;
        truncateSync(b.blobPath(layer), 100);
      }
      return { kind: 'forward' };
    };
    const result = await runCli(['push', root, '--to', proxy.host, '--output', 'json', '--quiet', '--retries', '2']);
    expect(result.exitCode).toBe(1);
    const doc = JSON.parse(result.stdout) as { images: Array<{ source: string; status: string; reason: string }> };
    const busybox = doc.images.find((i) => i.source === 'busybox:1.36')!;
    expect(busybox.status).toBe('failed');
    expect(busybox.reason).toContain(b.blobPath(layer));
    expect(doc.images.filter((i) => i.status === 'verified')).toHaveLength(6);
  });
});

/** path → size, mtime, inode, sha256: any write to the tree shows. */
function fingerprint(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const full = path.join(dir, name);
      const st = lstatSync(full);
      const content = st.isFile() ? createHash('sha256').update(readFileSync(full)).digest('hex') : st.isSymbolicLink() ? 'link' : 'dir';
      out.set(path.relative(root, full), `${st.size}:${st.mtimeMs}:${st.ino}:${st.mode}:${content}`);
      if (st.isDirectory()) walk(full);
    }
  };
  walk(root);
  return out;
}

describe('the source is never written to', () => {
  it('scan, push, export, diff and sync leave every file, mtime and inode as it was', async () => {
    const root = path.join(tempDir('regmigrate-ro-'), 'registry');
    buildDemoStorage(root);
    const before = fingerprint(root);
    const registry = await startRegistry();
    const state = path.join(tempDir(), 'state.json');
    const out = path.join(tempDir(), 'export');
    for (const args of [
      ['scan', root, '--verify'],
      ['push', root, '--to', registry.host],
      ['export', root, '--out', out],
      ['diff', root, '--to', registry.host],
      ['sync', root, '--to', registry.host, '--state', state, '--delete-extra'],
      ['push', root, '--to', registry.host, '--via', 'skopeo', '--work-dir', tempDir()],
    ]) {
      const result = await runCli(args);
      expect(result.exitCode, `${args[0]}: ${result.stderr}`).toBe(0);
    }
    expect(fingerprint(root)).toEqual(before);
  });

  it('every command works on a tree nobody may write to, run as a user who cannot write it', async () => {
    const root = path.join(tempDir('regmigrate-ro-'), 'registry');
    buildDemoStorage(root);
    openUp(root);
    execaSync('chmod', ['-R', 'a-w', root]);
    const registry = await startRegistry();
    const work = tempDir('regmigrate-ro-work-');
    openUp(work);
    chmodSync(work, 0o777);
    for (const args of [
      ['scan', root],
      ['push', root, '--to', registry.host],
      ['export', root, '--out', path.join(work, 'export')],
      ['diff', root, '--to', registry.host],
      ['sync', root, '--to', registry.host, '--state', path.join(work, 'state.json')],
    ]) {
      const result = await runAsNobody(args);
      expect(result.exitCode, `${args[0]}: ${result.stderr}`).toBe(0);
    }
    // export could not link from a tree it cannot write? Hard links need no write access to the source file's
    // directory, only to the target's; copies are the fallback. Either way the layouts are complete.
    const inspect = await execa('skopeo', ['inspect', `dir:${path.join(work, 'export', 'infra/tools/kubectl:1.29')}`], { reject: false });
    expect(inspect.exitCode).toBe(0);
  });
});

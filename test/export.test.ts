import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildFaultyStorage, type BuiltTree } from '../fixtures/trees.js';
import { runCli } from './helpers/cli.js';
import { atEnd } from './helpers/teardown.js';
import { tempDir } from './helpers/tmp.js';

function dataFile(tree: BuiltTree, digest: string): string {
  const hex = digest.slice(7);
  return path.join(tree.v2, 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
}

const destination = (repository: string) => (repository.includes('/') ? repository : `library/${repository}`);

describe('regmigrate export', () => {
  let tree: BuiltTree;
  let out: string;
  let first: Awaited<ReturnType<typeof runCli>>;
  beforeAll(async () => {
    tree = buildFaultyStorage(path.join(tempDir(), 'registry'));
    out = path.join(tempDir(), 'layouts');
    first = await runCli(['export', tree.root, '--out', out]);
  });
  const healthy = () => tree.tags.filter((t) => !t.fault);

  it('writes a layout per healthy tag that skopeo accepts, with the right digest', async () => {
    expect(first.exitCode).toBe(1);
    for (const t of healthy()) {
      const dir = path.join(out, `${destination(t.repository)}:${t.tag}`);
      const inspect = await execa('skopeo', ['inspect', '--raw', `dir:${dir}`], { encoding: 'buffer', stripFinalNewline: false });
      const raw = Buffer.from(inspect.stdout);
      expect(raw.equals(readFileSync(dataFile(tree, t.digest!)))).toBe(true);
      expect(readFileSync(path.join(dir, 'version'), 'utf8')).toBe('Directory Transport Version: 1.1\n');
      // skopeo reads every blob the manifest names (config included) without complaint.
      await execa('skopeo', ['inspect', `dir:${dir}`]);
    }
  });

  it('hard-links into the storage: same inode as the data file', () => {
    const t = healthy().find((x) => x.repository === 'library/alpine')!;
    const dir = path.join(out, `library/alpine:${t.tag}`);
    expect(statSync(path.join(dir, 'manifest.json')).ino).toBe(statSync(dataFile(tree, t.digest!)).ino);
    for (const name of readdirSync(dir).filter((n) => /^[0-9a-f]{64}$/.test(n))) {
      expect(statSync(path.join(dir, name)).ino).toBe(statSync(dataFile(tree, `sha256:${name}`)).ino);
    }
  });

  it('names multi-arch children <hex>.manifest.json and holds the blobs of every child', async () => {
    const dir = path.join(out, 'infra/tools/kubectl:1.29');
    const list = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    for (const child of list.manifests) {
      const file = path.join(dir, `${child.digest.slice(7)}.manifest.json`);
      const manifest = JSON.parse(readFileSync(file, 'utf8')) as { config: { digest: string }; layers: Array<{ digest: string }> };
      for (const blob of [manifest.config, ...manifest.layers]) expect(statSync(path.join(dir, blob.digest.slice(7))).isFile()).toBe(true);
    }
    // skopeo can copy the whole multi-arch image out of the layout.
    const copy = path.join(tempDir(), 'copy');
    await execa('skopeo', ['copy', '--all', '--preserve-digests', `dir:${dir}`, `dir:${copy}`]);
  });

  it('keeps nested names whole and puts single-level names in the default project', () => {
    expect(statSync(path.join(out, 'infra/tools/kubectl:1.29')).isDirectory()).toBe(true);
    expect(statSync(path.join(out, 'infra/tools:latest')).isDirectory()).toBe(true);
    expect(statSync(path.join(out, 'library/busybox:1.36')).isDirectory()).toBe(true);
  });

  it('reports faulty images and exports none of them', () => {
    for (const t of tree.tags.filter((x) => x.fault && x.fault.kind !== 'corrupt-blob')) {
      expect(first.stdout).toMatch(new RegExp(`^${t.repository.replace('/', '\\/')}:${t.tag}\\s+-\\s+failed: ${t.fault!.kind}`, 'm'));
      expect(() => statSync(path.join(out, `${t.repository}:${t.tag}`))).toThrow();
    }
  });

  it('is idempotent: correct entries kept, stale ones replaced, strays removed', async () => {
    const dir = path.join(out, 'team/api:1.0');
    const manifest = path.join(dir, 'manifest.json');
    rmSync(manifest);
    writeFileSync(manifest, 'stale');
    writeFileSync(path.join(dir, 'stray'), 'x');
    const again = await runCli(['export', tree.root, '--out', out]);
    expect(again.stderr).toMatch(/files: 1 hard-linked, 0 copied, \d+ already there, 1 stale removed/);
    expect(statSync(manifest).ino).toBe(statSync(dataFile(tree, tree.tags.find((t) => t.repository === 'team/api' && t.tag === '1.0')!.digest!)).ino);
    expect(() => statSync(path.join(dir, 'stray'))).toThrow();
  });

  it('from a tar (copies): a rotten source blob fails its image; a copy changed since, same size, is written again; the untouched ones are kept', async () => {
    const tar = path.join(tempDir(), 'storage.tar');
    await execa('tar', ['-C', tree.root, '-cf', tar, 'docker']);
    const copies = path.join(tempDir(), 'from-tar');
    const once = await runCli(['export', tar, '--out', copies]);
    expect(once.stderr).toMatch(/files: 0 hard-linked, \d+ copied/);
    // A copy is hashed on its way: the layer that rotted in the storage (same size) fails its image, whose
    // layout is not left behind for skopeo to push.
    expect(once.stdout).toMatch(/^broken\/rot:v1\s+broken\/rot:v1\s+failed: export: corrupt-blob: blob sha256:[0-9a-f]{64}: its data in the storage hashes to sha256:[0-9a-f]{64}$/m);
    expect(existsSync(path.join(copies, 'broken/rot:v1'))).toBe(false);
    // Run again untouched: what is copied again is the failed image's files only (its layout was removed).
    const copiedAgain = (stderr: string): number => Number(/files: 0 hard-linked, (\d+) copied/.exec(stderr)?.[1]);
    const steady = copiedAgain((await runCli(['export', tar, '--out', copies])).stderr);
    const dir = path.join(copies, 'team/api:1.0');
    const layer = readdirSync(dir).find((n) => /^[0-9a-f]{64}$/.test(n) && statSync(path.join(dir, n)).size > 16)!;
    const file = path.join(dir, layer);
    const bytes = readFileSync(file);
    bytes[8] = bytes[8]! ^ 0xff;
    writeFileSync(file, bytes);
    const again = await runCli(['export', tar, '--out', copies]);
    expect(copiedAgain(again.stderr), again.stderr).toBe(steady + 1);
    expect(createHash('sha256').update(readFileSync(file)).digest('hex')).toBe(layer);
  });

  it('copies instead of linking across filesystems, and says so once', async () => {
    const shm = mkdtempSync('/dev/shm/regmigrate-export-');
    atEnd(() => rmSync(shm, { recursive: true, force: true }));
    expect(statSync(shm).dev).not.toBe(statSync(tree.v2).dev);
    const result = await runCli(['export', tree.root, '--out', shm]);
    expect(result.stderr.match(/cannot hard-link from the storage into .* \(EXDEV\): copying instead/g)).toHaveLength(1);
    expect(result.stderr).toMatch(/files: 0 hard-linked, \d+ copied/);
    const dir = path.join(shm, 'library/alpine:3.19');
    const t = healthy().find((x) => x.repository === 'library/alpine' && x.tag === '3.19')!;
    expect(readFileSync(path.join(dir, 'manifest.json')).equals(readFileSync(dataFile(tree, t.digest!)))).toBe(true);
    await execa('skopeo', ['inspect', `dir:${dir}`]);
  });

  it('refuses an output directory inside the storage', async () => {
    const result = await runCli(['export', tree.root, '--out', path.join(tree.v2, 'export')]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/--out .* is inside the registry storage/);
  });
});

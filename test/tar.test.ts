/** The tar backup as a source: read in place, by byte range, with every header style GNU tar writes. */
import { execa } from 'execa';
import { cpSync, existsSync, linkSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { addImage, makeLayer, StorageBuilder } from '../fixtures/builder.js';
import { buildDemoStorage, type BuiltTree } from '../fixtures/trees.js';
import { runCli } from './helpers/cli.js';
import { startRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

interface Report {
  images: Array<{ source: string; status: string; digest: string; reason: string | null }>;
  summary: { verified: number; failed: number };
}

const LONG_REPO = `team/${'very-long-component-name-'.repeat(3)}x/${'another-long-part-'.repeat(2)}y/service`;

describe('a tar of the storage as the source', () => {
  let tree: BuiltTree;
  let longDigest: string;
  let dir: string;
  beforeAll(() => {
    dir = tempDir('regmigrate-tar-');
    tree = buildDemoStorage(path.join(dir, 'registry'));
    // A repository path beyond ustar's 100 + 155 characters: pax or GNU long-name headers are needed.
    const b = new StorageBuilder(tree.root);
    const image = addImage(b, LONG_REPO, { format: 'oci', layers: [makeLayer('long', 'long name\n', 2048)], label: 'long' });
    b.tag(LONG_REPO, 'v1', image.digest);
    longDigest = image.digest;
  });

  const expected = () => [...tree.tags.map((t) => ({ ref: `${t.repository}:${t.tag}`, digest: t.digest! })), { ref: `${LONG_REPO}:v1`, digest: longDigest }];

  it.each([
    ['tar -cf of docker/ from the registry root (pax)', ['--format=pax', '-C', '{root}', 'docker']],
    ['a ./-prefixed tar (GNU format, long names as L headers)', ['--format=gnu', '-C', '{root}', './docker']],
    ['a tar of docker/registry/v2 (ustar is too small: pax)', ['--format=posix', '-C', '{root}/docker/registry', 'v2']],
    ['hard links inside the tar (an alias tag whose link file is a hard link of the other)', ['--format=pax', '-C', '{linked}', 'docker']],
  ])('%s: pushed and verified byte-identical, as from the directory', async (_label, tarArgs) => {
    const file = path.join(dir, `${Math.random().toString(36).slice(2)}.tar`);
    let linked = '';
    if (tarArgs.includes('{linked}')) {
      linked = path.join(tempDir('regmigrate-linked-'), 'registry');
      cpSync(tree.root, linked, { recursive: true });
      const tags = path.join(linked, 'docker/registry/v2/repositories/library/alpine/_manifests/tags');
      rmSync(path.join(tags, 'latest/current/link'));
      linkSync(path.join(tags, '3.19/current/link'), path.join(tags, 'latest/current/link'));
    }
    await execa('tar', ['-cf', file, ...tarArgs.map((a) => a.replace('{root}', tree.root).replace('{linked}', linked))]);
    if (linked) expect((await execa('tar', ['-tvf', file])).stdout).toMatch(/^h.*alpine\/_manifests\/tags\/(latest|3\.19)\/current\/link link to .*\/(3\.19|latest)\/current\/link$/m);
    const registry = await startRegistry();
    const report = path.join(tempDir(), 'report.json');
    const result = await runCli(['push', file, '--to', registry.host, '--report', report, '--quiet']);
    expect(result.exitCode, result.stderr).toBe(0);
    const doc = JSON.parse(readFileSync(report, 'utf8')) as Report;
    for (const { ref, digest } of expected()) {
      const row = doc.images.find((i) => i.source === ref)!;
      expect(row, ref).toBeDefined();
      expect(row).toMatchObject({ status: 'verified', digest });
    }
    // The index is kept beside the tar: the next run starts from it.
    expect(existsSync(`${file}.regmigrate-index`)).toBe(true);
    const scan = await runCli(['scan', file, '--output', 'json']);
    expect(scan.exitCode).toBe(0);
  });

  it('exports and scans with --verify from the tar, no extraction', async () => {
    const file = path.join(dir, 'verify.tar');
    await execa('tar', ['-cf', file, '-C', tree.root, 'docker']);
    const verify = await runCli(['scan', file, '--verify', '--output', 'json']);
    expect(verify.exitCode, verify.stderr).toBe(0);
    const out = path.join(tempDir(), 'layouts');
    const exported = await runCli(['export', file, '--out', out]);
    expect(exported.exitCode, exported.stderr).toBe(0);
    // A tar has no files of its own to link: every file is copied out of it, and the output says so.
    expect(exported.stderr).toContain('the storage is a tar archive: its blobs are copied out of it, not hard-linked');
    expect(exported.stderr).toMatch(/files: 0 hard-linked, [1-9]\d* copied/);
    await execa('skopeo', ['inspect', `dir:${path.join(out, 'infra/tools/kubectl:1.29')}`]);
    const alpine = tree.tags.find((t) => t.repository === 'library/alpine')!.digest!.slice(7);
    expect(readFileSync(path.join(out, 'library/alpine:3.19/manifest.json'))).toEqual(readFileSync(path.join(tree.root, 'docker/registry/v2/blobs/sha256', alpine.slice(0, 2), alpine, 'data')));
    // --via skopeo from the tar: the same copies, the same words, and the images land.
    const registry = await startRegistry();
    const pushed = await runCli(['push', file, '--to', registry.host, '--via', 'skopeo', '--include', 'library/**']);
    expect(pushed.exitCode, pushed.stderr).toBe(0);
    expect(pushed.stderr).toContain('its blobs are copied out of it, not hard-linked');
  });

  it('a truncated tar: a clear error for what is missing, and the healthy images still migrate', async () => {
    const file = path.join(dir, 'cut.tar');
    // The largest layer goes last into the tar, so the cut loses nothing else: every other image migrates.
    const v2 = 'docker/registry/v2';
    const blobs = readdirSync(path.join(tree.root, v2, 'blobs/sha256')).flatMap((fan) => readdirSync(path.join(tree.root, v2, 'blobs/sha256', fan)).map((hex) => `${v2}/blobs/sha256/${fan}/${hex}`));
    const sizeOf = (blob: string) => statSync(path.join(tree.root, blob, 'data')).size;
    const cut = blobs.reduce((a, b) => (sizeOf(b) > sizeOf(a) ? b : a));
    await execa('tar', ['-cf', file, '-C', tree.root, `${v2}/repositories`, ...blobs.filter((b) => b !== cut), cut]);
    // Cut 100 bytes before the end of its data, so the tar ends inside the blob, not inside a header.
    const listing = (await execa('tar', ['-tvf', file, '--block-number'])).stdout.split('\n');
    const at = listing.findIndex((l) => l.endsWith(`${cut}/data`));
    expect(at).toBeGreaterThan(0);
    const header = Number(/^block (\d+):/.exec(listing[at]!)![1]);
    const size = sizeOf(cut);
    expect(size).toBeGreaterThan(1024);
    truncateSync(file, (header + 1) * 512 + size - 100);
    const registry = await startRegistry();
    const report = path.join(tempDir(), 'report.json');
    const result = await runCli(['push', file, '--to', registry.host, '--report', report, '--quiet']);
    expect(result.exitCode).toBe(1);
    const doc = JSON.parse(readFileSync(report, 'utf8')) as Report;
    // The cut itself is a fault of the whole storage (what came after it is unknown), named once with its byte.
    const whole = doc.images.filter((i) => i.reason?.includes('is not a whole tar'));
    expect(whole).toHaveLength(1);
    expect(whole[0]!.reason).toContain(`unreadable: ${file} is not a whole tar: it ends at byte ${statSync(file).size}, inside ${cut}/data (`);
    expect(whole[0]!.reason).toContain(` of ${size} bytes); whatever came after that point is missing`);
    const failed = doc.images.filter((i) => i.status === 'failed' && !whole.includes(i));
    expect(failed.length).toBeGreaterThan(0);
    for (const f of failed) expect(f.reason).toBe(`unreadable: layer blob sha256:${path.basename(cut)}: ${file}#/blobs/sha256/${cut.slice(-67)}/data is cut off: the tar ends inside it`);
    expect(doc.images.filter((i) => i.status === 'verified').length).toBe(doc.images.length - failed.length - whole.length);
    expect(doc.images.filter((i) => i.status === 'verified').length).toBeGreaterThan(0);
  });

  it('refuses a gzip-compressed tar, with the advice to use the uncompressed form', async () => {
    const file = path.join(dir, 'docker.tar.gz');
    await execa('tar', ['-czf', file, '-C', tree.root, 'docker']);
    const result = await runCli(['scan', file]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/docker\.tar\.gz is gzip-compressed: it cannot be read by byte range/);
    expect(result.stderr).toMatch(/hint: decompress it first/);
  });

  it('says what a file that is neither is', async () => {
    const file = path.join(dir, 'notes.txt');
    writeFileSync(file, 'hello');
    const result = await runCli(['scan', file]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/notes\.txt: not a directory nor a tar archive/);
    expect(statSync(file).size).toBe(5);
  });
});

interface ScanDoc {
  tags: Array<{ repository: string; tag: string; pushedAt: string | null }>;
  selection?: { total: { keptTags: number; droppedTags: number } };
}

describe('push times from a tar of the storage', () => {
  const DAY = 86_400;
  const now = Math.floor(Date.now() / 1000);
  const ages: Array<[string, string, number]> = [
    ['app/web', 'old', now - 400 * DAY],
    ['app/web', 'recent', now - 2 * DAY],
    // A fraction of a second: a pax `mtime` record keeps it, ustar and GNU headers keep whole seconds.
    ['app/web', 'fraction', now - 5 * DAY + 0.25],
    ['app/api', 'v1', now - 90 * DAY],
    ['app/api', 'v2', now - 3600],
    // Past 8^11 seconds (the year 2242) the octal field is too small: GNU tar writes base-256.
    ['app/api', 'far', 9_000_000_000],
  ];
  let root: string;
  let dir: string;
  beforeAll(() => {
    dir = tempDir('regmigrate-tar-times-');
    root = path.join(dir, 'registry');
    const b = new StorageBuilder(root);
    const base = makeLayer('etc/os-release', 'NAME="times"\n', 1024);
    for (const [repo, tag, seconds] of ages) {
      const image = addImage(b, repo, { format: 'oci', layers: [base, makeLayer('srv/app', `${repo} ${tag}\n`, 512)], label: `${repo}-${tag}` });
      b.tag(repo, tag, image.digest);
      b.setPushedAt(repo, tag, new Date(seconds * 1000));
    }
  });

  async function scan(source: string, args: string[] = []): Promise<ScanDoc> {
    const result = await runCli(['scan', source, '--output', 'json', ...args]);
    expect(result.exitCode, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as ScanDoc;
  }

  const times = (doc: ScanDoc) => Object.fromEntries(doc.tags.map((t) => [`${t.repository}:${t.tag}`, t.pushedAt]));

  it.each([
    ['pax', ['docker'], ['app/web', 'app/api']],
    ['gnu', ['docker'], ['app/web', 'app/api']],
    // ustar has octal times only: app/api's far tag is left out of the archive.
    ['ustar', ['docker/registry/v2/blobs', 'docker/registry/v2/repositories/app/web'], ['app/web']],
  ])('%s: scan of the tar shows the same pushedAt as the directory, to the second', async (format, members, repos) => {
    const file = path.join(dir, `${format}.tar`);
    await execa('tar', [`--format=${format}`, '-cf', file, '-C', root, ...members]);
    const fromDir = times(await scan(root));
    const fromTar = times(await scan(file));
    const expected = ages.filter(([repo]) => repos.includes(repo));
    expect(Object.keys(fromTar).sort()).toEqual(expected.map(([repo, tag]) => `${repo}:${tag}`).sort());
    for (const [repo, tag, seconds] of expected) {
      const ref = `${repo}:${tag}`;
      expect(fromDir[ref], ref).toBe(new Date(seconds * 1000).toISOString());
      if (format === 'pax') expect(fromTar[ref], `${format} ${ref}`).toBe(fromDir[ref]);
      else expect(fromTar[ref], `${format} ${ref}`).toBe(new Date(Math.floor(seconds) * 1000).toISOString());
    }
  });

  it('--pushed-after on the tar keeps the recent tags and drops the old ones', async () => {
    const file = path.join(dir, 'select.tar');
    await execa('tar', ['-cf', file, '-C', root, 'docker']);
    const doc = await scan(file, ['--pushed-after', '30d']);
    expect(doc.tags.map((t) => `${t.repository}:${t.tag}`).sort()).toEqual(['app/api:far', 'app/api:v2', 'app/web:fraction', 'app/web:recent']);
    expect(doc.selection?.total).toMatchObject({ keptTags: 4, droppedTags: 2 });
  });

  it('an index written without times (version 1) is rebuilt, and the times are there', async () => {
    const file = path.join(dir, 'old-index.tar');
    await execa('tar', ['-cf', file, '-C', root, 'docker']);
    const index = `${file}.regmigrate-index`;
    await scan(file);
    // The index as the previous format wrote it: version 1, each entry [path, offset, size, truncated], no time.
    const current = JSON.parse(readFileSync(index, 'utf8')) as { version: number; entries: unknown[][] };
    expect(current.entries.some((e) => e.length === 5)).toBe(true);
    writeFileSync(index, JSON.stringify({ ...current, version: 1, entries: current.entries.map((e) => e.slice(0, 4)) }));
    const doc = await scan(file);
    expect(times(doc)['app/web:recent']).toBe(new Date((now - 2 * DAY) * 1000).toISOString());
    expect((JSON.parse(readFileSync(index, 'utf8')) as { version: number }).version).toBeGreaterThan(1);
  });
});

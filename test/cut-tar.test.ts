/**
 * A storage read that is not whole is never a source of deletions. A tar copy that ran out of disk, or a download
 * that stopped, is cut: mid-entry, or exactly between two entries (no end-of-archive blocks). Every command says so
 * in one line naming the file and the byte, the run fails, and `sync --delete-extra --yes` deletes nothing. And
 * without an explicit --max-delete, a sync never deletes more than half of the tags its journal holds.
 */
import { execa } from 'execa';
import { copyFileSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildDemoStorage, type BuiltTree } from '../fixtures/trees.js';
import { openStorage } from '../src/storage/open.js';
import { sourceLinkState } from '../src/sync/sync.js';
import { runCli } from './helpers/cli.js';
import { startRegistry, type RunningRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

async function catalog(registry: RunningRegistry): Promise<string[]> {
  const res = await fetch(`${registry.url}/v2/_catalog`);
  const repositories = ((await res.json()) as { repositories: string[] }).repositories;
  const refs: string[] = [];
  for (const repository of repositories) {
    const tags = ((await (await fetch(`${registry.url}/v2/${repository}/tags/list`)).json()) as { tags: string[] | null }).tags ?? [];
    refs.push(...tags.map((t) => `${repository}:${t}`));
  }
  return refs.sort();
}

/** Where each entry of a tar ends (header and padded data), in bytes: the places a cut leaves no partial entry. */
async function entryEnds(file: string): Promise<number[]> {
  const listing = (await execa('tar', ['-tvf', file, '--block-number'])).stdout.split('\n');
  const ends: number[] = [];
  for (const line of listing) {
    const m = /^block (\d+): \S+ \S+\s+(\d+) /.exec(line);
    if (m) ends.push((Number(m[1]) + 1) * 512 + Math.ceil(Number(m[2]) / 512) * 512);
  }
  return ends;
}

describe('a tar cut short', () => {
  let dir: string;
  let tree: BuiltTree;
  let full: string;
  let cuts: Array<[string, string, number, string]>;
  beforeAll(async () => {
    dir = tempDir('regmigrate-cut-');
    tree = buildDemoStorage(path.join(dir, 'registry'));
    full = path.join(dir, 'full.tar');
    // --sort=name: blobs/ before repositories/, so a cut in the second half loses tags, not only blobs. ustar: one
    // header per entry (no pax records), so `--block-number` names the header that the data follows.
    await execa('tar', ['--sort=name', '--format=ustar', '-cf', full, '-C', tree.root, 'docker']);
    const size = statSync(full).size;
    const boundary = Math.max(...(await entryEnds(full)).filter((end) => end <= size * 0.75));
    const mid = boundary + 700;
    cuts = [
      ['inside an entry', path.join(dir, 'mid.tar'), mid, `it ends at byte ${mid}, inside `],
      ['exactly between two entries (no end-of-archive blocks)', path.join(dir, 'edge.tar'), boundary, `it ends at byte ${boundary} without the end-of-archive blocks`],
    ];
    for (const [, file, at] of cuts) {
      copyFileSync(full, file);
      truncateSync(file, at);
    }
  });

  it.each([0, 1])('cut %#: scan fails with one line naming the file and the byte; never "no tags"', async (i) => {
    const [, file, , what] = cuts[i]!;
    for (const run of ['first (builds the index)', 'second (from the saved index)']) {
      const scan = await runCli(['scan', file]);
      expect(scan.exitCode, run).toBe(1);
      const lines = `${scan.stdout}\n${scan.stderr}`.split('\n').filter((l) => l.includes('is not a whole tar'));
      expect(lines, run).toHaveLength(1);
      expect(lines[0]).toContain(`${file} is not a whole tar: ${what}`);
      expect(scan.stderr).not.toMatch(/no tags found/);
      // A manifest missing because of the cut is unreadable, not missing-manifest (which looks like a GC'd image).
      expect(scan.stdout).not.toMatch(/missing-manifest/);
    }
    const json = JSON.parse((await runCli(['scan', file, '--output', 'json'])).stdout) as { readFaults: Array<{ prefix: string; code: string; message: string }> };
    expect(json.readFaults).toEqual([expect.objectContaining({ prefix: '', code: 'ETRUNCATED' })]);
  });

  it('the whole tar is clean: exit 0, no fault (the end-of-archive blocks are there)', async () => {
    const scan = await runCli(['scan', full]);
    expect(scan.exitCode, scan.stdout).toBe(0);
    expect(scan.stdout).not.toMatch(/not a whole tar/);
  });

  it('diff and sync --delete-extra --yes from either cut: exit 1, the cut named, nothing deleted', async () => {
    const registry = await startRegistry();
    const state = path.join(tempDir(), 'state.json');
    const first = await runCli(['sync', full, '--to', registry.host, '--state', state]);
    expect(first.exitCode, first.stderr).toBe(0);
    const before = await catalog(registry);
    expect(before.length).toBe(tree.tags.length);
    for (const [label, file, , what] of cuts) {
      const diff = await runCli(['diff', file, '--to', registry.host]);
      expect(diff.exitCode, label).toBe(1);
      expect(`${diff.stdout}${diff.stderr}`, label).toContain(`${file} is not a whole tar: ${what}`);

      const sync = await runCli(['sync', file, '--to', registry.host, '--state', state, '--delete-extra', '--yes']);
      expect(sync.exitCode, label).toBe(1);
      expect(sync.stdout, label).toContain(`${file} is not a whole tar: ${what}`);
      expect(sync.stdout, label).toMatch(/^no tag is taken for gone: the source was not read whole/m);
      expect(sync.stdout, label).not.toMatch(/deleted|would delete/);
      expect(await catalog(registry), label).toEqual(before);
    }
    // The journal still holds every tag: a later run from the whole tar finds nothing to do.
    const again = await runCli(['sync', full, '--to', registry.host, '--state', state, '--delete-extra', '--yes']);
    expect(again.exitCode, again.stdout).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^sync: 0 pushed, ${tree.tags.length} unchanged, 0 failed;`, 'm'));
  });

  it('an index saved by the version before the end-of-archive check is rebuilt, so the cut between entries is seen', async () => {
    const file = path.join(dir, 'old-index.tar');
    copyFileSync(cuts[1]![1], file);
    expect((await (await openStorage(file)).listRepositories()).faults).toHaveLength(1);
    // What that version wrote for this very tar (same size and time): its index version 2 never looked for the
    // end-of-archive blocks, so it called the tar whole.
    const index = `${file}.regmigrate-index`;
    const saved = JSON.parse(readFileSync(index, 'utf8')) as { version: number; truncatedAt: string | null };
    writeFileSync(index, JSON.stringify({ ...saved, version: 2, truncatedAt: null }));
    const { faults } = await (await openStorage(file)).listRepositories();
    expect(faults).toEqual([expect.objectContaining({ code: 'ETRUNCATED', detail: expect.stringContaining(`${file} is not a whole tar: ${cuts[1]![3]}`) })]);
  });

  it('right before a delete, a tar source is asked too: a tag in the tar is present, one not in it absent', async () => {
    const layout = await openStorage(full);
    const some = tree.tags[0]!;
    expect(await sourceLinkState(layout, `${some.repository}:${some.tag}`)).toEqual({ state: 'present' });
    expect(await sourceLinkState(layout, `${some.repository}:no-such-tag`)).toEqual({ state: 'absent' });
    // In a cut tar, a tag that is not there may have been in the part that is missing: not absent.
    const cut = await openStorage(cuts[1]![1]);
    expect(await sourceLinkState(cut, `${some.repository}:no-such-tag`)).toEqual({ state: 'unknown', reason: expect.stringContaining('is not in the tar, which is cut short') });
  });
});

describe('the share limit: without --max-delete, at most half of the journal is deleted', () => {
  it('a source that lost most of its tags deletes none until --max-delete allows it', async () => {
    const registry = await startRegistry();
    const tree = buildDemoStorage(path.join(tempDir('regmigrate-share-'), 'registry'));
    const state = path.join(tempDir(), 'state.json');
    expect((await runCli(['sync', tree.root, '--to', registry.host, '--state', state])).exitCode).toBe(0);
    const before = await catalog(registry);
    // Every tag but one disappears from the source: far more than half.
    const keep = tree.tags[0]!;
    for (const t of tree.tags.slice(1)) rmSync(path.join(tree.v2, 'repositories', t.repository, '_manifests', 'tags', t.tag), { recursive: true, force: true });
    const gone = tree.tags.length - 1;
    expect(gone).toBeLessThan(100);
    const refused = await runCli(['sync', tree.root, '--to', registry.host, '--state', state, '--delete-extra', '--yes']);
    expect(refused.exitCode).toBe(1);
    // Tags sharing a manifest with a staying tag are kept on a plain registry: the rest would go.
    const doomed = Number(new RegExp(`this run would delete (\\d+) tags, more than half of the ${tree.tags.length} tags the journal holds for this selection`).exec(refused.stdout)?.[1]);
    expect(doomed).toBeGreaterThan(tree.tags.length / 2);
    expect(refused.stdout).toContain(`give --max-delete ${doomed} to allow it`);
    expect(refused.stdout).not.toMatch(/^deleted /m);
    expect(await catalog(registry)).toEqual(before);
    const allowed = await runCli(['sync', tree.root, '--to', registry.host, '--state', state, '--delete-extra', '--yes', '--max-delete', String(doomed)]);
    expect(allowed.exitCode, allowed.stdout).toBe(0);
    expect(allowed.stdout.match(/^deleted /gm)?.length).toBeGreaterThan(0);
    const after = await catalog(registry);
    expect(after.length).toBeLessThan(before.length);
    expect(after.some((ref) => ref.endsWith(`${keep.repository}:${keep.tag}`))).toBe(true);
  });
});

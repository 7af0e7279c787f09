import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { sha256, StorageBuilder } from '../fixtures/builder.js';
import { buildDemoStorage, type BuiltTree } from '../fixtures/trees.js';
import { checkRepositoryName, checkTag } from '../src/storage/digest.js';
import { fileRangeReader } from '../src/storage/file-range.js';
import { openStorage } from '../src/storage/open.js';
import { MIN_UPLOAD_BLOCK_BYTES, UPLOAD_BLOCK_BYTES, UPLOAD_BUFFER_BYTES, uploadBlockBytes } from '../src/tuning.js';
import type { Storage } from '../src/storage/storage.js';
import { tempDir } from './helpers/tmp.js';

const HEX = 'a'.repeat(64);

describe('tag links', () => {
  const root = path.join(tempDir(), 'registry');
  const b = new StorageBuilder(root);
  const tagDir = (tag: string) => path.join(b.repoDir('r'), '_manifests', 'tags', tag, 'current');
  let storage: Storage;
  beforeAll(async () => {
    storage = await openStorage(root);
  });
  it.each([
    ['exact digest, no newline', `sha256:${HEX}`, { ok: true, digest: `sha256:${HEX}` }],
    ['trailing newline', `sha256:${HEX}\n`, { ok: true, digest: `sha256:${HEX}` }],
    ['CRLF', `sha256:${HEX}\r\n`, { ok: true, digest: `sha256:${HEX}` }],
    ['surrounding spaces', `  sha256:${HEX} `, { ok: true, digest: `sha256:${HEX}` }],
    ['truncated digest', 'sha256:abc', { ok: false, reason: 'invalid' }],
    ['upper-case hex', `sha256:${HEX.toUpperCase()}`, { ok: false, reason: 'invalid' }],
    ['binary garbage', '\u0000\u0001\u00ff', { ok: false, reason: 'invalid' }],
    ['empty', '', { ok: false, reason: 'invalid' }],
    ['two digests', `sha256:${HEX}\nsha256:${HEX}`, { ok: false, reason: 'invalid' }],
    ['far larger than a digest', 'x'.repeat(5000), { ok: false, reason: 'invalid', detail: 'is 5000 bytes, not a digest' }],
  ])('%s', async (label, content, expected) => {
    const tag = label.replace(/[^a-z]+/g, '-');
    mkdirSync(tagDir(tag), { recursive: true });
    writeFileSync(path.join(tagDir(tag), 'link'), content, 'latin1');
    expect(await storage.readTagLink('r', tag)).toMatchObject(expected);
  });

  it('reports an absent link as absent, naming it', async () => {
    expect(await storage.readTagLink('r', 'nope')).toEqual({ ok: false, reason: 'absent', location: path.join(tagDir('nope'), 'link'), detail: 'does not exist' });
  });

  it('gives the push time: the modification time of the link', async () => {
    mkdirSync(tagDir('timed'), { recursive: true });
    writeFileSync(path.join(tagDir('timed'), 'link'), `sha256:${HEX}`);
    b.setPushedAt('r', 'timed', new Date('2021-02-03T04:05:06Z'));
    expect(await storage.readTagLink('r', 'timed')).toEqual({ ok: true, digest: `sha256:${HEX}`, pushedAt: new Date('2021-02-03T04:05:06Z') });
  });

  it('does not follow a symbolic link', async () => {
    const target = path.join(root, 'target');
    writeFileSync(target, `sha256:${HEX}`);
    mkdirSync(tagDir('symlink'), { recursive: true });
    symlinkSync(target, path.join(tagDir('symlink'), 'link'));
    expect(await storage.readTagLink('r', 'symlink')).toMatchObject({ ok: false, reason: 'invalid', detail: 'is a symbolic link (not followed)' });
  });
});

/**
 * One interface, every backend: the same tree as a directory and as a tar of it gives the same answers, and each
 * backend's own errors come out in the shared words (src/storage/storage.ts ReadProblem).
 */
describe('the storage interface: a directory and a tar of it answer alike', () => {
  let tree: BuiltTree;
  let huge: string;
  let missingBlob: string;
  const backends: Record<string, Storage> = {};
  beforeAll(async () => {
    const dir = tempDir();
    tree = buildDemoStorage(path.join(dir, 'registry'));
    const b = new StorageBuilder(tree.root);
    huge = b.addManifest('big/one', Buffer.alloc(64 * 1024, 0x20));
    b.tag('big/one', 'v1', huge);
    b.setPushedAt('library/alpine', '3.19', new Date('2020-01-02T03:04:05Z'));
    missingBlob = `sha256:${'e'.repeat(64)}`;
    const file = path.join(dir, 'storage.tar');
    await execa('tar', ['-cf', file, '-C', tree.root, 'docker']);
    backends.directory = await openStorage(tree.root);
    backends.tar = await openStorage(file);
  });
  const both = ['directory', 'tar'] as const;

  it.each(both)('%s: repositories, tags and revisions', async (name) => {
    const storage = backends[name]!;
    const { repositories, faults } = await storage.listRepositories();
    expect(faults).toEqual([]);
    expect([...repositories].sort()).toEqual(['big/one', 'busybox', 'infra/tools', 'infra/tools/kubectl', 'library/alpine', 'team/api']);
    const tags = await storage.listTags('team/api');
    expect(tags.ok && [...tags.names].sort()).toEqual(['1.0', '1.1']);
    expect(await storage.listTags('no/such')).toEqual({ ok: true, names: [] });
    const revisions = await storage.listRevisions('team/api');
    // 1.0 was overwritten: three manifests, two tagged.
    expect(revisions.ok && revisions.names).toHaveLength(3);
    expect(revisions.ok && revisions.names).toEqual(revisions.ok ? [...revisions.names].sort() : []);
  });

  it.each(both)('%s: a repository selection is honoured by the listing', async (name) => {
    const { repositories } = await backends[name]!.listRepositories({ wanted: (r) => r.startsWith('infra/'), prefixes: ['infra'] });
    expect([...repositories].sort()).toEqual(['infra/tools', 'infra/tools/kubectl']);
  });

  it.each(both)('%s: links with their push time, manifests, blobs and their bytes', async (name) => {
    const storage = backends[name]!;
    const alpine = tree.tags.find((t) => t.repository === 'library/alpine' && t.tag === '3.19')!;
    expect(await storage.readTagLink('library/alpine', '3.19')).toEqual({ ok: true, digest: alpine.digest, pushedAt: new Date('2020-01-02T03:04:05Z') });
    expect(await storage.readRevisionLink('library/alpine', alpine.digest!)).toMatchObject({ ok: true, digest: alpine.digest });
    const manifest = await storage.readManifest(alpine.digest!, 4 * 1024 * 1024);
    expect(manifest.ok && sha256(manifest.bytes)).toBe(alpine.digest);
    const layer = (JSON.parse(manifest.ok ? manifest.bytes.toString() : '{}') as { layers: Array<{ digest: string; size: number }> }).layers[0]!;
    expect(await storage.statBlob(layer.digest)).toEqual({ ok: true, size: layer.size });
    const reader = storage.blobReader(layer.digest, layer.size);
    const chunks: Buffer[] = [];
    for await (const chunk of reader.open()) chunks.push(chunk);
    expect(sha256(Buffer.concat(chunks))).toBe(layer.digest);
    // A range, and a second open starts again from the start (a retry).
    const ranged: Buffer[] = [];
    for await (const chunk of reader.open({ start: 10, end: 19 })) ranged.push(chunk);
    expect(Buffer.concat(ranged)).toEqual(Buffer.concat(chunks).subarray(10, 20));
    expect(reader.bytes?.({ start: 0, end: layer.size - 1 })).toEqual(Buffer.concat(chunks));
  });

  it.each(both)('%s: what is missing is absent, what is too large is refused unread', async (name) => {
    const storage = backends[name]!;
    expect(await storage.statBlob(missingBlob)).toMatchObject({ ok: false, reason: 'absent', detail: 'does not exist' });
    expect(await storage.readManifest(missingBlob, 1024)).toMatchObject({ ok: false, reason: 'absent' });
    expect(await storage.readTagLink('library/alpine', 'nope')).toMatchObject({ ok: false, reason: 'absent' });
    expect(await storage.readManifest(huge, 1024)).toMatchObject({ ok: false, reason: 'too-big', size: 64 * 1024 });
  });

  it('only a directory has local files to hard-link; a tar says why not', () => {
    const digest = tree.tags[0]!.digest!;
    expect(backends.directory!.localPath?.(digest)).toBe(path.join(tree.v2, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7), 'data'));
    expect(backends.directory!.copyReason).toBeUndefined();
    expect(backends.tar!.localPath?.(digest)).toBeUndefined();
    expect(backends.tar!.copyReason).toMatch(/tar archive: its blobs are copied out of it, not hard-linked/);
  });

  it('the key is the same however the storage is named (the sync lock depends on it)', async () => {
    for (const given of [tree.root, path.join(tree.root, 'docker'), tree.v2, `${tree.root}/`]) expect((await openStorage(given)).key).toBe(backends.directory!.key);
  });

  it('a tar cut short: what is not in it is unreadable, never absent, and the whole storage is a read fault', async () => {
    const cut = path.join(tempDir(), 'cut.tar');
    const whole = readFileSync(backends.tar!.describe());
    writeFileSync(cut, whole.subarray(0, Math.floor(whole.length / 2)));
    const storage = await openStorage(cut);
    const { faults } = await storage.listRepositories();
    expect(faults).toEqual([expect.objectContaining({ prefix: '', repository: false, code: 'ETRUNCATED', detail: expect.stringContaining(`${cut} is not a whole tar`) })]);
    expect(await storage.readTagLink('library/alpine', 'nope')).toMatchObject({ ok: false, reason: 'unreadable', detail: 'is not in the tar, which is cut short' });
    expect(await storage.statBlob(missingBlob)).toMatchObject({ ok: false, reason: 'unreadable' });
  });
});

describe('openStorage', () => {
  it('says clearly when a path is not a registry storage', async () => {
    const dir = tempDir();
    mkdirSync(path.join(dir, 'something'));
    await expect(openStorage(dir)).rejects.toMatchObject({ code: 'NOT_A_STORAGE', exitCode: 2, message: expect.stringContaining('not a registry storage') });
  });

  it('says when the path does not exist', async () => {
    await expect(openStorage('/nonexistent/registry')).rejects.toMatchObject({ code: 'NOT_A_STORAGE', message: expect.stringContaining('/nonexistent/registry') });
  });

  it('says when the path is a file', async () => {
    const file = path.join(tempDir(), 'file');
    writeFileSync(file, 'x');
    await expect(openStorage(file)).rejects.toMatchObject({ code: 'NOT_A_STORAGE', message: expect.stringContaining('not a directory') });
  });
});

describe('name grammar', () => {
  it.each([
    ['busybox', true],
    ['library/alpine', true],
    ['a/b/c/d', true],
    ['my-app', true],
    ['my--app', true],
    ['my_app', true],
    ['my__app', true],
    ['my.app', true],
    ['a0.b1_c2-d3', true],
    ['My/app', false],
    ['my___app', false],
    ['-app', false],
    ['app-', false],
    ['a//b', false],
    ['a/../b', false],
    ['', false],
    ['x'.repeat(256), false],
  ])('repository %j valid: %s', (name, valid) => {
    expect(checkRepositoryName(name) === undefined).toBe(valid);
  });

  it.each([
    ['latest', true],
    ['v1.2.3', true],
    ['1.0-rc_1', true],
    ['_private', true],
    ['sha256-' + HEX + '.sig', true],
    ['.hidden', false],
    ['-dash', false],
    ['a'.repeat(128), true],
    ['a'.repeat(129), false],
    ['with space', false],
  ])('tag %j valid: %s', (tag, valid) => {
    expect(checkTag(tag) === undefined).toBe(valid);
  });
});

describe('a blob read from a file for an upload', () => {
  it('comes in blocks read into two buffers taken in turn, the bytes exactly those of the range', async () => {
    const bytes = randomBytes(UPLOAD_BLOCK_BYTES * 4 + 1234);
    const file = path.join(tempDir(), 'blob');
    writeFileSync(file, bytes);
    const reader = fileRangeReader(file, 100, bytes.length - 100, 'sha256:unchecked-here');
    const range = { start: 10, end: bytes.length - 100 - 11 };
    const copies: Buffer[] = [];
    const buffers = new Set<ArrayBufferLike>();
    let counted = 0;
    // Each block is copied before the next is asked for, as the socket has taken it by then (src/storage/file-range.ts).
    for await (const block of reader.stream!(range, (n) => (counted += n))) {
      copies.push(Buffer.from(block));
      buffers.add(block.buffer);
    }
    expect(Buffer.concat(copies).equals(bytes.subarray(100 + range.start, 100 + range.end + 1))).toBe(true);
    expect(copies.length).toBe(5);
    expect(counted).toBe(range.end - range.start + 1);
    expect(buffers.size, 'a fresh buffer per block is memory V8 must collect').toBe(2);
  });

  it('comes in blocks of the size the upload asks for, at most UPLOAD_BLOCK_BYTES', async () => {
    const bytes = randomBytes(UPLOAD_BLOCK_BYTES + 5);
    const file = path.join(tempDir(), 'blob');
    writeFileSync(file, bytes);
    const reader = fileRangeReader(file, 0, bytes.length, 'sha256:unchecked-here');
    const sizes = async (blockBytes?: number): Promise<number[]> => {
      const seen: number[] = [];
      for await (const block of reader.stream!({ start: 0, end: bytes.length - 1 }, undefined, blockBytes)) seen.push(block.length);
      return seen;
    };
    expect(await sizes()).toEqual([UPLOAD_BLOCK_BYTES, 5]);
    expect(await sizes(MIN_UPLOAD_BLOCK_BYTES)).toEqual([...Array<number>(UPLOAD_BLOCK_BYTES / MIN_UPLOAD_BLOCK_BYTES).fill(MIN_UPLOAD_BLOCK_BYTES), 5]);
  });

  it('ends with a last block of one byte, the range of a tar entry included: every byte, in order', async () => {
    const bytes = randomBytes(64);
    const file = path.join(tempDir(), 'blob');
    writeFileSync(file, bytes);
    // A blob of 9 bytes at offset 7 of the file (as in a tar), streamed whole and from its byte 4 on.
    const reader = fileRangeReader(file, 7, 9, 'sha256:unchecked-here');
    const read = async (start: number): Promise<Buffer[]> => {
      const blocks: Buffer[] = [];
      for await (const block of reader.stream!({ start, end: 8 }, undefined, 4)) blocks.push(Buffer.from(block));
      return blocks;
    };
    const whole = await read(0);
    expect(whole.map((b) => b.length)).toEqual([4, 4, 1]);
    expect(Buffer.concat(whole).equals(bytes.subarray(7, 16))).toBe(true);
    const tail = await read(4);
    expect(tail.map((b) => b.length)).toEqual([4, 1]);
    expect(Buffer.concat(tail).equals(bytes.subarray(11, 16))).toBe(true);
  });
});

describe('the upload block size', () => {
  it.each([
    [1, UPLOAD_BLOCK_BYTES],
    [32, UPLOAD_BLOCK_BYTES],
    [33, UPLOAD_BLOCK_BYTES / 2],
    [64, UPLOAD_BLOCK_BYTES / 2],
    [65, MIN_UPLOAD_BLOCK_BYTES],
    [256, MIN_UPLOAD_BLOCK_BYTES],
  ])('for up to %i uploads at once is %i bytes', (uploads, block) => {
    expect(uploadBlockBytes(uploads)).toBe(block);
  });

  it('keeps two blocks of every upload within UPLOAD_BUFFER_BYTES while blocks can shrink', () => {
    for (let uploads = 1; uploads * 2 * MIN_UPLOAD_BLOCK_BYTES <= UPLOAD_BUFFER_BYTES; uploads++) expect(2 * uploadBlockBytes(uploads) * uploads).toBeLessThanOrEqual(UPLOAD_BUFFER_BYTES);
  });
});

import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkRepositoryName, checkTag } from '../src/storage/digest.js';
import { locateStorage, readLink } from '../src/storage/layout.js';
import { tempDir } from './helpers/tmp.js';

const HEX = 'a'.repeat(64);

describe('readLink', () => {
  const dir = tempDir();
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
  ])('%s', async (_label, content, expected) => {
    const file = path.join(dir, `link-${Math.random()}`);
    writeFileSync(file, content, 'latin1');
    expect(await readLink(file)).toMatchObject(expected);
  });

  it('reports an absent link as absent', async () => {
    expect(await readLink(path.join(dir, 'nope'))).toMatchObject({ ok: false, reason: 'absent' });
  });

  it('does not follow a symbolic link', async () => {
    const target = path.join(dir, 'target');
    writeFileSync(target, `sha256:${HEX}`);
    const link = path.join(dir, 'symlink');
    symlinkSync(target, link);
    expect(await readLink(link)).toMatchObject({ ok: false, reason: 'invalid' });
  });
});

describe('locateStorage', () => {
  it('says clearly when a path is not a registry storage', async () => {
    const dir = tempDir();
    mkdirSync(path.join(dir, 'something'));
    await expect(locateStorage(dir)).rejects.toMatchObject({ code: 'NOT_A_STORAGE', exitCode: 2, message: expect.stringContaining('not a registry storage') });
  });

  it('says when the path does not exist', async () => {
    await expect(locateStorage('/nonexistent/registry')).rejects.toMatchObject({ code: 'NOT_A_STORAGE', message: expect.stringContaining('/nonexistent/registry') });
  });

  it('says when the path is a file', async () => {
    const file = path.join(tempDir(), 'file');
    writeFileSync(file, 'x');
    await expect(locateStorage(file)).rejects.toMatchObject({ code: 'NOT_A_STORAGE', message: expect.stringContaining('not a directory') });
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

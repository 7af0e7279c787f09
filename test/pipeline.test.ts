/**
 * The push as one streaming pipeline (issue 13): largest blobs first, each image verified right after its tag,
 * one listing per repository instead of a request per tag, and blobs the destination already holds mounted from
 * where they are instead of sent again.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addImage, makeLayer, StorageBuilder } from '../fixtures/builder.js';
import { buildDemoStorage } from '../fixtures/trees.js';
import { runCli } from './helpers/cli.js';
import { startProxy } from './helpers/proxy.js';
import { startRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

const demo = () => buildDemoStorage(path.join(tempDir('regmigrate-src-'), 'registry'));

describe('the push pipeline', () => {
  it('uploads the largest blobs first and verifies images while other uploads still run', async () => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    const tree = demo();
    const result = await runCli(['push', tree.root, '--to', proxy.host, '--concurrency', '1']);
    expect(result.exitCode, result.stderr).toBe(0);
    const puts = proxy.log.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/'));
    const sizes = puts.map((r) => Number(r.headers['content-length']));
    expect(sizes.length).toBeGreaterThan(5);
    expect(sizes).toEqual([...sizes].sort((a, b) => b - a));
    const lastUpload = proxy.log.lastIndexOf(puts.at(-1)!);
    const firstVerification = proxy.log.findIndex((r) => r.method === 'GET' && r.path.includes('/manifests/'));
    expect(firstVerification).toBeGreaterThanOrEqual(0);
    expect(firstVerification).toBeLessThan(lastUpload);
  });

  it('asks a plain registry one tags/list per repository: a first push makes no probe per tag', async () => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    const tree = demo();
    expect((await runCli(['push', tree.root, '--to', proxy.host])).exitCode).toBe(0);
    const manifestGets = proxy.log.filter((r) => r.method === 'GET' && r.path.includes('/manifests/')).length;
    // Only the verification read-backs: one per tag.
    expect(manifestGets).toBe(tree.tags.length);
    expect(proxy.log.filter((r) => r.path.endsWith('/tags/list')).length).toBe(new Set(tree.tags.map((t) => t.repository)).size);
  });

  it('a sync asks repositories its journal knows about directly, without listing them first', async () => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    const tree = demo();
    const state = path.join(tempDir(), 'state.json');
    expect((await runCli(['sync', tree.root, '--to', proxy.host, '--state', state])).exitCode).toBe(0);
    proxy.reset();
    const again = await runCli(['sync', tree.root, '--to', proxy.host, '--state', state]);
    expect(again.stdout).toMatch(/^sync: 0 pushed, 7 unchanged, 0 failed/m);
    expect(proxy.log.filter((r) => r.path.endsWith('/tags/list'))).toEqual([]);
    expect(proxy.log.filter((r) => r.method === 'GET' && r.path.includes('/manifests/')).length).toBe(tree.tags.length);
  });

  it('a new repository on layers the destination holds elsewhere uploads none of them: they are mounted', async () => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    const tree = demo();
    const state = path.join(tempDir(), 'state.json');
    expect((await runCli(['sync', tree.root, '--to', proxy.host, '--state', state])).exitCode).toBe(0);
    // A new repository whose only layer is the base every project already has in the destination.
    const b = new StorageBuilder(tree.root);
    const base = makeLayer('etc/os-release', 'NAME="fixture-base"\n', 24 * 1024);
    const web = addImage(b, 'web/frontend', { format: 'docker', layers: [base], label: 'frontend' });
    b.tag('web/frontend', '1.0', web.digest);
    proxy.reset();
    const result = await runCli(['sync', tree.root, '--to', proxy.host, '--state', state, '--report', path.join(tempDir(), 'r.json')]);
    expect(result.exitCode, result.stdout).toBe(0);
    expect(result.stdout).toMatch(/^pushed web\/frontend:1\.0 /m);
    const uploadedBytes = proxy.log.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/')).reduce((n, r) => n + r.bytesIn, 0);
    // Only the new config blob went over the wire; the 24 KiB base was mounted from a repository holding it.
    expect(uploadedBytes).toBeLessThan(2048);
    expect(proxy.log.some((r) => r.method === 'POST' && r.query.includes('mount=') && r.status === 201)).toBe(true);
  });
});

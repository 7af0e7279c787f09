import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildDemoStorage, buildFaultyStorage, type BuiltTree } from '../fixtures/trees.js';
import { scanStorage, summarize } from '../src/inventory/scan.js';
import type { SourceInventory, TagEntry } from '../src/inventory/types.js';
import { openStorage } from '../src/storage/open.js';
import { buildRealTree, type RealTree } from './helpers/real-tree.js';
import { tempDir } from './helpers/tmp.js';

const OPTIONS = { include: [] as string[], exclude: [] as string[], verify: false, concurrency: 16 };

async function scan(root: string, options: Partial<typeof OPTIONS> = {}): Promise<SourceInventory> {
  return scanStorage(await openStorage(root), { ...OPTIONS, ...options });
}

function find(inventory: SourceInventory, repository: string, tag: string): TagEntry {
  const entry = inventory.tags.find((t) => t.repository === repository && t.tag === tag);
  if (!entry) throw new Error(`${repository}:${tag} not in scan`);
  return entry;
}

describe('scan of the demo storage', () => {
  let tree: BuiltTree;
  let inventory: SourceInventory;
  beforeAll(async () => {
    tree = buildDemoStorage(path.join(tempDir(), 'registry'));
    inventory = await scan(tree.root);
  });

  it('finds every tag, no more, with its digest, media type and platforms', () => {
    expect(inventory.tags.map((t) => `${t.repository}:${t.tag}`).sort()).toEqual(tree.tags.map((t) => `${t.repository}:${t.tag}`).sort());
    for (const expected of tree.tags) {
      const entry = find(inventory, expected.repository, expected.tag);
      expect(entry.digest).toBe(expected.digest);
      expect(entry.mediaType).toBe(expected.mediaType);
      expect(entry.platforms).toEqual(expected.platforms ?? []);
      expect(entry.faults).toEqual([]);
    }
  });

  it('orders an index after its children and collects the blobs of all children', () => {
    const kubectl = find(inventory, 'infra/tools/kubectl', '1.29');
    expect(kubectl.manifests).toHaveLength(3);
    expect(kubectl.manifests.at(-1)).toBe(kubectl.digest);
    // two configs, two kubectl layers, two base layers (amd64 and arm64)
    expect(kubectl.blobs).toHaveLength(6);
    expect(kubectl.size).toBe(kubectl.blobs.reduce((s, b) => s + b.size, 0));
    expect(new Set(kubectl.blobs.map((b) => b.digest)).size).toBe(6);
  });

  it('counts shared blobs once in the summary', () => {
    const summary = summarize(inventory);
    const all = new Set(inventory.tags.flatMap((t) => t.blobs.map((b) => b.digest)));
    expect(summary.uniqueBlobs).toBe(all.size);
    expect(summary.tags).toBe(7);
    expect(summary.repositories).toBe(5);
    expect(summary.faultyTags).toBe(0);
    const sumOfTags = inventory.tags.reduce((s, t) => s + t.size, 0);
    expect(summary.totalBytes).toBeLessThan(sumOfTags);
  });

  it.each([
    ['the registry root', ''],
    ['the docker directory', 'docker'],
    ['docker/registry', 'docker/registry'],
    ['the v2 directory', 'docker/registry/v2'],
  ])('accepts %s', async (_label, suffix) => {
    const inv = await scan(path.join(tree.root, suffix));
    expect(inv.tags).toHaveLength(7);
  });

  it.each([
    [{ include: ['library/*'] }, ['library/alpine:3.19', 'library/alpine:latest']],
    [{ include: ['infra/**'] }, ['infra/tools/kubectl:1.29', 'infra/tools:latest']],
    [{ include: ['infra/*'] }, ['infra/tools:latest']],
    [{ exclude: ['infra/**', 'team/*'] }, ['busybox:1.36', 'library/alpine:3.19', 'library/alpine:latest']],
  ])('filters repositories with %j', async (filter, expected) => {
    const inv = await scan(tree.root, filter);
    expect(inv.tags.map((t) => `${t.repository}:${t.tag}`).sort()).toEqual([...expected].sort());
  });
});

describe('scan of a faulty storage', () => {
  let tree: BuiltTree;
  let plain: SourceInventory;
  let verified: SourceInventory;
  beforeAll(async () => {
    tree = buildFaultyStorage(path.join(tempDir(), 'registry'));
    plain = await scan(tree.root);
    verified = await scan(tree.root, { verify: true });
  });

  it('reports every tag and never aborts on a bad one', () => {
    expect(verified.tags).toHaveLength(tree.tags.length);
  });

  const faulty = () => tree.tags.filter((t) => t.fault);
  it('flags each injected fault with its kind and the offending digest', () => {
    expect(faulty().length).toBeGreaterThanOrEqual(8);
    for (const expected of faulty()) {
      const entry = find(verified, expected.repository, expected.tag);
      const match = entry.faults.find((f) => f.kind === expected.fault!.kind);
      expect(match, `${expected.repository}:${expected.tag} should have ${expected.fault!.kind}, has ${JSON.stringify(entry.faults)}`).toBeDefined();
      if (expected.fault!.digest) {
        expect(match!.digest).toBe(expected.fault!.digest);
        expect(match!.message).toContain(expected.fault!.digest);
      }
      expect(match!.message).not.toContain('\n');
    }
  });

  it('leaves healthy tags healthy next to broken ones', () => {
    for (const expected of tree.tags.filter((t) => !t.fault)) {
      expect(find(verified, expected.repository, expected.tag).faults).toEqual([]);
    }
  });

  it('sees bit rot only with --verify, but a truncated blob without it', () => {
    expect(find(plain, 'broken/rot', 'v1').faults).toEqual([]);
    expect(find(verified, 'broken/rot', 'v1').faults.map((f) => f.kind)).toEqual(['corrupt-blob']);
    expect(find(plain, 'broken/truncated', 'v1').faults.map((f) => f.kind)).toEqual(['corrupt-blob']);
    expect(find(verified, 'broken/truncated', 'v1').faults).toHaveLength(1);
  });

  it('ignores tag directories without current/link and .tmp link files', () => {
    expect(plain.tags.some((t) => t.tag === 'deleted')).toBe(false);
  });

  it('counts faults by kind in the summary', () => {
    const summary = summarize(verified);
    expect(summary.faultyTags).toBe(faulty().length);
    expect(summary.faults['missing-blob']).toBe(1);
    expect(summary.faults['corrupt-blob']).toBe(2);
    expect(summary.faults['invalid-link']).toBe(1);
  });
});

describe('scan of a storage written by the real docker-registry', () => {
  let real: RealTree;
  let inventory: SourceInventory;
  beforeAll(async () => {
    real = await buildRealTree();
    inventory = await scan(real.root, { verify: true });
  });

  it('finds every tag with the digest and media type the registry serves', () => {
    expect(inventory.tags.map((t) => `${t.repository}:${t.tag}`).sort()).toEqual(real.tags.map((t) => `${t.repository}:${t.tag}`).sort());
    for (const expected of real.tags) {
      const entry = find(inventory, expected.repository, expected.tag);
      expect(entry.digest, `${expected.repository}:${expected.tag}`).toBe(expected.digest);
      expect(entry.mediaType, `${expected.repository}:${expected.tag}`).toBe(expected.mediaType);
      expect(entry.faults).toEqual([]);
    }
  });
});

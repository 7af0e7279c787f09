/**
 * What the real registry writes into a bucket: distribution 2.8's s3 driver, pushed to by skopeo, against the test
 * S3 server. The bucket must hold, under ROOTDIRECTORY/docker/registry/v2/, the very tree the filesystem driver
 * writes for the same images: that is what lets one walker read both.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3SourceClient, type ListedObject } from '../src/storage/s3/client.js';
import { staticCredentials } from '../src/storage/s3/credentials.js';
import { startRgw, type RunningRgw } from './helpers/rgw.js';
import { buildS3Tree, type S3Tree } from './helpers/s3-registry.js';

let rgw: RunningRgw;
let tree: S3Tree;
let client: S3SourceClient;
const dispatcher = new Agent({ connections: 16 });

beforeAll(async () => {
  rgw = await startRgw();
  tree = await buildS3Tree(rgw, 'registry', '/prod/registry');
  client = new S3SourceClient({
    bucket: tree.bucket,
    endpoint: rgw.endpoint,
    region: rgw.region,
    credentials: staticCredentials({ accessKeyId: rgw.accessKey, secretAccessKey: rgw.secretKey }, 'the test'),
    dispatcher,
  });
}, 300_000);

afterAll(() => dispatcher.close());

function filesUnder(dir: string): Map<string, number> {
  const files = new Map<string, number>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    files.set(path.relative(dir, file).split(path.sep).join('/'), statSync(file).size);
  }
  return files;
}

async function objectsUnder(prefix: string): Promise<Map<string, ListedObject>> {
  const objects = new Map<string, ListedObject>();
  for await (const page of client.list({ prefix })) for (const o of page.objects) objects.set(o.key.slice(prefix.length), o);
  return objects;
}

describe('a registry storage written into a bucket by distribution 2.8', () => {
  it('holds, under ROOTDIRECTORY/docker/registry/v2/, the same files with the same sizes as the filesystem driver writes', async () => {
    const files = filesUnder(tree.fsV2);
    const objects = await objectsUnder(tree.v2Prefix);
    expect(files.size).toBeGreaterThan(80);
    expect([...objects.keys()].sort()).toEqual([...files.keys()].sort());
    expect([...objects].filter(([key, o]) => o.size !== files.get(key)).map(([key]) => key)).toEqual([]);
    // Every tag, the multi-arch ones and the schema1 one among them, is there.
    for (const t of tree.tags) expect(files.has(`repositories/${t.repository}/_manifests/tags/${t.tag}/current/link`), `${t.repository}:${t.tag}`).toBe(true);
    expect(objects.has('repositories/legacy/alpine/_manifests/tags/2016/current/link')).toBe(true);
    // Nothing outside the root either.
    const all = await objectsUnder('');
    expect([...all.keys()].filter((k) => !k.startsWith(tree.v2Prefix))).toEqual([]);
  });

  it('holds the same bytes in every link and manifest', async () => {
    const small = [...filesUnder(tree.fsV2)].filter(([, size]) => size < 64 * 1024);
    expect(small.length).toBeGreaterThan(50);
    const differing: string[] = [];
    for (const [key] of small) {
      const bytes = await client.getObject(tree.v2Prefix + key, 64 * 1024);
      if (!bytes.equals(readFileSync(path.join(tree.fsV2, key)))) differing.push(key);
    }
    expect(differing).toEqual([]);
    expect((await client.getObject(`${tree.v2Prefix}repositories/legacy/alpine/_manifests/tags/2016/current/link`, 100)).toString()).toBe(tree.schema1['legacy/alpine:2016']);
  });

  it('stored the layer over 40 MiB in parts (a multipart ETag), and its bytes still hash to its digest', async () => {
    const hex = tree.big.layer.slice('sha256:'.length);
    const key = `${tree.v2Prefix}blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
    const [listed] = (await client.listPage({ prefix: key })).objects;
    expect(listed?.size).toBe(tree.big.size);
    expect(tree.big.size).toBeGreaterThan(40 * 1024 * 1024);
    // S3's ETag of an object made by a multipart upload or copy: the MD5 of the parts' MD5s, a dash, the part count.
    expect(listed?.etag).toMatch(/^"[0-9a-f]{32}-\d+"$/);
    const hash = createHash('sha256');
    for await (const chunk of await client.openRange(key)) hash.update(chunk as Buffer);
    expect(`sha256:${hash.digest('hex')}`).toBe(tree.big.layer);
  });
});

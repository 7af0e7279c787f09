/**
 * A registry storage in a bucket, written by the real registry: Debian's docker-registry (distribution 2.8) with its
 * `s3` storage driver (`s3-aws`) pointed at the test S3 server (fixtures/registry-process.ts, S3Storage, says which
 * options it reads), filled with `skopeo copy`. The same images go into a filesystem registry first and are copied
 * from there with their digests kept, so the two storages can be compared key for file.
 */
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { addImage, makeLayer, MEDIA, StorageBuilder } from '../../fixtures/builder.js';
import { buildDemoStorage, type ExpectedTag } from '../../fixtures/trees.js';
import { startRegistry } from './registry.js';
import { s3Writer, type S3Account } from './s3-writer.js';
import { tempDir } from './tmp.js';

export interface S3Tree {
  readonly bucket: string;
  /** Key prefix of the storage's `docker/registry/v2/` in the bucket. */
  readonly v2Prefix: string;
  /** The same images in a filesystem registry's storage: its `docker/registry/v2` directory. */
  readonly fsV2: string;
  readonly tags: ExpectedTag[];
  /** The image whose one layer is over 40 MiB: uploaded in parts, moved with UploadPartCopy. */
  readonly big: { readonly repository: string; readonly tag: string; readonly layer: string; readonly size: number };
  /** `repo:tag` → digest of the schema1 images. */
  readonly schema1: Record<string, string>;
}

const BIG_LAYER_BYTES = 41 * 1024 * 1024;

async function skopeoCopy(args: string[]): Promise<void> {
  await execa('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', ...args]);
}

/**
 * The demo images (docker and OCI, a manifest list and an OCI index), a schema1 image and an image with a 41 MiB
 * layer, pushed by the real registry into `bucket` under `rootDirectory` and into a filesystem storage.
 */
export async function buildS3Tree(s3: S3Account, bucket: string, rootDirectory: string): Promise<S3Tree> {
  const demo = buildDemoStorage(path.join(tempDir('regmigrate-s3src-'), 'registry'));
  const builder = new StorageBuilder(demo.root);
  const layer = makeLayer('data/big.bin', 'big layer\n', BIG_LAYER_BYTES, 1);
  const bigImage = addImage(builder, 'big/layer', { format: 'docker', layers: [layer], label: 'big' });
  builder.tag('big/layer', '1', bigImage.digest);
  const tags: ExpectedTag[] = [...demo.tags, { repository: 'big/layer', tag: '1', digest: bigImage.digest, mediaType: MEDIA.dockerManifest }];

  await s3Writer(s3).createBucket(bucket);
  const from = await startRegistry({ root: demo.root, readonly: true });
  const fs = await startRegistry({ schema1: true });
  const inBucket = await startRegistry({ s3: { endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region, bucket, rootDirectory }, schema1: true });
  const refs = tags.map((t) => `${t.repository}:${t.tag}`);
  for (const ref of refs) await skopeoCopy(['--all', `docker://${from.host}/${ref}`, `docker://${fs.host}/${ref}`]);
  await skopeoCopy(['--format', 'v2s1', `docker://${from.host}/library/alpine:3.19`, `docker://${fs.host}/legacy/alpine:2016`]);
  // From the filesystem registry to the bucket byte for byte: a schema1 copy is signed afresh each time otherwise.
  for (const ref of [...refs, 'legacy/alpine:2016']) await skopeoCopy(['--all', '--preserve-digests', `docker://${fs.host}/${ref}`, `docker://${inBucket.host}/${ref}`]);
  await Promise.all([from.stop(), fs.stop(), inBucket.stop()]);
  const fsV2 = path.join(fs.root, 'docker', 'registry', 'v2');
  // A signed schema1 manifest's digest is its payload's, not its bytes': the registry's link says which it is.
  const schema1 = { 'legacy/alpine:2016': readFileSync(path.join(fsV2, 'repositories/legacy/alpine/_manifests/tags/2016/current/link'), 'utf8') };
  const prefix = rootDirectory.replace(/^\/+|\/+$/g, '');
  return {
    bucket,
    v2Prefix: `${prefix ? `${prefix}/` : ''}docker/registry/v2/`,
    fsV2,
    tags,
    big: { repository: 'big/layer', tag: '1', layer: layer.digest, size: layer.blob.length },
    schema1,
  };
}

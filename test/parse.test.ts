import { describe, expect, it } from 'vitest';
import { parseManifest } from '../src/image/parse.js';

const D = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;
const desc = (n: number, extra: object = {}) => ({ mediaType: 'x', digest: D(n), size: n * 10, ...extra });
const bytes = (v: unknown) => Buffer.from(JSON.stringify(v));

describe('parseManifest detects the media type from the bytes', () => {
  it.each([
    ['schema1', { schemaVersion: 1, name: 'a', tag: 'b', fsLayers: [{ blobSum: D(1) }, { blobSum: D(2) }] }, 'application/vnd.docker.distribution.manifest.v1+prettyjws', 'schema1'],
    ['docker v2', { schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', config: desc(1), layers: [desc(2)] }, 'application/vnd.docker.distribution.manifest.v2+json', 'image'],
    ['docker manifest list', { schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json', manifests: [desc(3)] }, 'application/vnd.docker.distribution.manifest.list.v2+json', 'index'],
    ['OCI manifest', { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: desc(1), layers: [] }, 'application/vnd.oci.image.manifest.v1+json', 'image'],
    ['OCI index', { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [desc(3)] }, 'application/vnd.oci.image.index.v1+json', 'index'],
    ['OCI manifest without mediaType', { schemaVersion: 2, config: desc(1), layers: [desc(2)] }, 'application/vnd.oci.image.manifest.v1+json', 'image'],
    ['OCI index without mediaType', { schemaVersion: 2, manifests: [desc(3)] }, 'application/vnd.oci.image.index.v1+json', 'index'],
  ])('%s', (_label, manifest, mediaType, kind) => {
    const result = parseManifest(bytes(manifest));
    expect(result).toMatchObject({ ok: true, manifest: { mediaType, kind } });
  });

  it('collects config then layers of an image, with sizes', () => {
    const result = parseManifest(bytes({ schemaVersion: 2, config: desc(1), layers: [desc(2), desc(3)] }));
    if (!result.ok) throw new Error(result.reason);
    expect(result.manifest.blobs.map((b) => [b.role, b.digest, b.size])).toEqual([
      ['config', D(1), 10],
      ['layer', D(2), 20],
      ['layer', D(3), 30],
    ]);
  });

  it('marks foreign layers (urls or foreign media type)', () => {
    const result = parseManifest(
      bytes({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        config: desc(1),
        layers: [desc(2, { mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip' }), desc(3, { urls: ['https://example.invalid/l'] }), desc(4)],
      }),
    );
    if (!result.ok) throw new Error(result.reason);
    expect(result.manifest.blobs.map((b) => b.foreign)).toEqual([false, true, true, false]);
  });

  it('reads platforms of index children, hiding attestation entries', () => {
    const result = parseManifest(
      bytes({
        schemaVersion: 2,
        manifests: [
          desc(1, { platform: { os: 'linux', architecture: 'arm', variant: 'v7' } }),
          desc(2, { platform: { os: 'unknown', architecture: 'unknown' } }),
        ],
      }),
    );
    if (!result.ok) throw new Error(result.reason);
    expect(result.manifest.children.map((c) => c.platform)).toEqual(['linux/arm/v7', undefined]);
  });

  it('records an OCI subject', () => {
    const result = parseManifest(bytes({ schemaVersion: 2, config: desc(1), layers: [], subject: desc(9) }));
    expect(result).toMatchObject({ ok: true, manifest: { subject: D(9) } });
  });

  it.each([
    ['not JSON', Buffer.from('{nope'), 'not JSON'],
    ['no schemaVersion', bytes({ mediaType: 'x' }), 'schemaVersion'],
    ['schemaVersion 3', bytes({ schemaVersion: 3 }), 'schemaVersion 3'],
    ['unknown media type', bytes({ schemaVersion: 2, mediaType: 'text/plain' }), 'text/plain'],
    ['image without config', bytes({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: [] }), 'config'],
    ['bad layer digest', bytes({ schemaVersion: 2, config: desc(1), layers: [{ digest: 'md5:x', size: 1 }] }), 'md5:x'],
    ['schema1 without fsLayers', bytes({ schemaVersion: 1 }), 'fsLayers'],
  ])('rejects %s with a reason', (_label, input, reasonPart) => {
    const result = parseManifest(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toContain(reasonPart);
  });
});

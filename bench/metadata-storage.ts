/**
 * A metadata-heavy storage in distribution's real layout: `repositories` × `tagsPerRepo` tags, each its own
 * docker v2 manifest over a shared base layer (one of a few) and a small layer of its own, with the `_layers`,
 * `revisions` and tag `index` links a registry writes. Blobs are tiny: this measures walking and resolving.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MEDIA, sha256, StorageBuilder } from '../fixtures/builder.js';

export interface MetadataStorageSpec {
  readonly repositories: number;
  readonly tagsPerRepo: number;
}

export function buildMetadataStorage(root: string, spec: MetadataStorageSpec): { tags: number; reused: boolean } {
  const marker = path.join(root, `.complete-${spec.repositories}x${spec.tagsPerRepo}`);
  const tags = spec.repositories * spec.tagsPerRepo;
  if (existsSync(marker)) return { tags, reused: true };
  const b = new StorageBuilder(root);
  const bases = Array.from({ length: 20 }, (_, i) => b.writeBlob(`base layer ${i}\n`.repeat(8)));
  for (let r = 0; r < spec.repositories; r++) {
    const project = `project${r % 50}`;
    const repo = `${project}/service-${r}`;
    const base = bases[r % bases.length]!;
    const baseSize = Buffer.byteLength(`base layer ${r % bases.length}\n`.repeat(8));
    for (let t = 0; t < spec.tagsPerRepo; t++) {
      const layer = Buffer.from(`layer of ${repo} tag ${t}\n`);
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(base), sha256(layer)] } }));
      const layerDigest = b.addBlob(repo, layer);
      const configDigest = b.addBlob(repo, config);
      b.writeLink(path.join(b.repoDir(repo), '_layers', 'sha256', base.slice(7), 'link'), base);
      const manifest = JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.dockerManifest,
        config: { mediaType: MEDIA.dockerConfig, size: config.length, digest: configDigest },
        layers: [
          { mediaType: MEDIA.dockerLayer, size: baseSize, digest: base },
          { mediaType: MEDIA.dockerLayer, size: layer.length, digest: layerDigest },
        ],
      });
      const digest = b.addManifest(repo, manifest);
      b.tag(repo, `v${t}`, digest);
    }
  }
  mkdirSync(path.dirname(marker), { recursive: true });
  writeFileSync(marker, '');
  return { tags, reused: false };
}

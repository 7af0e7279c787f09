import type { RequestBudget } from '../destination/budget.js';
import { DOCKER_MANIFEST, isSchema1 } from '../image/media-types.js';
import type { ManifestRecord } from '../image/reader.js';
import { ImageConfig, ImageManifest } from '../image/schema.js';
import { buildSchema2 } from '../image/schema1.js';
import { tagRef } from '../inventory/types.js';
import type { Candidate } from '../plan/plan.js';
import type { RegistryClient } from '../registry/client.js';

/** A config a conversion made is a few KiB; anything much larger is not ours, and is not read. */
const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * Schema1 images converted by an earlier push, recognised at the destination without a journal. schema1 → schema2 is
 * deterministic (image/schema1.ts), so a tag whose destination digest is not the source's holds our conversion when
 * converting the source gives exactly that digest. The diff IDs, the one costly part of a conversion, are read back
 * from the destination's config instead of decompressing the layers: one manifest GET and one config GET per such
 * tag. The digest comparison proves the rest: the manifest's digest covers the config's, which covers the diff IDs,
 * the history and everything else taken from the source.
 *
 * Adds `source digest → destination digest` to `converted` for every tag recognised; anything unexpected (another
 * image there, a manifest or config that will not parse, a failed request) leaves the tag to be pushed as before.
 * Its requests are probes of the destination's budget. A plain registry only: on Harbor a manifest GET records a pull and passes the pull policies (goharbor/harbor
 * src/server/registry/route.go: contenttrust and vulnerable middlewares on manifest GET and HEAD), and its artifact
 * API does not serve a config's diff IDs (src/controller/artifact/processor/image/manifest_v2.go keeps created,
 * architecture, os, config and author only). Harbor runs its registry with schema1 compatibility on
 * (make/photon/prepare/templates/registry/config.yml.jinja), so only `--schema1 convert` converts there.
 */
export async function recogniseConversions(
  client: RegistryClient,
  candidates: readonly Candidate[],
  manifests: ReadonlyMap<string, ManifestRecord>,
  tags: ReadonlyMap<string, string>,
  converted: Map<string, string>,
  budget: RequestBudget,
): Promise<void> {
  await Promise.all(
    candidates.map(async (c) => {
      const digest = c.entry.digest;
      if (!digest || !isSchema1(c.entry.mediaType)) return;
      const there = tags.get(tagRef({ repository: c.repository, tag: c.entry.tag }));
      if (there === undefined || there === digest || converted.get(digest) === there) return;
      const payload = manifests.get(digest)?.bytes;
      if (!payload) return;
      try {
        const ours = await budget.probe(() => isConversionOf(client, c.repository, there, payload, c.entry.blobs));
        if (ours) converted.set(digest, there);
      } catch {
        // Not known to be ours: the push converts and puts it as usual.
      }
    }),
  );
}

async function isConversionOf(client: RegistryClient, repository: string, there: string, payload: Buffer, blobs: ReadonlyArray<{ digest: string; size: number }>): Promise<boolean> {
  const served = await client.getManifest(repository, there);
  if (!served || served.mediaType !== DOCKER_MANIFEST) return false;
  const manifest = ImageManifest.safeParse(JSON.parse(served.bytes.toString('utf8')));
  if (!manifest.success || manifest.data.config.size > MAX_CONFIG_BYTES) return false;
  const config = ImageConfig.safeParse(JSON.parse((await client.readBlob(repository, manifest.data.config.digest)).toString('utf8')));
  if (!config.success) return false;
  const diffIds = config.data.rootfs.diff_ids;
  const sizes = new Map(blobs.map((b) => [b.digest, b.size]));
  const rebuilt = await buildSchema2(payload, {
    size: (digest) => sizes.get(digest) ?? -1,
    diffId: async (_digest, index) => diffIds[index] ?? '',
  });
  return rebuilt.digest === there;
}

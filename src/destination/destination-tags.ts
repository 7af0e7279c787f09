import pLimit from 'p-limit';
import type { DestinationTag, DestinationTags } from '../inventory/types.js';
import type { Destination } from './destination.js';

export type { DestinationTag, DestinationTags };


/**
 * Every tag in the destination's repositories under the given projects (first name components). Harbor: projects →
 * repositories through `/api/v2.0`, tag names from `/v2/<repo>/tags/list`, digests from the artifacts API. A plain registry: `_catalog` + `tags/list` +
 * a manifest GET per tag (registry/manifests.ts probeManifest). Bounded concurrency throughout.
 */
export async function readDestinationTags(destination: Destination, projects: ReadonlySet<string>, concurrency: number): Promise<DestinationTags> {
  const tags: DestinationTags = new Map();
  const limit = pLimit(concurrency);
  const harbor = destination.harbor;
  if (harbor) {
    const existing = new Set(await harbor.listProjects());
    const wanted = [...projects].filter((p) => existing.has(p));
    const repositories = (await Promise.all(wanted.map((p) => limit(() => harbor.listRepositories(p))))).flat();
    // Tags from `/v2/<repo>/tags/list` (Harbor's database: accessories included), digests from the artifact
    // listing, and one artifact read for each tag the listing hides (cosign signatures, referrers).
    await Promise.all(
      repositories.map((repository) =>
        limit(async () => {
          const names = await destination.client.listTags(repository);
          const known = new Map<string, DestinationTag>();
          for (const artifact of (await harbor.listArtifacts(repository)) ?? []) {
            for (const tag of artifact.tags ?? []) known.set(tag.name, { digest: artifact.digest, mediaType: artifact.manifest_media_type ?? artifact.media_type });
          }
          for (const name of names) {
            let found = known.get(name);
            if (!found) {
              const artifact = await harbor.getArtifact(repository, name);
              if (artifact) found = { digest: artifact.digest, mediaType: artifact.manifest_media_type ?? artifact.media_type };
            }
            if (found) tags.set(`${repository}:${name}`, found);
          }
        }),
      ),
    );
    return tags;
  }
  const client = destination.client;
  const repositories = (await client.catalog()).filter((r) => projects.has(r.split('/')[0]!));
  const listed = await Promise.all(repositories.map((r) => limit(async () => ({ repository: r, tags: await client.listTags(r) }))));
  await Promise.all(
    listed.flatMap(({ repository, tags: names }) =>
      names.map((tag) =>
        limit(async () => {
          const head = await client.probeManifest(repository, tag);
          if (head?.digest) tags.set(`${repository}:${tag}`, { digest: head.digest, mediaType: head.mediaType });
        }),
      ),
    ),
  );
  return tags;
}

import type { Destination } from '../destination/destination.js';
import { tagRef } from '../inventory/types.js';
import type { Candidate } from '../plan/plan.js';

/**
 * What the destination already holds for the candidate tags (`repo:tag` → digest), so a second run transfers
 * nothing. Harbor: each repository's artifact listing (100 a page), then one artifact read for a tag the listing does
 * not show (it hides accessories); no manifest GET, so no pull is recorded and no pull policy answers 412. A plain
 * registry: one `tags/list` per repository, then a manifest request only for the tags it lists (a first push into new
 * repositories costs one request per repository, not one per tag); repositories in `known` (the sync journal has tags
 * there) skip the listing. Every request is a probe of the destination's budget: it waits behind the batch under way.
 * A tag that cannot be asked about is treated as absent: the push itself will then say precisely what is wrong.
 */
export async function probeTags(destination: Destination, candidates: readonly Candidate[], known?: ReadonlySet<string>): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const byRepository = [...groupByRepository(candidates)];
  if (destination.harbor) await Promise.all(byRepository.map(([repository, wanted]) => probeHarbor(destination, repository, wanted, found)));
  else await Promise.all(byRepository.map(([repository, wanted]) => probeRegistry(destination, repository, wanted, found, known)));
  return found;
}

async function probeHarbor(destination: Destination, repository: string, wanted: readonly Candidate[], found: Map<string, string>): Promise<void> {
  const harbor = destination.harbor!;
  const budget = destination.budget.requests;
  try {
    const artifacts = await budget.probe(() => harbor.listArtifacts(repository));
    if (!artifacts) return;
    for (const a of artifacts) for (const t of a.tags ?? []) found.set(tagRef({ repository, tag: t.name }), a.digest);
    for (const c of wanted) {
      const ref = tagRef({ repository, tag: c.entry.tag });
      if (found.has(ref)) continue;
      const one = await budget.probe(() => harbor.getArtifact(repository, c.entry.tag));
      if (one) found.set(ref, one.digest);
    }
  } catch {
    // Unknown is treated as absent.
  }
}

async function probeRegistry(destination: Destination, repository: string, wanted: readonly Candidate[], found: Map<string, string>, known?: ReadonlySet<string>): Promise<void> {
  const { client } = destination;
  const budget = destination.budget.requests;
  let listed: Set<string> | undefined;
  try {
    if (!known?.has(repository)) listed = new Set(await budget.probe(() => client.listTags(repository)));
  } catch {
    listed = undefined; // no listing (a registry that refuses it): ask about every tag
  }
  await Promise.all(
    wanted
      .filter((c) => !listed || listed.has(c.entry.tag) || c.entry.untagged)
      .map(async (c) => {
        try {
          const head = await budget.probe(() => client.probeManifest(c.repository, c.entry.tag));
          if (head?.digest) found.set(tagRef({ repository: c.repository, tag: c.entry.tag }), head.digest);
        } catch {
          // Unknown is treated as absent.
        }
      }),
  );
}

function groupByRepository(candidates: readonly Candidate[]): Map<string, Candidate[]> {
  const byRepository = new Map<string, Candidate[]>();
  for (const c of candidates) {
    let list = byRepository.get(c.repository);
    if (!list) byRepository.set(c.repository, (list = []));
    list.push(c);
  }
  return byRepository;
}

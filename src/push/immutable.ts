import type { Destination } from '../destination/destination.js';
import { protectingRule } from '../harbor/immutable.js';
import { tagRef } from '../inventory/types.js';
import type { Candidate } from '../plan/plan.js';
import type { ProjectGate } from './projects.js';

/**
 * Harbor: the candidate tags the destination holds at another digest that an immutability rule protects
 * (`repo:tag` → the rule): Harbor refuses to move them (412, src/server/middleware/immutable/pushmf.go), so they are
 * planned as `immutable`, not pushed. The project's rules are evaluated as Harbor evaluates them
 * (harbor/immutable.ts); an account that may not read them asks Harbor about each such tag instead. A tag that
 * cannot be asked about is left to the push, whose 412 is recognised (harbor/refusals.ts).
 */
export async function findProtectedTags(destination: Destination, projects: ProjectGate, candidates: readonly Candidate[], tags: ReadonlyMap<string, string>, converted: ReadonlyMap<string, string>): Promise<Map<string, string>> {
  const harbor = destination.harbor;
  const out = new Map<string, string>();
  if (!harbor) return out;
  await Promise.all(
    candidates.map(async (c) => {
      if (c.entry.untagged) return;
      const ref = tagRef({ repository: c.repository, tag: c.entry.tag });
      const there = tags.get(ref);
      if (there === undefined || there === c.entry.digest || there === converted.get(c.entry.digest!)) return;
      const rules = projects.immutableRules(c.project);
      if (rules) {
        const rule = protectingRule(rules, c.repository, c.entry.tag);
        if (rule) out.set(ref, rule);
        return;
      }
      try {
        if (await destination.budget.requests.probe(() => harbor.tagImmutable(c.repository, c.entry.tag))) out.set(ref, "an immutability rule (this account may not read the project's rules)");
      } catch {
        // Unknown: the push will tell.
      }
    }),
  );
  return out;
}

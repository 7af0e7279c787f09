import type { Plan } from './plan.js';

/** What the account must be allowed in one Harbor project for a plan, and what Harbor says it may not do there. */
export interface ProjectNeeds {
  readonly project: string;
  /** Among `create project`, `push`, `pull` (to check and mount blobs), `delete tags`. */
  readonly needs: readonly string[];
  /** The needed rights Harbor says the account lacks (empty when it has them all, or did not say). */
  readonly missing: readonly string[];
}

export type Right = 'create project' | 'push' | 'pull' | 'delete tags';

/**
 * The rights a plan needs, project by project: `create project` for the projects it creates, `push` and `pull` where
 * it pushes (an upload first asks whether the blob is there, by a mount into the repository itself, which needs pull),
 * `pull` where blobs are mounted from (a cross-repository mount needs pull on the repository it mounts from), and
 * `delete tags` in every project when `sync --delete-extra --yes` may delete there (`deleteIn`); `pushIn` adds projects
 * whose pushes were refused before planning, `createIn` absent ones among them. `lacks` says which of them the account does not hold. Pure.
 */
export function planNeeds(plan: Plan, more: { readonly pushIn?: readonly string[]; readonly createIn?: readonly string[]; readonly deleteIn?: readonly string[] }, lacks: (project: string, right: Right) => boolean): ProjectNeeds[] {
  const needs = new Map<string, Set<Right>>();
  const need = (project: string, right: Right): void => {
    let set = needs.get(project);
    if (!set) needs.set(project, (set = new Set()));
    set.add(right);
  };
  const projectOf = (repository: string): string => repository.slice(0, repository.indexOf('/'));
  for (const project of plan.projectsToCreate) need(project, 'create project');
  for (const image of plan.images) {
    need(image.project, 'push');
    need(image.project, 'pull');
  }
  for (const blob of plan.blobs) {
    if (blob.mounts.length > 0) need(projectOf(blob.home), 'pull');
    if (blob.sharedFrom) need(projectOf(blob.sharedFrom), 'pull');
  }
  for (const project of more.createIn ?? []) need(project, 'create project');
  for (const project of more.pushIn ?? []) {
    need(project, 'push');
    need(project, 'pull');
  }
  for (const project of more.deleteIn ?? []) need(project, 'delete tags');
  const order: readonly Right[] = ['create project', 'push', 'pull', 'delete tags'];
  return [...needs]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([project, set]) => {
      const list = order.filter((r) => set.has(r));
      return { project, needs: list, missing: list.filter((r) => lacks(project, r)) };
    });
}

import type { Plan } from './plan.js';

/**
 * What Harbor will charge each project's storage quota for a plan, in bytes, by its own accounting
 * (docs/registry-behaviour.md, Harbor policies): every blob and manifest a project's images need is charged its full size
 * to that project once, whether it is uploaded or mounted from another project, unless it is already associated with
 * the project. Known to be there: the blobs and manifests of images the project already holds at the same digest
 * (`plan.existing`), and whatever `inProject` says (charged by an earlier batch, for instance). Anything else is
 * counted: Harbor may charge less (a blob some other artifact brought into the project), never more.
 */
export function planCharges(plan: Plan, manifestSize: (digest: string) => number, inProject: (project: string, digest: string) => boolean = () => false): Map<string, ProjectCharge> {
  const sizes = new Map(plan.blobs.map((b) => [b.digest, b.size]));
  const there = new Set<string>();
  for (const image of plan.existing) {
    for (const digest of image.blobs) there.add(`${image.project}@${digest}`);
    for (const manifest of image.manifests) there.add(`${image.project}@${manifest.digest}`);
  }
  const out = new Map<string, ProjectCharge>();
  const add = (project: string, digest: string, size: number): void => {
    let charge = out.get(project);
    if (!charge) out.set(project, (charge = { bytes: 0, digests: new Set() }));
    if (charge.digests.has(digest) || there.has(`${project}@${digest}`) || inProject(project, digest)) return;
    charge.digests.add(digest);
    charge.bytes += size;
  };
  for (const image of plan.images) {
    for (const digest of image.blobs) add(image.project, digest, sizes.get(digest) ?? 0);
    for (const manifest of image.manifests) add(image.project, manifest.digest, manifestSize(manifest.digest));
  }
  return out;
}

export interface ProjectCharge {
  bytes: number;
  /** The blobs and manifests charged. */
  readonly digests: Set<string>;
}

/** A project's charge beside its quota, as a dry run shows it and a refusal says it. */
export interface ProjectQuota {
  readonly project: string;
  /** What the run would add to the project's usage (planCharges). */
  readonly charge: number;
  /** The hard limit and the usage Harbor reported (bytes; limit -1 = unlimited); undefined when not readable. */
  readonly limit: number | undefined;
  readonly used: number | undefined;
  /** The charge does not fit in what is left: nothing is pushed to the project. */
  readonly refused: boolean;
}

/** Room left under a quota: undefined when unlimited or unknown. */
export function quotaRoom(q: Pick<ProjectQuota, 'limit' | 'used'>): number | undefined {
  return q.limit === undefined || q.limit < 0 ? undefined : Math.max(0, q.limit - (q.used ?? 0));
}

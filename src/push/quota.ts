import type { StorageQuota } from '../harbor/client.js';
import type { ManifestRecord } from '../image/reader.js';
import type { Plan } from '../plan/plan.js';
import { planCharges, quotaRoom, type ProjectQuota } from '../plan/quota.js';
import { formatBytes } from '../util/format.js';

/**
 * Harbor projects' storage quotas across the batches of a run: each batch's plan is charged to its projects as Harbor
 * will charge it (plan/quota.ts), before any of it is sent, and a project whose charge does not fit in what its quota
 * has left is refused whole: none of its images is pushed, in this batch or a later one. What one batch charged is
 * remembered (bytes, and the blobs and manifests, for projects with a limit), so a blob two batches share is counted
 * once and the later batches see less room.
 */
export class QuotaBook {
  readonly #quota: (project: string) => StorageQuota | undefined;
  /** Remember every project's charged blobs (a dry run, which shows every project's charge), not only limited ones. */
  readonly #everyProject: boolean;
  readonly #spent = new Map<string, number>();
  readonly #charged = new Map<string, Set<string>>();
  readonly #refused = new Map<string, string>();

  readonly #onRefused: (reason: string) => void;

  /** `onRefused`: told once per project refused, with the one line that says why and what to do. */
  constructor(quota: (project: string) => StorageQuota | undefined, options: { everyProject: boolean; onRefused?: (reason: string) => void }) {
    this.#quota = quota;
    this.#everyProject = options.everyProject;
    this.#onRefused = options.onRefused ?? (() => undefined);
  }

  /**
   * Charges a batch's plan. Returns each project's charge beside its quota; the refused ones (now, or by an earlier
   * batch) carry `refused`, and `refusal(project)` says why in one line.
   */
  charge(plan: Plan, manifests: ReadonlyMap<string, ManifestRecord>): ProjectQuota[] {
    const charges = planCharges(plan, (digest) => manifests.get(digest)?.bytes.length ?? 0, (project, digest) => this.#charged.get(project)?.has(digest) ?? false);
    const out: ProjectQuota[] = [];
    for (const [project, charge] of [...charges].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const quota = this.#quota(project);
      const spent = this.#spent.get(project) ?? 0;
      const used = quota ? quota.used + spent : undefined;
      const room = quota ? quotaRoom({ limit: quota.hard, used }) : undefined;
      if (!this.#refused.has(project) && room !== undefined && charge.bytes > room) {
        const reason = refusal(project, charge.bytes, room, quota!, spent);
        this.#refused.set(project, reason);
        this.#onRefused(reason);
      }
      const refused = this.#refused.has(project);
      out.push({ project, charge: charge.bytes, limit: quota?.hard, used, refused });
      if (refused || charge.bytes === 0) continue;
      this.#spent.set(project, spent + charge.bytes);
      if (room === undefined && !this.#everyProject) continue;
      const set = this.#charged.get(project) ?? new Set<string>();
      for (const digest of charge.digests) set.add(digest);
      this.#charged.set(project, set);
    }
    return out;
  }

  /** Why the project's images are not pushed: its quota has no room for them (`quota-exceeded: …`). */
  refusal(project: string): string | undefined {
    const reason = this.#refused.get(project);
    return reason && `quota-exceeded: ${reason}`;
  }
}

function refusal(project: string, needed: number, room: number, quota: StorageQuota, spent: number): string {
  const earlier = spent > 0 ? `, ${formatBytes(spent)} of it taken by this run's earlier batches` : '';
  return (
    `project "${project}" needs ${formatBytes(needed)} more storage and its quota has ${formatBytes(room)} left ` +
    `(limit ${formatBytes(quota.hard)}, ${formatBytes(quota.used)} used${earlier}); ` +
    `raise the project's quota in Harbor (Administration → Project Quotas) or leave its repositories out (--exclude), then run again`
  );
}

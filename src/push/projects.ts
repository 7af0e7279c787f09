import type { Destination } from '../destination/destination.js';
import { DestinationError } from '../errors.js';
import { checkProjectAccess, type ProjectRights } from '../harbor/access.js';
import type { ProjectSettings, StorageQuota } from '../harbor/client.js';
import type { ImmutableRule } from '../harbor/schema.js';
import type { Candidate } from '../plan/plan.js';
import type { OnNotice } from '../util/notice.js';

export interface ProjectGateOptions {
  /** Create missing projects (not on a dry run). */
  readonly create: boolean;
  readonly settings: ProjectSettings;
  readonly concurrency: number;
  readonly signal?: AbortSignal | undefined;
  readonly onCreated?: (project: string) => void;
  readonly onNotice?: OnNotice | undefined;
  /** `sync --delete-extra --yes`: the delete right is needed too, and its absence said once per project up front. */
  readonly deleteTags?: boolean;
}

/**
 * Harbor projects, checked as batches first need them: created when missing (Harbor hands out tokens without actions
 * for a project that does not exist, docs/registry-behaviour.md, Auth), then the push right, from what the token
 * service grants: an account that may not push to a project learns it by name and role, not image by image. On a
 * plain registry every project exists and nothing is refused.
 */
export class ProjectGate {
  readonly #destination: Destination;
  readonly #options: ProjectGateOptions;
  readonly #checked = new Set<string>();
  readonly #existing = new Set<string>();
  readonly #refused = new Map<string, { kind: string; reason: string }>();
  readonly #policies = new Map<string, string>();
  readonly #quotas = new Map<string, StorageQuota>();
  readonly #immutableRules = new Map<string, readonly ImmutableRule[]>();
  readonly #rights = new Map<string, ProjectRights>();
  readonly #warned = new Set<string>();
  /** Projects this run created, in order. */
  readonly created: string[] = [];

  constructor(destination: Destination, options: ProjectGateOptions) {
    this.#destination = destination;
    this.#options = options;
  }

  /** Checks (and creates) the projects of these candidates not checked yet; trusted tags need no check. */
  async ensure(accepted: readonly Candidate[]): Promise<void> {
    const harbor = this.#destination.harbor;
    if (!harbor) return;
    const needed = new Map<string, string>();
    for (const c of accepted) if (!c.entry.trusted && !this.#checked.has(c.project) && !needed.has(c.project)) needed.set(c.project, c.repository);
    if (needed.size === 0) return;
    for (const project of needed.keys()) this.#checked.add(project);
    const { signal } = this.#options;
    const access = await checkProjectAccess(harbor, this.#destination.client.auth, this.#destination.credentials?.username, {
      projects: needed,
      create: this.#options.create,
      settings: this.#options.settings,
      concurrency: this.#options.concurrency,
      ...(signal ? { signal } : {}),
    });
    for (const a of access.values()) {
      if (a.exists) this.#existing.add(a.project);
      if (a.created) {
        this.created.push(a.project);
        this.#options.onCreated?.(a.project);
      }
      if (a.quota) this.#quotas.set(a.project, a.quota);
      if (a.immutableRules) this.#immutableRules.set(a.project, a.immutableRules);
      if (a.rights) this.#rights.set(a.project, a.rights);
      if (a.rights && !a.rights.deleteTags && a.status === 'ok' && this.#options.deleteTags) {
        this.warnOnce(a.project, 'delete', `${this.account} may not delete tags in project "${a.project}": --delete-extra deletes nothing there (deleting tags needs the maintainer role or higher)`);
      }
      if (a.status === 'refused') {
        this.#refused.set(a.project, { kind: a.refusal ?? 'permission', reason: a.reason! });
        this.#options.onNotice?.({ level: 'error', message: `error: ${a.reason!}; its images are skipped` });
      }
      if (a.policy) this.#policies.set(a.project, a.policy);
    }
  }

  exists(project: string): boolean {
    return !this.#destination.harbor || this.#existing.has(project);
  }

  /** Why nothing may be pushed to the project, when nothing may (`permission: …`, `proxy-cache: …`). */
  refusal(project: string): string | undefined {
    const refused = this.#refused.get(project);
    return refused && `${refused.kind}: ${refused.reason}`;
  }

  /** What the account may do in the project, as Harbor's permissions API said (undefined when it did not). */
  rights(project: string): ProjectRights | undefined {
    return this.#rights.get(project);
  }

  /** A warning about one right in one project, said once per run. */
  warnOnce(project: string, right: string, message: string): void {
    const key = `${project}\n${right}`;
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#options.onNotice?.({ level: 'warn', message: `warning: ${message}` });
  }

  /** The account, as named in messages. */
  get account(): string {
    return this.#destination.credentials?.username ?? 'anonymous';
  }

  /** The project's immutability rules as read when it was checked; undefined when the account may not read them. */
  immutableRules(project: string): readonly ImmutableRule[] | undefined {
    return this.#immutableRules.get(project);
  }

  /** The project's storage quota as read when it was checked (Harbor, when the account may read it). */
  quota(project: string): StorageQuota | undefined {
    return this.#quotas.get(project);
  }

  /** The project's pull policy that blocks pulls of new images (Harbor), if any. */
  policy(project: string): string | undefined {
    return this.#policies.get(project);
  }

  /** Every project checked so far was refused: nothing can move at all (exit 3), as said before any upload. */
  assertSomeAllowed(): void {
    if (!this.#destination.harbor || this.#refused.size === 0 || this.#refused.size !== this.#checked.size) return;
    throw new DestinationError('PERMISSION_DENIED', [...this.#refused.values()].map((r) => r.reason).join('; '), 'grant the account the developer role (or higher) in these projects, or use a system robot account (robot$<name>) with push permission');
  }
}

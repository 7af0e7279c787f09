import pLimit from 'p-limit';
import { DestinationError, errorMessage } from '../errors.js';
import type { Authenticator } from '../registry/auth.js';
import type { HarborClient, ProjectSettings, StorageQuota } from './client.js';
import { ROLE_NAMES, type ImmutableRule, type ProjectDetail } from './schema.js';

/** What the account may do in one destination project, known before the first upload. */
export interface ProjectAccess {
  readonly project: string;
  /** `refused`: nothing may be pushed there; `reason` says why, naming the project and the account's role. */
  readonly status: 'ok' | 'refused';
  readonly reason?: string;
  /** What kind of refusal: the account's rights, or a proxy-cache project (Harbor takes no push into one). */
  readonly refusal?: 'permission' | 'proxy-cache';
  /** The project's storage quota (bytes), when the account may read it. */
  readonly quota?: StorageQuota;
  /** The project's immutability rules, when the account may read them. */
  readonly immutableRules?: readonly ImmutableRule[];
  /** The project exists now (false only on a dry run, for a project the push would create). */
  readonly exists: boolean;
  /** Created by this run. */
  readonly created: boolean;
  /** A pull policy that answers 412 to manifest GETs (prevent vulnerable images, signature enforcement). */
  readonly policy?: string;
  /** What the account may do there, from Harbor's permissions API (undefined when Harbor did not say). */
  readonly rights?: ProjectRights;
}

/** The rights a migration needs in a project (src/common/rbac/project/rbac_role.go names). */
export interface ProjectRights {
  /** `repository:push`: upload blobs, put manifests. */
  readonly push: boolean;
  /** `repository:pull`: mount blobs from this project into another one. */
  readonly pull: boolean;
  /** `tag:delete`: `sync --delete-extra --yes`. */
  readonly deleteTags: boolean;
}

export interface AccessRequest {
  /** Project → one repository the run will push to there (tokens are asked per repository). */
  readonly projects: ReadonlyMap<string, string>;
  /** Create absent projects (not on a dry run). */
  readonly create: boolean;
  readonly settings: ProjectSettings;
  readonly concurrency: number;
  /** SIGINT/SIGTERM: create nothing more. */
  readonly signal?: AbortSignal;
}

/**
 * For every destination project: does it exist (create it when absent), may this account push there, and does a
 * policy block pulls. Push rights come from the token's `access` claim: Harbor's token service grants only what the
 * account holds (src/core/service/token/creator.go), while `HEAD /projects` answers 200 whatever the role. The role
 * is named from `current_user_role_id`. Creation refusals that are not about one project (bad credentials) throw.
 */
export async function checkProjectAccess(harbor: HarborClient, auth: Authenticator, username: string | undefined, request: AccessRequest): Promise<Map<string, ProjectAccess>> {
  const limit = pLimit(request.concurrency);
  const out = new Map<string, ProjectAccess>();
  const entries = [...request.projects].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const looked = await Promise.all(entries.map(([project]) => limit(() => harbor.getProject(project))));
  let creation: Promise<string | undefined> | undefined;
  // Creation one at a time, in name order: the log reads in order, and a refusal is the same for all.
  for (const [i, [project, repository]] of entries.entries()) {
    let found = looked[i]!;
    let created = false;
    if (found.status === 'absent') {
      if (!request.create || request.signal?.aborted) {
        // A dry run: whether the run could create it, from what Harbor says of the account.
        const denied = request.create ? undefined : await (creation ??= creationRefusal(harbor, username));
        out.set(project, denied ? { project, status: 'refused', refusal: 'permission', exists: false, created: false, reason: `cannot create project "${project}": ${denied}` } : { project, status: 'ok', exists: false, created: false });
        continue;
      }
      try {
        created = (await harbor.createProject(project, request.settings)) === 'created';
      } catch (err) {
        if (!(err instanceof DestinationError) || err.code !== 'PROJECT_CREATE_DENIED') throw err;
        out.set(project, { project, status: 'refused', refusal: 'permission', exists: false, created: false, reason: `${err.message} (${err.hint ?? ''})` });
        continue;
      }
      found = await harbor.getProject(project);
    }
    const access = await checkPush(harbor, auth, username, project, repository, found, created);
    const id = found.status === 'found' ? found.project.project_id : undefined;
    const quota = access.status === 'ok' && id !== undefined ? await harbor.getQuota({ name: project, id }) : undefined;
    // A project created by this run has no rules yet, and no tags to protect.
    const immutableRules = access.status === 'ok' && id !== undefined && !created ? await harbor.listImmutableRules(project) : undefined;
    out.set(project, { ...access, ...(quota ? { quota } : {}), ...(immutableRules ? { immutableRules } : {}) });
  }
  return out;
}

async function checkPush(
  harbor: HarborClient,
  auth: Authenticator,
  username: string | undefined,
  project: string,
  repository: string,
  found: Awaited<ReturnType<HarborClient['getProject']>>,
  created: boolean,
): Promise<ProjectAccess> {
  const detail = found.status === 'found' ? found.project : undefined;
  const policy = detail ? pullPolicy(detail) : undefined;
  const base = { project, created, exists: found.status !== 'absent', ...(policy ? { policy } : {}) };
  // A proxy-cache project refuses every push, whatever the account may do (src/server/middleware/repoproxy/proxy.go).
  if ((detail?.registry_id ?? 0) > 0) {
    return { ...base, status: 'refused', refusal: 'proxy-cache', reason: `project "${project}" is a proxy cache project: Harbor takes no push into it; map these repositories to another project (--map)` };
  }
  // Harbor's own answer first; the token's `access` claim where Harbor does not give it.
  const id = detail?.project_id;
  const allowed = id !== undefined ? await harbor.permissions(`/project/${id}`) : undefined;
  const who = username ?? 'anonymous';
  if (allowed) {
    const rights: ProjectRights = { push: allowed.has('repository:push'), pull: allowed.has('repository:pull'), deleteTags: allowed.has('tag:delete') };
    // Every upload asks the registry first whether the blob is there (a mount into itself, a HEAD), which needs pull:
    // an account that may push but not pull gets nothing in.
    if (rights.push && !rights.pull) {
      return { ...base, rights, status: 'refused', refusal: 'permission', reason: `${who} may push to project "${project}" but not pull from it: uploading blobs needs pull too (Harbor checks and mounts them with it); give the account pull as well` };
    }
    if (rights.push) return { ...base, status: 'ok', rights };
    return { ...base, rights, status: 'refused', refusal: 'permission', reason: `${who} cannot push to project "${project}": ${describeRole(username, project, detail, found.status === 'forbidden')}` };
  }
  let granted: readonly string[] | undefined;
  try {
    granted = await auth.granted([`repository:${repository}:pull,push`], repository);
  } catch (err) {
    return { ...base, status: 'refused', refusal: 'permission', reason: `project "${project}": the token service refused: ${errorMessage(err)}` };
  }
  // Undefined: the token says nothing (not a JWT): only pushing will tell.
  if (granted === undefined || granted.includes('push') || granted.includes('*')) return { ...base, status: 'ok' };
  return { ...base, status: 'refused', refusal: 'permission', reason: `${who} cannot push to project "${project}": ${describeRole(username, project, detail, found.status === 'forbidden')}` };
}

/** The account's standing in a project, in Harbor's words: a role name, or why it has none. */
export function describeRole(username: string | undefined, project: string, detail: ProjectDetail | undefined, forbidden: boolean): string {
  const robot = /^[^$]*\$(.+)\+[^+]+$/.exec(username ?? '');
  if (robot) return robot[1] === project ? 'this project robot has no push permission' : `it is a project robot of "${robot[1]}"`;
  const role = detail?.current_user_role_id ? ROLE_NAMES[detail.current_user_role_id] : undefined;
  if (role) return `its role there is ${role}${role === 'guest' || role === 'limited guest' ? ' (pull only; pushing needs developer or higher)' : ''}`;
  if (forbidden || !detail) return 'it is not a member of this private project';
  return 'it is not a member (pull only, as the project is public)';
}

/** Pull policies that make manifest GET and HEAD answer 412 (src/server/middleware/vulnerable, contenttrust). */
function pullPolicy(project: ProjectDetail): string | undefined {
  const m = project.metadata ?? {};
  const policies: string[] = [];
  if (m.prevent_vul === 'true') policies.push(`prevent vulnerable images (severity ${m.severity ?? 'low'} and up)`);
  if (m.enable_content_trust === 'true' || m.enable_content_trust_cosign === 'true') policies.push('only signed images may be pulled');
  return policies.length ? policies.join('; ') : undefined;
}

/**
 * Why this account may not create projects, or undefined when it may (or Harbor does not say). Creating needs a
 * system admin, a system robot given "create project" (both hold `project:create` in the `/system` scope), or any
 * other user while `project_creation_restriction` is `everyone`; a project robot never may
 * (src/server/v2.0/handler/project.go CreateProject).
 */
export async function creationRefusal(harbor: HarborClient, username: string | undefined): Promise<string | undefined> {
  const system = await harbor.permissions('/system');
  if (system?.has('project:create')) return undefined;
  const robot = /^[^$]*\$(.+?)(\+[^+]+)?$/.exec(username ?? '');
  if (robot?.[2]) return `${username} is a project robot, and only system-level robots may create projects`;
  if (robot && system) return `${username} is a system robot without the "create project" permission`;
  if (robot) return undefined;
  const info = await harbor.systemInfo();
  if (info?.project_creation_restriction === 'adminonly') return 'this Harbor lets only administrators create projects (project_creation_restriction: adminonly)';
  return undefined;
}

/** Before `sync --delete-extra --yes`: may the account delete tags in this repository (maintainer and up)? */
export async function canDelete(auth: Authenticator, repository: string): Promise<boolean | undefined> {
  const granted = await auth.granted([`repository:${repository}:delete`], repository);
  return granted === undefined ? undefined : granted.includes('delete') || granted.includes('*');
}

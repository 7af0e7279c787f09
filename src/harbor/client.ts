import { request, type Dispatcher } from 'undici';
import { DestinationError } from '../errors.js';
import { basicAuthorization, headerValue } from '../registry/auth.js';
import type { Credentials } from '../registry/credentials.js';
import type { Endpoint } from '../registry/endpoint.js';
import { classifyNetworkError, classifyStatus, parseErrorBody, RegistryError } from '../registry/errors.js';
import { hearResponse, type RequestFeedback } from '../registry/http.js';
import { DEFAULT_RETRY, retryTransient, type RetryPolicy } from '../registry/retry.js';
import { Interrupted } from '../util/stop.js';
import * as z from 'zod';
import { Artifact, ImmutableRule, Permission, Project, ProjectDetail, ProjectSummary, Quota, Repository, SystemInfo } from './schema.js';

export interface ProjectSettings {
  readonly public: boolean;
  /** Bytes; -1 = unlimited. */
  readonly storageLimit: number;
}

export type EnsureResult = 'exists' | 'created';

/** A project's storage quota in bytes: `hard` -1 means unlimited. */
export interface StorageQuota {
  readonly hard: number;
  readonly used: number;
}

function storageQuota(quota: Quota): StorageQuota | undefined {
  const hard = quota.hard?.storage;
  return hard === undefined ? undefined : { hard, used: quota.used?.storage ?? 0 };
}

/**
 * Harbor's REST API (`/api/v2.0`, Basic auth, docs/registry-behaviour.md, Harbor API). No cookie jar is kept on purpose: Harbor skips
 * its CSRF check for `/api/` only when no `sid` cookie is sent.
 */
export class HarborClient {
  readonly #endpoint: Endpoint;
  readonly #credentials: Credentials | undefined;
  readonly #dispatcher: Dispatcher;
  readonly #retry: RetryPolicy;
  readonly #feedback: RequestFeedback | undefined;
  readonly #abort: AbortSignal | undefined;
  /** API requests made (tests and benchmarks count them). */
  requests = 0;

  /**
   * `feedback`: the destination's budget hears every API answer as it hears the registry's (a 429 from Harbor's
   * rate limiting halves it too); `abort`: cuts API requests under way when a stopping run's grace is over.
   */
  constructor(endpoint: Endpoint, credentials: Credentials | undefined, dispatcher: Dispatcher, retry: RetryPolicy = DEFAULT_RETRY, options: { feedback?: RequestFeedback; abort?: AbortSignal } = {}) {
    this.#endpoint = endpoint;
    this.#credentials = credentials;
    this.#dispatcher = dispatcher;
    this.#retry = retry;
    this.#feedback = options.feedback;
    this.#abort = options.abort;
  }

  /** One API request, repeated like registry requests on 429, 5xx and resets (Harbor masks 5xx bodies). */
  async #call(method: 'GET' | 'HEAD' | 'POST' | 'DELETE', path: string, body?: unknown, extraHeaders: Record<string, string> = {}): Promise<{ status: number; text: string; headers: Record<string, string | string[] | undefined> }> {
    return retryTransient(this.#retry, async () => {
      const res = await this.#once(method, path, body, extraHeaders);
      if (classifyStatus(res.status) === 'transient') throw this.#error(method, path, res);
      return res;
    });
  }

  async #once(method: 'GET' | 'HEAD' | 'POST' | 'DELETE', path: string, body: unknown, extraHeaders: Record<string, string>): Promise<{ status: number; text: string; headers: Record<string, string | string[] | undefined> }> {
    const url = new URL(`/api/v2.0${path}`, this.#endpoint.origin);
    const headers: Record<string, string> = { accept: 'application/json', ...extraHeaders };
    if (this.#credentials) headers.authorization = basicAuthorization(this.#credentials);
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    const sent = this.#feedback?.onSend() ?? 0;
    this.requests++;
    try {
      const res = await request(url, { method, headers, body: payload, dispatcher: this.#dispatcher, ...(this.#abort ? { signal: this.#abort } : {}) });
      const status = res.statusCode;
      hearResponse(this.#feedback, status, res.headers, sent);
      const text = method === 'HEAD' ? (await res.body.dump(), '') : await res.body.text();
      return { status, text, headers: res.headers };
    } catch (err) {
      if (this.#abort?.aborted) throw new Interrupted(`${method} /api/v2.0${path.split('?')[0]}: cut: the run is stopping`);
      this.#feedback?.onError(err);
      throw new RegistryError(`${method} /api/v2.0${path.split('?')[0]}: ${(err as Error).message}`, {
        method,
        path: url.pathname,
        status: undefined,
        registryCode: undefined,
        failure: classifyNetworkError(err),
        requestId: undefined,
        retryAfterMs: undefined,
      });
    }
  }

  /**
   * What `/api/v2.0/systeminfo` says, or undefined when the destination is not Harbor. Only a 404 (or an answer
   * without `auth_mode`) means "not Harbor": anything else was retried and is thrown, so a Harbor that hiccups at
   * start-up is never taken for a plain registry (no projects created, manifests deleted instead of tags).
   */
  async systemInfo(): Promise<SystemInfo | undefined> {
    const res = await this.#call('GET', '/systeminfo');
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw this.#error('GET', '/systeminfo', res);
    let json: unknown;
    try {
      json = JSON.parse(res.text);
    } catch {
      return undefined;
    }
    const parsed = SystemInfo.safeParse(json);
    return parsed.success ? parsed.data : undefined;
  }

  /**
   * A project with the caller's role and its policies (`X-Is-Resource-Name: true` makes the path a name, not an
   * id). `forbidden`: it exists, but this account may not even read it.
   */
  async getProject(name: string): Promise<{ status: 'found'; project: ProjectDetail } | { status: 'absent' } | { status: 'forbidden' }> {
    const res = await this.#call('GET', `/projects/${encodeURIComponent(name)}`, undefined, { 'x-is-resource-name': 'true' });
    if (res.status === 404) return { status: 'absent' };
    // Harbor checks the read right before it looks the project up, so a missing project is a 403 too for anyone but
    // an admin; `HEAD /projects?project_name=` tells any logged-in caller whether it exists
    // (docs/registry-behaviour.md, Harbor API).
    if (res.status === 403) return (await this.projectExists(name)) ? { status: 'forbidden' } : { status: 'absent' };
    if (res.status !== 200) throw this.#error('GET', `/projects/${name}`, res);
    return { status: 'found', project: ProjectDetail.parse(JSON.parse(res.text)) };
  }

  /** Whether a project of that name exists, for any logged-in caller (`HEAD /projects?project_name=`: 200 or 404). */
  async projectExists(name: string): Promise<boolean> {
    const res = await this.#call('HEAD', `/projects?project_name=${encodeURIComponent(name)}`);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw this.#error('HEAD', `/projects?project_name=${name}`, res);
  }

  /** POST a project; 409 (created meanwhile, e.g. by another shard) is success. */
  async createProject(name: string, settings: ProjectSettings): Promise<EnsureResult> {
    const res = await this.#call('POST', '/projects', {
      project_name: name,
      // `public` is a string in Harbor's ProjectMetadata (swagger), not a boolean.
      metadata: { public: settings.public ? 'true' : 'false' },
      storage_limit: settings.storageLimit,
    });
    if (res.status === 201) return 'created';
    if (res.status === 409) return 'exists';
    if (res.status === 401) {
      throw new DestinationError('AUTH_REFUSED', `Harbor refused the credentials while creating project "${name}"`, 'check the username and password');
    }
    if (res.status === 403) throw new DestinationError('PROJECT_CREATE_DENIED', createRefusal(name, this.#credentials?.username, parseErrorBody(res.text).message), createHint(name, this.#credentials?.username));
    throw this.#error('POST', '/projects', res);
  }

  /**
   * What the account may do, as `resource:action` (`repository:push`, `tag:delete`, `project:create`), in a scope:
   * `/project/{id}` or `/system` (`GET /users/current/permissions?scope=…&relative=true`,
   * src/server/v2.0/handler/user.go GetCurrentUserPermissions: every policy of the scope's namespace the account's
   * security context allows). Undefined when Harbor does not answer it (an older Harbor, an anonymous caller).
   */
  async permissions(scope: string): Promise<Set<string> | undefined> {
    const path = `/users/current/permissions?scope=${encodeURIComponent(scope)}&relative=true`;
    const res = await this.#call('GET', path);
    if (res.status === 401 || res.status === 403 || res.status === 404) return undefined;
    if (res.status !== 200) throw this.#error('GET', path, res);
    return new Set(z.array(Permission).parse(JSON.parse(res.text || '[]')).map((p) => `${p.resource}:${p.action}`));
  }

  /**
   * A project's storage quota: the hard limit (-1: unlimited) and what is used, in bytes; undefined when this account
   * may not read it. The quotas API needs system-level "list quota" (src/server/v2.0/handler/quota.go); any project
   * member reads the same numbers in the project's summary (src/server/v2.0/handler/project.go GetProjectSummary).
   */
  async getQuota(project: { name: string; id: number }): Promise<StorageQuota | undefined> {
    const res = await this.#call('GET', `/quotas?reference=project&reference_id=${project.id}`);
    if (res.status === 200) {
      const items = JSON.parse(res.text || '[]') as unknown;
      const first = Array.isArray(items) && items.length > 0 ? storageQuota(Quota.parse(items[0])) : undefined;
      if (first) return first;
    } else if (res.status !== 401 && res.status !== 403) throw this.#error('GET', '/quotas', res);
    const path = `/projects/${encodeURIComponent(project.name)}/summary`;
    const summary = await this.#call('GET', path, undefined, { 'x-is-resource-name': 'true' });
    if (summary.status === 401 || summary.status === 403 || summary.status === 404) return undefined;
    if (summary.status !== 200) throw this.#error('GET', path, summary);
    const quota = ProjectSummary.parse(JSON.parse(summary.text)).quota;
    return quota ? storageQuota(quota) : undefined;
  }

  /** Every page of a paginated list (`page`, `page_size` ≤ 100, `X-Total-Count`). */
  async #list(path: string, headers: Record<string, string> = {}): Promise<unknown[] | undefined> {
    const out: unknown[] = [];
    const pageSize = 100;
    for (let page = 1; page < 100_000; page++) {
      const sep = path.includes('?') ? '&' : '?';
      const res = await this.#call('GET', `${path}${sep}page=${page}&page_size=${pageSize}`, undefined, headers);
      if (res.status === 404) return page === 1 ? undefined : out;
      if (res.status !== 200) throw this.#error('GET', path, res);
      const items = JSON.parse(res.text || '[]') as unknown;
      if (!Array.isArray(items)) throw this.#error('GET', path, { ...res, text: 'not a list' });
      out.push(...items);
      const total = Number(headerValue(res.headers['x-total-count']));
      if (items.length < pageSize || (Number.isFinite(total) && out.length >= total)) break;
    }
    return out;
  }

  async listProjects(): Promise<string[]> {
    return ((await this.#list('/projects')) ?? []).map((p) => Project.parse(p).name);
  }

  /** Repository names of a project, project included (`team/api`). */
  async listRepositories(project: string): Promise<string[]> {
    return ((await this.#list(`/projects/${encodeURIComponent(project)}/repositories`)) ?? []).map((r) => Repository.parse(r).name);
  }

  /**
   * Artifacts of a repository with their tags. The repository name goes without its project and with `/` encoded
   * twice (`a/b` → `a%252Fb`), as Harbor's router wants (docs/registry-behaviour.md, Harbor API).
   */
  /** Undefined when the repository does not exist. Accessories are not listed (src/pkg/artifact/dao/dao.go). */
  async listArtifacts(repository: string): Promise<Artifact[] | undefined> {
    return (await this.#list(`${artifactsPath(repository)}?with_tag=true`))?.map((a) => Artifact.parse(a));
  }

  /**
   * One artifact by tag or digest, or undefined when absent. Unlike the listing, this finds accessories (cosign
   * signatures, referrers) too (src/server/v2.0/handler/artifact.go GetArtifact), and records no pull.
   */
  async getArtifact(repository: string, reference: string): Promise<Artifact | undefined> {
    const path = `${artifactsPath(repository)}/${encodeURIComponent(reference)}?with_tag=true`;
    const res = await this.#call('GET', path);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw this.#error('GET', path, res);
    return Artifact.parse(JSON.parse(res.text));
  }

  /**
   * Whether Harbor counts the tag as immutable (one of the project's immutability rules protects it), evaluated by
   * Harbor itself (`with_immutable_status`, src/controller/tag/controller.go populateImmutableStatus): for an account
   * that may not read the rules. Undefined when the tag is not there.
   */
  async tagImmutable(repository: string, tag: string): Promise<boolean | undefined> {
    const path = `${artifactsPath(repository)}/${encodeURIComponent(tag)}?with_tag=true&with_immutable_status=true`;
    const res = await this.#call('GET', path);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw this.#error('GET', path, res);
    return Artifact.parse(JSON.parse(res.text)).tags?.find((t) => t.name === tag)?.immutable ?? false;
  }

  /**
   * A project's immutability rules, or undefined when this account may not read them (maintainer and up, and
   * admins: src/server/v2.0/handler/immutable.go ListImmuRules, rbac_role.go).
   */
  async listImmutableRules(project: string): Promise<ImmutableRule[] | undefined> {
    const path = `/projects/${encodeURIComponent(project)}/immutabletagrules`;
    try {
      return (await this.#list(path, { 'x-is-resource-name': 'true' }))?.map((r) => ImmutableRule.parse(r));
    } catch (err) {
      if (err instanceof RegistryError && (err.status === 401 || err.status === 403)) return undefined;
      throw err;
    }
  }

  /**
   * Points `tag` at the artifact `digest` (Harbor keeps tags in its database). A tag already there is moved: removed
   * from the artifact it named, then created.
   */
  async addTag(repository: string, digest: string, tag: string): Promise<void> {
    const path = `${artifactsPath(repository)}/${digest}/tags`;
    for (let attempt = 0; ; attempt++) {
      const res = await this.#call('POST', path, { name: tag });
      if (res.status === 201) return;
      if (res.status !== 409 || attempt > 0) throw this.#error('POST', path, res);
      const current = await this.getArtifact(repository, tag);
      if (!current || current.digest === digest) return;
      await this.deleteTag(repository, current.digest, tag);
    }
  }

  /** Deletes one tag (not the artifact, which other tags may share). Needs the maintainer role. */
  async deleteTag(repository: string, digest: string, tag: string): Promise<void> {
    const res = await this.#call('DELETE', `${artifactsPath(repository)}/${digest}/tags/${encodeURIComponent(tag)}`);
    if (res.status !== 200 && res.status !== 404) throw this.#error('DELETE', `/projects/…/${repository}/…/tags/${tag}`, res);
  }

  #error(method: string, path: string, res: { status: number; text: string; headers: Record<string, string | string[] | undefined> }): RegistryError {
    const { code, message } = parseErrorBody(res.text);
    const requestId = headerValue(res.headers['x-request-id']);
    return new RegistryError(`${method} /api/v2.0${path}: ${res.status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}${requestId ? ` (X-Request-Id ${requestId})` : ''}`, {
      method,
      path,
      status: res.status,
      registryCode: code,
      failure: classifyStatus(res.status),
      requestId,
      retryAfterMs: undefined,
    });
  }
}

/**
 * `/projects/{p}/repositories/{r}/artifacts`: the repository without its project and with `/` encoded twice
 * (`a/b` → `a%252Fb`), as Harbor's router wants (docs/registry-behaviour.md, Harbor API).
 */
function artifactsPath(repository: string): string {
  const slash = repository.indexOf('/');
  return `/projects/${encodeURIComponent(repository.slice(0, slash))}/repositories/${encodeURIComponent(encodeURIComponent(repository.slice(slash + 1)))}/artifacts`;
}

const ROBOT_HINT = 'use a Harbor admin, or a system robot account (robot$<name>) with the "create project" permission; project robots (robot$<project>+<name>) can never create projects';

/** Why Harbor refused to create a project, in its own words where they are known (src/server/v2.0/handler/project.go). */
function createRefusal(name: string, username: string | undefined, message: string | undefined): string {
  const base = `cannot create project "${name}"`;
  if (message && /system level robot/i.test(message)) return `${base}: ${username ?? 'this account'} is a project robot, and only system-level robots may create projects`;
  if (message && /only system admin/i.test(message)) return `${base}: this Harbor lets only administrators create projects (project_creation_restriction: adminonly)`;
  return `${base}: Harbor refused (403${message ? ` ${message}` : ''})`;
}

function createHint(name: string, username: string | undefined): string {
  return `create project "${name}" in Harbor first, or ${username?.includes('+') ? ROBOT_HINT : ROBOT_HINT.replace(/^use/, 'run with')}`;
}

import { request, type Dispatcher } from 'undici';
import { DestinationError } from '../errors.js';
import { basicAuthorization, headerValue } from '../registry/auth.js';
import type { Credentials } from '../registry/credentials.js';
import type { Endpoint } from '../registry/endpoint.js';
import { classifyNetworkError, classifyStatus, parseErrorBody, RegistryError } from '../registry/errors.js';
import { Artifact, Project, Repository, SystemInfo } from './schema.js';

export interface ProjectSettings {
  readonly public: boolean;
  /** Bytes; -1 = unlimited. */
  readonly storageLimit: number;
}

export type EnsureResult = 'exists' | 'created';

/**
 * Harbor's REST API (`/api/v2.0`, Basic auth, PROTOCOL.md §5). No cookie jar is kept on purpose: Harbor skips
 * its CSRF check for `/api/` only when no `sid` cookie is sent.
 */
export class HarborClient {
  readonly #endpoint: Endpoint;
  readonly #credentials: Credentials | undefined;
  readonly #dispatcher: Dispatcher;

  constructor(endpoint: Endpoint, credentials: Credentials | undefined, dispatcher: Dispatcher) {
    this.#endpoint = endpoint;
    this.#credentials = credentials;
    this.#dispatcher = dispatcher;
  }

  async #call(method: 'GET' | 'HEAD' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; text: string; headers: Record<string, string | string[] | undefined> }> {
    const url = new URL(`/api/v2.0${path}`, this.#endpoint.origin);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#credentials) headers.authorization = basicAuthorization(this.#credentials);
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    try {
      const res = await request(url, { method, headers, body: payload, dispatcher: this.#dispatcher });
      const text = method === 'HEAD' ? (await res.body.dump(), '') : await res.body.text();
      return { status: res.statusCode, text, headers: res.headers };
    } catch (err) {
      throw new RegistryError(`${method} /api/v2.0${url.pathname.slice('/api/v2.0'.length)}: ${(err as Error).message}`, {
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

  /** The Harbor version, or undefined when the destination is a plain registry (no `/api/v2.0`). */
  async systemInfo(): Promise<string | undefined> {
    const res = await this.#call('GET', '/systeminfo');
    if (res.status !== 200) return undefined;
    try {
      const parsed = SystemInfo.safeParse(JSON.parse(res.text));
      return parsed.success ? parsed.data.harbor_version : undefined;
    } catch {
      return undefined;
    }
  }

  async projectExists(name: string): Promise<boolean> {
    const res = await this.#call('HEAD', `/projects?project_name=${encodeURIComponent(name)}`);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw this.#error('HEAD', `/projects?project_name=${name}`, res);
  }

  /** HEAD, then POST when absent; 409 (created meanwhile, e.g. by another shard) is success. */
  async ensureProject(name: string, settings: ProjectSettings): Promise<EnsureResult> {
    if (await this.projectExists(name)) return 'exists';
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
    if (res.status === 403) {
      throw new DestinationError(
        'PROJECT_CREATE_DENIED',
        `this account cannot create projects: project "${name}" does not exist in Harbor`,
        `create project "${name}" in Harbor first, or run with an account that may create projects (an admin)`,
      );
    }
    throw this.#error('POST', '/projects', res);
  }

  /** Every page of a paginated list (`page`, `page_size` ≤ 100, `X-Total-Count`). */
  async #list(path: string): Promise<unknown[]> {
    const out: unknown[] = [];
    const pageSize = 100;
    for (let page = 1; page < 100_000; page++) {
      const sep = path.includes('?') ? '&' : '?';
      const res = await this.#call('GET', `${path}${sep}page=${page}&page_size=${pageSize}`);
      if (res.status === 404) return out;
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
    return (await this.#list('/projects')).map((p) => Project.parse(p).name);
  }

  /** Repository names of a project, project included (`team/api`). */
  async listRepositories(project: string): Promise<string[]> {
    return (await this.#list(`/projects/${encodeURIComponent(project)}/repositories`)).map((r) => Repository.parse(r).name);
  }

  /**
   * Artifacts of a repository with their tags. The repository name goes without its project and with `/` encoded
   * twice (`a/b` → `a%252Fb`), as Harbor's router wants (PROTOCOL.md §5).
   */
  async listArtifacts(repository: string): Promise<Artifact[]> {
    const slash = repository.indexOf('/');
    const project = repository.slice(0, slash);
    const name = encodeURIComponent(encodeURIComponent(repository.slice(slash + 1)));
    return (await this.#list(`/projects/${encodeURIComponent(project)}/repositories/${name}/artifacts?with_tag=true`)).map((a) => Artifact.parse(a));
  }

  /** Deletes one tag (not the artifact, which other tags may share). */
  async deleteTag(repository: string, digest: string, tag: string): Promise<void> {
    const slash = repository.indexOf('/');
    const project = repository.slice(0, slash);
    const name = encodeURIComponent(encodeURIComponent(repository.slice(slash + 1)));
    const res = await this.#call('DELETE', `/projects/${encodeURIComponent(project)}/repositories/${name}/artifacts/${digest}/tags/${encodeURIComponent(tag)}`);
    if (res.status !== 200 && res.status !== 404) throw this.#error('DELETE', `/projects/${project}/repositories/…/tags/${tag}`, res);
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

import { headerValue } from './auth.js';
import { RegistryError } from './errors.js';
import { pullScope, type RegistryHttp } from './http.js';

/** Listings: a repository's tags and the registry's catalog, every page. */

/** A bound on pages, so a registry whose `Link` points back at itself cannot hold a run forever. */
const MAX_PAGES = 100_000;

/** `GET /v2/_catalog`, every page (`Link: <…?last=x&n=1000>; rel="next"`). Needs catalog rights. */
export async function catalog(http: RegistryHttp, pageSize = 1000): Promise<string[]> {
  return paginate(http, `/v2/_catalog?n=${pageSize}`, ['registry:catalog:*'], 'repositories');
}

/** `GET /v2/<name>/tags/list`, every page; an unknown repository has no tags. */
export async function listTags(http: RegistryHttp, repository: string, pageSize = 1000): Promise<string[]> {
  try {
    return await paginate(http, `/v2/${repository}/tags/list?n=${pageSize}`, [pullScope(repository)], 'tags');
  } catch (err) {
    if (err instanceof RegistryError && err.failure === 'absent') return [];
    throw err;
  }
}

async function paginate(http: RegistryHttp, first: string, scopes: readonly string[], field: 'repositories' | 'tags'): Promise<string[]> {
  const out: string[] = [];
  let next: URL | undefined = http.url(first);
  for (let pages = 0; next && pages < MAX_PAGES; pages++) {
    const url: URL = next;
    const res = await http.retrying(() => http.request({ method: 'GET', url, scopes, ok: [200], keepBody: true }));
    const body = JSON.parse(res.body.toString('utf8') || '{}') as Record<string, unknown>;
    const items = body[field];
    if (Array.isArray(items)) for (const item of items) if (typeof item === 'string') out.push(item);
    const link = headerValue(res.headers.link);
    const match = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
    next = match ? new URL(match[1]!, url) : undefined;
  }
  return out;
}

/**
 * A Harbor test double: Harbor's token service (`/service/token`) and the `/api/v2.0` endpoints regmigrate calls,
 * shaped as PROTOCOL.md §4–5 and Harbor's swagger describe, in front of a real docker-registry that trusts its
 * tokens, so pushes really land. Like Harbor's nginx → core → registry chain, `/v2/` is forwarded with the
 * client's Host header and bodies streamed both ways.
 */
import { execa } from 'execa';
import { createPrivateKey, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll } from 'vitest';
import { startRegistry, type RunningRegistry } from './registry.js';
import { tempDir } from './tmp.js';

export interface HarborUser {
  readonly password: string;
  /** System admin: may create projects. Robots and ordinary users may not. */
  readonly admin: boolean;
}

export interface HarborDoubleOptions {
  readonly users: Record<string, HarborUser>;
  /** Token lifetime in seconds (Harbor's default: 1800). */
  readonly tokenLifetime?: number;
  readonly projects?: readonly string[];
  /** Delay every `/v2/` request by this much, to make a push outlast short tokens. */
  readonly registryDelayMs?: number;
}

export interface LoggedRequest {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly user: string | undefined;
  readonly bytesIn: number;
}

interface ProjectRecord {
  readonly id: number;
  readonly name: string;
  readonly public: boolean;
  readonly storageLimit: number;
  readonly createdBy: string;
}

export interface HarborDouble {
  readonly host: string;
  readonly url: string;
  readonly registry: RunningRegistry;
  readonly projects: Map<string, ProjectRecord>;
  readonly log: LoggedRequest[];
  tokenRequests: number;
  /** Every token handed out: none may ever show in regmigrate's output or files. */
  readonly issuedTokens: string[];
  /** Project creations and their order relative to the first blob upload. */
  readonly events: string[];
  stop(): Promise<void>;
}

const PROJECT_RE = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
const SERVICE = 'harbor-registry';
const ISSUER = 'harbor-token-issuer';

function b64url(input: Buffer | string): string {
  return Buffer.from(input).toString('base64url');
}

function makeToken(key: KeyObject, certDer: Buffer, subject: string, access: unknown[], lifetime: number): string {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
  const claims = { iss: ISSUER, sub: subject, aud: SERVICE, exp: now + lifetime, nbf: now - 1, iat: now, jti: randomUUID(), access };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${signingInput}.${b64url(sign('sha256', Buffer.from(signingInput), key))}`;
}

function harborError(res: http.ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-request-id': randomUUID() });
  res.end(JSON.stringify({ errors: [{ code, message }] }));
}

export async function startHarborDouble(options: HarborDoubleOptions): Promise<HarborDouble> {
  const dir = tempDir('regmigrate-harbor-');
  const keyFile = path.join(dir, 'token.key');
  const certFile = path.join(dir, 'token.crt');
  await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=harbor-token-double']);
  const key = createPrivateKey(readFileSync(keyFile));
  const certDer = new X509Certificate(readFileSync(certFile)).raw;
  const lifetime = options.tokenLifetime ?? 1800;

  const projects = new Map<string, ProjectRecord>();
  let nextId = 1;
  for (const name of options.projects ?? ['library']) projects.set(name, { id: nextId++, name, public: true, storageLimit: -1, createdBy: 'admin' });
  const log: LoggedRequest[] = [];
  const events: string[] = [];
  let registryPort = 0;

  const authenticate = (req: http.IncomingMessage): { user: string | undefined; bad: boolean } => {
    const header = req.headers.authorization;
    if (!header?.startsWith('Basic ')) return { user: undefined, bad: false };
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const name = decoded.slice(0, colon);
    const user = options.users[name];
    if (!user || user.password !== decoded.slice(colon + 1)) return { user: undefined, bad: true };
    return { user: name, bad: false };
  };

  const double: HarborDouble = {
    host: '',
    url: '',
    registry: undefined as unknown as RunningRegistry,
    projects,
    log,
    tokenRequests: 0,
    issuedTokens: [],
    events,
    stop: async () => undefined,
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://double');
    const { user, bad } = authenticate(req);
    let bytesIn = 0;
    req.on('data', (chunk: Buffer) => (bytesIn += chunk.length));
    res.on('finish', () => log.push({ method: req.method ?? '', path: url.pathname, status: res.statusCode, user, bytesIn }));

    if (url.pathname.startsWith('/v2/')) {
      if (req.method === 'PUT' && url.pathname.includes('/blobs/uploads/') && !events.includes('first-blob-upload')) events.push('first-blob-upload');
      req.pause();
      setTimeout(() => forward(req, res), options.registryDelayMs ?? 0);
      return;
    }

    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void handleApi(req, res, url, user, bad, () => Buffer.concat(chunks).toString('utf8'));
    });
  });

  function forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    const upstream = http.request({ host: '127.0.0.1', port: registryPort, method: req.method, path: req.url, headers: req.headers }, (upstreamRes) => {
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
      upstreamRes.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) harborError(res, 502, 'UNKNOWN', 'registry unreachable');
      else res.destroy();
    });
    req.pipe(upstream);
  }

  async function handleApi(req: http.IncomingMessage, res: http.ServerResponse, url: URL, user: string | undefined, bad: boolean, body: () => string): Promise<void> {
    if (url.pathname === '/service/token' && req.method === 'GET') {
      double.tokenRequests++;
      if (bad) return harborError(res, 401, 'UNAUTHORIZED', 'invalid credentials');
      const access: unknown[] = [];
      for (const scope of url.searchParams.getAll('scope')) {
        const [type, name, actions] = scope.split(':') as [string, string, string];
        if (type === 'registry' && name === 'catalog') {
          if (user && options.users[user]!.admin) access.push({ type, name, actions: ['*'] });
          continue;
        }
        if (type !== 'repository' || !name) continue;
        const project = projects.get(name.split('/')[0]!);
        // A repository in a project that does not exist gets a token with no actions (PROTOCOL.md §4).
        let allowed: string[] = [];
        if (project && user) allowed = ['pull', 'push'];
        else if (project?.public) allowed = ['pull'];
        access.push({ type, name, actions: (actions ?? '').split(',').filter((a) => allowed.includes(a)) });
      }
      const token = makeToken(key, certDer, user ?? '', access, lifetime);
      double.issuedTokens.push(token);
      res.writeHead(200, { 'content-type': 'application/json' });
      // Harbor's shape: the token in `token`, an empty `access_token`.
      res.end(JSON.stringify({ token, access_token: '', expires_in: lifetime, issued_at: new Date().toISOString() }));
      return;
    }
    if (url.pathname === '/api/v2.0/systeminfo' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ harbor_version: 'v2.13.0-double', auth_mode: 'db_auth', registry_url: double.host }));
      return;
    }
    if (url.pathname === '/api/v2.0/projects') {
      if (bad) return harborError(res, 401, 'UNAUTHORIZED', 'unauthorized');
      if (req.method === 'HEAD') {
        res.writeHead(projects.has(url.searchParams.get('project_name') ?? '') ? 200 : 404);
        res.end();
        return;
      }
      if (req.method === 'GET') {
        const name = url.searchParams.get('name');
        const list = [...projects.values()].filter((p) => !name || p.name.includes(name)).map((p) => ({ project_id: p.id, name: p.name }));
        res.writeHead(200, { 'content-type': 'application/json', 'x-total-count': String(list.length) });
        res.end(JSON.stringify(list));
        return;
      }
      if (req.method === 'POST') {
        if (!user) return harborError(res, 401, 'UNAUTHORIZED', 'unauthorized');
        let parsed: { project_name?: unknown; metadata?: Record<string, unknown>; storage_limit?: unknown; public?: unknown };
        try {
          parsed = JSON.parse(body()) as typeof parsed;
        } catch {
          return harborError(res, 400, 'BAD_REQUEST', 'invalid JSON');
        }
        const name = parsed.project_name;
        if (typeof name !== 'string' || !PROJECT_RE.test(name) || name.length > 255) {
          return harborError(res, 400, 'BAD_REQUEST', `validation failure: project_name in body should match '${PROJECT_RE.source}'`);
        }
        for (const [k, v] of Object.entries(parsed.metadata ?? {})) {
          // ProjectMetadata fields are strings in Harbor's swagger; a boolean fails to unmarshal.
          if (typeof v !== 'string') return harborError(res, 400, 'BAD_REQUEST', `json: cannot unmarshal ${typeof v} into Go struct field ProjectMetadata.metadata.${k} of type string`);
        }
        if (!options.users[user]!.admin) return harborError(res, 403, 'FORBIDDEN', 'forbidden');
        if (projects.has(name)) return harborError(res, 409, 'CONFLICT', `The project named ${name} already exists`);
        const id = nextId++;
        projects.set(name, {
          id,
          name,
          public: parsed.metadata?.public === 'true',
          storageLimit: typeof parsed.storage_limit === 'number' ? parsed.storage_limit : -1,
          createdBy: user,
        });
        events.push(`project-created:${name}`);
        res.writeHead(201, { location: `/api/v2.0/projects/${id}` });
        res.end();
        return;
      }
    }
    const repoRoute = /^\/api\/v2\.0\/projects\/([^/]+)\/repositories(?:\/([^/]+)(\/artifacts(?:\/([^/]+)\/tags\/([^/]+))?)?)?$/.exec(url.pathname);
    if (repoRoute) {
      if (bad) return harborError(res, 401, 'UNAUTHORIZED', 'unauthorized');
      const project = decodeURIComponent(repoRoute[1]!);
      if (!projects.has(project)) return harborError(res, 404, 'NOT_FOUND', `project ${project} not found`);
      if (!repoRoute[2] && req.method === 'GET') {
        const catalog = (await registryJson('/v2/_catalog?n=1000', 'registry:catalog:*')) as { repositories?: string[] };
        const names = (catalog.repositories ?? []).filter((r) => r.startsWith(`${project}/`));
        return page(res, url, names.map((name) => ({ name })));
      }
      // Harbor wants the repository name encoded twice: once decoded it must still hold no "/" (PROTOCOL.md §5).
      const once = decodeURIComponent(repoRoute[2] ?? '');
      if (once.includes('/')) return harborError(res, 404, 'NOT_FOUND', 'repository name not double-encoded');
      const repository = `${project}/${decodeURIComponent(once)}`;
      if (repoRoute[3] && !repoRoute[4] && req.method === 'GET') {
        const list = (await registryJson(`/v2/${repository}/tags/list`, `repository:${repository}:pull`)) as { tags?: string[] | null };
        const byDigest = new Map<string, { digest: string; manifest_media_type: string; media_type: string; tags: Array<{ name: string }> }>();
        for (const tag of list.tags ?? []) {
          const head = await registryRequest('HEAD', `/v2/${repository}/manifests/${tag}`, `repository:${repository}:pull`);
          const digest = head.headers.get('docker-content-digest')!;
          const mediaType = head.headers.get('content-type') ?? '';
          const artifact = byDigest.get(digest) ?? { digest, manifest_media_type: mediaType, media_type: mediaType, tags: [] };
          artifact.tags.push({ name: tag });
          byDigest.set(digest, artifact);
        }
        return page(res, url, [...byDigest.values()]);
      }
      if (repoRoute[4] && req.method === 'DELETE') {
        if (!user) return harborError(res, 401, 'UNAUTHORIZED', 'unauthorized');
        const digest = decodeURIComponent(repoRoute[4]);
        const tag = decodeURIComponent(repoRoute[5]!);
        const scope = `repository:${repository}:pull,push,delete`;
        // Distribution deletes manifests, not tags: delete, then put the manifest back under its other tags.
        const list = (await registryJson(`/v2/${repository}/tags/list`, scope)) as { tags?: string[] | null };
        const others: string[] = [];
        for (const other of list.tags ?? []) {
          if (other === tag) continue;
          const head = await registryRequest('HEAD', `/v2/${repository}/manifests/${other}`, scope);
          if (head.headers.get('docker-content-digest') === digest) others.push(other);
        }
        const got = await registryRequest('GET', `/v2/${repository}/manifests/${digest}`, scope);
        if (got.status !== 200) return harborError(res, 404, 'NOT_FOUND', 'artifact not found');
        const bytes = Buffer.from(await got.arrayBuffer());
        const type = got.headers.get('content-type') ?? '';
        await registryRequest('DELETE', `/v2/${repository}/manifests/${digest}`, scope);
        for (const other of others) await registryRequest('PUT', `/v2/${repository}/manifests/${other}`, scope, bytes, type);
        events.push(`tag-deleted:${repository}:${tag}`);
        res.writeHead(200).end();
        return;
      }
    }
    harborError(res, 404, 'NOT_FOUND', `no route ${req.method} ${url.pathname} in the Harbor double`);
  }

  /** Harbor's pagination: `page`, `page_size` (≤ 100), `X-Total-Count`. */
  function page(res: http.ServerResponse, url: URL, items: unknown[]): void {
    const size = Math.min(100, Number(url.searchParams.get('page_size') ?? 10));
    const number = Number(url.searchParams.get('page') ?? 1);
    res.writeHead(200, { 'content-type': 'application/json', 'x-total-count': String(items.length) });
    res.end(JSON.stringify(items.slice((number - 1) * size, number * size)));
  }

  /** The double's core talks to its registry with tokens it signs itself, as Harbor's core does. */
  async function registryRequest(method: string, path: string, scope: string, body?: Buffer, contentType?: string): Promise<Response> {
    const [type, name, actions] = scope.split(':') as [string, string, string];
    const token = makeToken(key, certDer, 'harbor-core', [{ type, name, actions: actions.split(',') }], 300);
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`,
      accept: 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json',
    };
    if (contentType) headers['content-type'] = contentType;
    return fetch(`http://127.0.0.1:${registryPort}${path}`, { method, headers, ...(body ? { body } : {}) });
  }

  async function registryJson(path: string, scope: string): Promise<unknown> {
    const res = await registryRequest('GET', path, scope);
    return res.status === 200 ? res.json() : {};
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  const host = `127.0.0.1:${address.port}`;
  const registry = await startRegistry({
    schema1: true,
    allowManifestUrls: true,
    token: { realm: `http://${host}/service/token`, service: SERVICE, issuer: ISSUER, certFile },
  });
  registryPort = Number(registry.host.split(':')[1]);
  Object.assign(double, { host, url: `http://${host}`, registry });
  double.stop = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await registry.stop();
  };
  afterAll(() => double.stop());
  return double;
}

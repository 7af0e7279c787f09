/**
 * A Harbor test double: Harbor's token service (`/service/token`), the `/v2/` front that Harbor's core puts before
 * its registry, and the `/api/v2.0` endpoints regmigrate calls, in front of a real docker-registry that trusts its
 * tokens, so pushes really land. Each behaviour names the Harbor source file (goharbor/harbor main, v2.16.0-dev)
 * it copies. Like Harbor's nginx → core → registry chain, `/v2/` is forwarded with the client's Host header and
 * bodies streamed both ways; tags live in the double's "database", as they do in Harbor's.
 */
import { execa } from 'execa';
import { createHash, createPrivateKey, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { atEnd } from './teardown.js';
import { startRegistry, type RunningRegistry } from './registry.js';
import { tempDir } from './tmp.js';

/** Project roles [src/common/const.go RoleProjectAdmin…RoleLimitedGuest; src/common/rbac/project/rbac_role.go]. */
export type HarborRole = 'projectAdmin' | 'maintainer' | 'developer' | 'guest' | 'limitedGuest';
const ROLE_IDS: Record<HarborRole, number> = { projectAdmin: 1, developer: 2, guest: 3, maintainer: 4, limitedGuest: 5 };
/**
 * The project policies each role holds, of those a migration touches [src/common/rbac/project/rbac_role.go]:
 * repositories, tags, artifacts, the quota and the immutability rules.
 */
const MAINTAINER_POLICIES = [
  'repository:pull', 'repository:push', 'repository:delete', 'repository:read', 'repository:list',
  'tag:create', 'tag:delete', 'tag:list', 'artifact:create', 'artifact:read', 'artifact:list', 'artifact:delete', 'quota:read', 'immutable-tag:list',
];
const ROLE_POLICIES: Record<HarborRole, readonly string[]> = {
  projectAdmin: MAINTAINER_POLICIES,
  maintainer: MAINTAINER_POLICIES,
  developer: ['repository:pull', 'repository:push', 'repository:read', 'repository:list', 'tag:create', 'tag:list', 'artifact:create', 'artifact:read', 'artifact:list', 'quota:read'],
  guest: ['repository:pull', 'repository:read', 'repository:list', 'tag:list', 'artifact:read', 'artifact:list', 'quota:read'],
  limitedGuest: ['repository:pull', 'repository:read', 'repository:list', 'tag:list', 'artifact:read', 'artifact:list', 'quota:read'],
};
/** A system robot's default permissions in every project here: push and pull. */
const ROBOT_POLICIES = ['repository:pull', 'repository:push', 'tag:create', 'tag:list', 'artifact:read', 'artifact:list'];
/** What a public project lets anyone logged in do [src/common/rbac/project/rbac_util.go publicProjectPolicies]. */
const PUBLIC_POLICIES = ['repository:pull', 'repository:read', 'repository:list', 'tag:list', 'artifact:read', 'artifact:list'];

export interface HarborUser {
  readonly password: string;
  /** System admin: every right everywhere. */
  readonly admin?: boolean;
  /** `system`: a system robot (`robot$name`) with push and pull on every project; `project`: a project robot. */
  readonly robot?: 'system' | 'project';
  /** Project memberships (users), or the one project a project robot belongs to (`robot$<project>+<name>`). */
  readonly roles?: Readonly<Record<string, HarborRole>>;
  /** A system robot given the "create project" permission. */
  readonly canCreateProject?: boolean;
  /** A robot's own permissions (`resource:action`) in its projects, instead of push and pull. */
  readonly policies?: readonly string[];
}

export interface HarborProjectSpec {
  readonly name: string;
  readonly public?: boolean;
  /** "Prevent vulnerable images from running" (metadata `prevent_vul`). */
  readonly preventVulnerable?: boolean;
  /** The project's storage quota in bytes (-1, the default: unlimited) and what it holds already (bytes). */
  readonly storageLimit?: number;
  readonly storageUsed?: number;
  /** A proxy-cache project: the id of the registry it caches (`registry_id`). */
  readonly proxyCacheOf?: number;
  /** Tag immutability rules, in order. */
  readonly immutableRules?: readonly ImmutableRuleSpec[];
}

/** One immutability rule as Harbor's UI makes it: doublestar patterns on the repository (without project) and tag. */
export interface ImmutableRuleSpec {
  readonly repositories?: string;
  readonly tags?: string;
  readonly repoDecoration?: 'repoMatches' | 'repoExcludes';
  readonly tagDecoration?: 'matches' | 'excludes';
  readonly disabled?: boolean;
}

export interface HarborDoubleOptions {
  readonly users: Record<string, HarborUser>;
  /** Token lifetime in seconds (Harbor's default: 1800). */
  readonly tokenLifetime?: number;
  /**
   * The double's clock in ms (default `Date.now`), for issuing tokens and judging them expired: a test moves it past
   * a token's end instead of sleeping through it.
   */
  readonly clock?: () => number;
  readonly projects?: ReadonlyArray<string | HarborProjectSpec>;
  /** Delay every `/v2/` request by this much, to make a push outlast short tokens. */
  readonly registryDelayMs?: number;
  /** `2.15` (default): a manifest PUT by tag is proxied as a PUT by sha256 of the body; `2.13`: passed as it is. */
  readonly version?: '2.13' | '2.15';
  /** `project_creation_restriction` (default `everyone`). */
  readonly projectCreationRestriction?: 'everyone' | 'adminonly';
  /** Answer no `GET /api/v2.0/projects/{name}` before this settles (a Harbor database that answers when the test says). */
  readonly holdProjectLookups?: Promise<void>;
  /** Object storage: blob GET and HEAD answer 307 to another origin (distribution's `redirect` middleware). */
  readonly redirectStorage?: boolean;
  /** "Repository Read Only" on: every request but GET, HEAD and OPTIONS is refused. */
  readonly readOnly?: boolean;
}

export interface LoggedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly status: number;
  readonly user: string | undefined;
  readonly bytesIn: number;
  readonly authorization: boolean;
}

interface ProjectRecord {
  readonly id: number;
  readonly name: string;
  readonly public: boolean;
  readonly preventVulnerable: boolean;
  storageLimit: number;
  /** Bytes the quota counts as used (Harbor's `quota_usage`). */
  storageUsed: number;
  readonly registryId: number | undefined;
  /** Harbor's shape [src/pkg/immutable/model/rule.go Metadata]. */
  readonly immutableRules: ImmutableRuleRecord[];
  readonly createdBy: string;
}

interface ImmutableSelectorRecord {
  readonly kind: string;
  readonly decoration: string;
  readonly pattern: string;
  readonly extras?: string;
}

interface ImmutableRuleRecord {
  readonly id: number;
  readonly priority: number;
  readonly disabled: boolean;
  readonly action: 'immutable';
  readonly template: 'immutable_template';
  readonly tag_selectors: ImmutableSelectorRecord[];
  readonly scope_selectors: { repository: ImmutableSelectorRecord[] };
}

interface ArtifactRecord {
  readonly digest: string;
  readonly mediaType: string;
  /** Set for accessories: cosign `sha256-<hex>.sig` tags and manifests with a `subject`. */
  accessoryOf: string | undefined;
  pullCount: number;
  /** The artifact's row id, in creation order. */
  readonly id: number;
  /** Child manifests an index references (`artifact_reference`): they are not untagged artifacts of their own. */
  readonly references: readonly string[];
  /** Set when the artifact is first created, kept on a re-push [src/controller/artifact/controller.go ensureArtifact]. */
  readonly pushTime: number;
}

interface RepositoryRecord {
  readonly artifacts: Map<string, ArtifactRecord>;
  /** tag → digest: Harbor's database holds tags, not the registry. */
  readonly tags: Map<string, string>;
  /** tag → when it was created or last moved to another artifact [src/controller/tag/controller.go Ensure]. */
  readonly tagPushTimes: Map<string, number>;
}

/** A scripted failure: the next `times` requests matching answer `status`. */
export interface InjectedFault {
  readonly method: string;
  readonly path: RegExp;
  /** Matched against the query string too, when given (`mount=` tells a mount from an upload). */
  readonly query?: RegExp;
  readonly status: number;
  readonly code?: string;
  readonly message?: string;
  times: number;
}

export interface HarborDouble {
  readonly host: string;
  readonly url: string;
  readonly registry: RunningRegistry;
  readonly projects: Map<string, ProjectRecord>;
  readonly repositories: Map<string, RepositoryRecord>;
  readonly log: LoggedRequest[];
  /** Requests that reached the object store (redirect targets), with whether they carried Authorization. */
  readonly storageLog: LoggedRequest[];
  tokenRequests: number;
  /** Every token handed out: none may ever show in regmigrate's output or files. */
  readonly issuedTokens: string[];
  /** Project creations and their order relative to the first blob upload. */
  readonly events: string[];
  /** `GET /api/v2.0/projects/{name}` requests received so far, answered or not. */
  projectLookups: number;
  readonly faults: InjectedFault[];
  /**
   * `repo:tag` → a digest the artifact API reports for the tag instead of the one pushed (Harbor's database out of
   * step with what was pushed): one artifact read by that tag answers with this `digest`, in GetArtifact's shape
   * [src/server/v2.0/handler/artifact.go GetArtifact; api/v2.0/swagger.yaml definitions Artifact].
   */
  readonly servedDigests: Map<string, string>;
  /** Manifest GETs (each records a pull in Harbor) and upload sessions opened, from the log. */
  manifestGets(): number;
  uploadSessions(): number;
  /** What Harbor serves for `repo:tag` (its database), or undefined. */
  tagDigest(repository: string, tag: string): string | undefined;
  /** When Harbor says `repo:tag` was pushed (its `push_time`, ms), or undefined. */
  tagPushTime(repository: string, tag: string): number | undefined;
  /**
   * Tag retention's "retain the most recently pushed N artifacts" on one repository, as Harbor evaluates it: the
   * tags of the artifacts it keeps. Throws where Harbor's own choice is not determined (see the implementation).
   */
  retainMostRecentlyPushed(repository: string, n: number): string[];
  /**
   * Harbor's garbage collection, the artifact part [src/jobservice/job/impl/gc/garbage_collection.go deletedArt]:
   * with `delete_untagged` (true when the parameter is absent) every artifact no tag points at and no index
   * references (the `Tags: nil` listing over the base filter of src/pkg/artifact/dao/dao.go) is deleted, its accessories with it [src/controller/artifact/controller.go Delete], from the database
   * and from the registry. Returns the `repo@digest` deleted.
   */
  garbageCollect(options?: { deleteUntagged?: boolean }): Promise<string[]>;
  stop(): Promise<void>;
}

const PROJECT_RE = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
const SERVICE = 'harbor-registry';
const ISSUER = 'harbor-token-issuer';
/**
 * distribution accepts a token until 60 s past its `exp` (registry/auth/token/token.go leeway), and Harbor's core
 * allows the same (src/common/const.go JwtLeeway, src/pkg/token/claims/v2/claims.go). The double writes `exp` this
 * much earlier than `expires_in` says, so a token really stops working when the client was told it would: a client
 * that never renews fails.
 */
const LEEWAY_SECONDS = 60;
const COSIGN_TAG = /^sha256-[a-f0-9]{64}\.(sig|att|sbom)$/;
const MANIFEST_ACCEPT =
  'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.v1+prettyjws';

function b64url(input: Buffer | string): string {
  return Buffer.from(input).toString('base64url');
}

interface Claims {
  sub: string;
  /** The instant (ms, the double's clock) the token stops working: issue time + lifetime, exactly. */
  expiresAt: number;
  access: Array<{ type: string; name: string; actions: string[] }>;
}

function makeToken(key: KeyObject, certDer: Buffer, subject: string, access: Claims['access'], lifetime: number, issuedAtMs: number, leeway = 0): string {
  const now = Math.floor(issuedAtMs / 1000);
  const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
  const claims = { iss: ISSUER, sub: subject, aud: SERVICE, exp: now + lifetime - leeway, nbf: now - 1, iat: now, jti: randomUUID(), access };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${signingInput}.${b64url(sign('sha256', Buffer.from(signingInput), key))}`;
}

/** Harbor's error body [src/lib/http/error.go SendError]. */
function harborError(res: http.ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-request-id': randomUUID(), ...headers });
  res.end(JSON.stringify({ errors: [{ code, message }] }));
}

/**
 * bmatcuk/doublestar v1 `Match` (Harbor's selectors, src/lib/selector/selectors/doublestar/selector.go), written
 * apart from regmigrate's own matcher: the pattern and the name split at `/`; a `**` component takes any number of
 * name components; within one, `*` is any run of characters, `?` one, `[…]` (`^` or `!` negates) one of a set,
 * `{a,b}` either, `\` quotes. An empty pattern matches everything (selector.go `match`).
 */
function doublestarMatch(pattern: string, name: string): boolean {
  if (pattern === '') return true;
  const p = pattern.split('/');
  const n = name.split('/');
  const from = (i: number, j: number): boolean => {
    if (i === p.length) return j === n.length;
    if (p[i] === '**') {
      for (let k = j; k <= n.length; k++) if (from(i + 1, k)) return true;
      return false;
    }
    return j < n.length && componentRegExp(p[i]!).test(n[j]!) && from(i + 1, j + 1);
  };
  return from(0, 0);
}

function componentRegExp(component: string): RegExp {
  let re = '';
  let braces = 0;
  for (let i = 0; i < component.length; i++) {
    const c = component[i]!;
    if (c === '\\' && i + 1 < component.length) re += escapeRe(component[++i]!);
    else if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = component.indexOf(']', i + 2);
      let set = component.slice(i + 1, end);
      if (set.startsWith('!') || set.startsWith('^')) set = `^${set.slice(1)}`;
      if (end < 0) throw new Error(`bad pattern ${component}`);
      re += `[${set}]`;
      i = end;
    } else if (c === '{') {
      braces++;
      re += '(?:';
    } else if (c === '}' && braces > 0) {
      braces--;
      re += ')';
    } else if (c === ',' && braces > 0) re += '|';
    else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** The artifact listing's order: push time, newest first, then id [src/pkg/artifact/dao/model.go GetDefaultSorts]; accessories left out. */
function listingOrder(repo: RepositoryRecord): ArtifactRecord[] {
  return [...repo.artifacts.values()].filter((a) => !a.accessoryOf).sort((a, b) => b.pushTime - a.pushTime || b.id - a.id);
}

/**
 * "Retain the most recently pushed N" [src/pkg/retention/policy/rule/latestps/evaluator.go]: the candidates are the
 * repository's artifacts from the listing (listingOrder), each pushed at the latest of its own and its tags' push
 * times in whole seconds [src/pkg/retention/dep/client.go GetCandidates, `.Unix()`]; they are sorted newest first
 * with Go's sort.Slice and the first N kept. sort.Slice sorts up to 12 elements by insertion sort, which keeps tied
 * candidates in listing order; on more, the order among ties is not defined, so a tie across the N-th place throws
 * rather than pretend to know which Harbor keeps.
 */
function retainLatestPushed(repo: RepositoryRecord, n: number): string[] {
  const candidates = listingOrder(repo).map((a) => {
    const tags = [...repo.tags].filter(([, d]) => d === a.digest).map(([t]) => t);
    const latest = Math.max(a.pushTime, ...tags.map((t) => repo.tagPushTimes.get(t)!));
    return { tags, seconds: Math.floor(latest / 1000) };
  });
  const sorted = [...candidates].sort((a, b) => b.seconds - a.seconds);
  if (candidates.length > 12 && n > 0 && n < sorted.length && sorted[n - 1]!.seconds === sorted[n]!.seconds) {
    throw new Error(`retention over ${candidates.length} artifacts ties at the ${n}th place: Harbor's choice among them is not defined`);
  }
  return sorted.slice(0, n).flatMap((c) => c.tags).sort();
}

/** Bytes as Harbor prints them [src/pkg/quota/types/format.go byteCountToDisplaySize]. */
function displaySize(value: number): string {
  if (value < 1024) return `${value} B`;
  let div = 1024;
  let exp = 0;
  for (let n = Math.floor(value / 1024); n >= 1024; n = Math.floor(n / 1024)) {
    div *= 1024;
    exp++;
  }
  return `${(value / div).toFixed(1)} ${'KMGTPE'[exp]}iB`;
}

/** The child manifests of an index (what Harbor records in `artifact_reference`). */
function indexChildren(body: Buffer): string[] {
  try {
    return ((JSON.parse(body.toString('utf8')) as { manifests?: Array<{ digest?: string }> }).manifests ?? []).flatMap((m) => (m.digest ? [m.digest] : []));
  } catch {
    return [];
  }
}

/** A manifest's references (distribution Manifest.References): config and layers, or an index's manifests. */
function manifestReferences(body: Buffer): Array<{ digest: string; size: number; mediaType: string }> {
  try {
    const m = JSON.parse(body.toString('utf8')) as { config?: Ref; layers?: Ref[]; manifests?: Ref[]; fsLayers?: Array<{ blobSum: string }> };
    const refs = [...(m.config ? [m.config] : []), ...(m.layers ?? []), ...(m.manifests ?? [])];
    // schema1 descriptors carry no size.
    for (const l of m.fsLayers ?? []) refs.push({ digest: l.blobSum, size: 0, mediaType: '' });
    return refs.map((r) => ({ digest: r.digest, size: r.size ?? 0, mediaType: r.mediaType ?? '' }));
  } catch {
    return [];
  }
}
interface Ref {
  digest: string;
  size?: number;
  mediaType?: string;
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    req.resume();
  });
}

export async function startHarborDouble(options: HarborDoubleOptions): Promise<HarborDouble> {
  const dir = tempDir('regmigrate-harbor-');
  const keyFile = path.join(dir, 'token.key');
  const certFile = path.join(dir, 'token.crt');
  await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=harbor-token-double']);
  const key = createPrivateKey(readFileSync(keyFile));
  const certDer = new X509Certificate(readFileSync(certFile)).raw;
  const lifetime = options.tokenLifetime ?? 1800;
  const clock = options.clock ?? Date.now;
  const version = options.version ?? '2.15';
  const restriction = options.projectCreationRestriction ?? 'everyone';

  const projects = new Map<string, ProjectRecord>();
  const repositories = new Map<string, RepositoryRecord>();
  let nextId = 1;
  let nextRuleId = 1;
  let nextArtifactId = 1;
  for (const spec of options.projects ?? ['library']) {
    const p = typeof spec === 'string' ? { name: spec } : spec;
    projects.set(p.name, {
      id: nextId++,
      name: p.name,
      public: p.public ?? true,
      preventVulnerable: p.preventVulnerable ?? false,
      storageLimit: p.storageLimit ?? -1,
      storageUsed: p.storageUsed ?? 0,
      registryId: p.proxyCacheOf,
      immutableRules: (p.immutableRules ?? []).map((r) => ({
        id: nextRuleId++,
        priority: 0,
        disabled: r.disabled ?? false,
        action: 'immutable' as const,
        template: 'immutable_template' as const,
        tag_selectors: [{ kind: 'doublestar', decoration: r.tagDecoration ?? 'matches', pattern: r.tags ?? '**', extras: '{"untagged":false}' }],
        scope_selectors: { repository: [{ kind: 'doublestar', decoration: r.repoDecoration ?? 'repoMatches', pattern: r.repositories ?? '**' }] },
      })),
      createdBy: 'admin',
    });
  }
  /** Members added when a user creates a project: the creator becomes its project admin. */
  const createdRoles = new Map<string, Map<string, HarborRole>>();
  const log: LoggedRequest[] = [];
  const storageLog: LoggedRequest[] = [];
  const events: string[] = [];
  const faults: InjectedFault[] = [];
  const tokens = new Map<string, Claims>();
  /** Harbor's blob table, whatever the project: digest → size [src/controller/blob/controller.go Ensure, Get]. */
  const blobSizes = new Map<string, number>();
  /** project → the blobs associated with it (`project_blob`) [src/controller/blob/controller.go AssociateWithProjectByID]. */
  const projectBlobs = new Map<string, Set<string>>();
  /** Upload session → bytes its PATCHes brought (GetAcceptedBlobSize, for a PUT without a body). */
  const sessionBytes = new Map<string, number>();
  /**
   * Whether a tag is immutable [src/controller/tag/controller.go populateImmutableStatus → src/pkg/immutable/match/
   * rule/match.go Matcher.Match]: the project's rules in order, disabled ones skipped, the first repository selector on
   * the repository without its project, the first tag selector on the tag; a selector that cannot be evaluated
   * makes the tag not immutable.
   */
  const tagImmutable = (repository: string, tag: string): boolean => {
    const project = projects.get(repository.split('/')[0]!);
    const name = repository.slice(repository.indexOf('/') + 1);
    try {
      for (const rule of project?.immutableRules ?? []) {
        const scope = rule.scope_selectors.repository[0];
        const tags = rule.tag_selectors[0];
        if (rule.disabled || !scope || !tags) continue;
        const repoSelected = scope.decoration === 'repoMatches' ? doublestarMatch(scope.pattern, name) : scope.decoration === 'repoExcludes' && !doublestarMatch(scope.pattern, name);
        const tagSelected = tags.decoration === 'matches' ? doublestarMatch(tags.pattern, tag) : tags.decoration === 'excludes' && !doublestarMatch(tags.pattern, tag);
        if (repoSelected && tagSelected) return true;
      }
    } catch {
      return false;
    }
    return false;
  };
  /** A tag pointed at an artifact: its push time is set when it is created or moved, kept otherwise [tag controller.go Ensure]. */
  const ensureTag = (repo: RepositoryRecord, tag: string, digest: string): void => {
    if (repo.tags.get(tag) !== digest) repo.tagPushTimes.set(tag, Date.now());
    repo.tags.set(tag, digest);
  };
  const deleteTag = (repo: RepositoryRecord, tag: string): void => {
    repo.tags.delete(tag);
    repo.tagPushTimes.delete(tag);
  };
  const linked = (project: string, digest: string): boolean => projectBlobs.get(project)?.has(digest) ?? false;
  const associate = (project: string, digest: string): void => {
    let set = projectBlobs.get(project);
    if (!set) projectBlobs.set(project, (set = new Set()));
    set.add(digest);
  };
  let registryPort = 0;

  const basicUser = (req: http.IncomingMessage): { user: string | undefined; bad: boolean } => {
    const header = req.headers.authorization;
    if (!header?.startsWith('Basic ')) return { user: undefined, bad: false };
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const name = decoded.slice(0, colon);
    const user = options.users[name];
    if (!user || user.password !== decoded.slice(colon + 1)) return { user: undefined, bad: true };
    return { user: name, bad: false };
  };

  const roleOf = (user: string | undefined, project: string): HarborRole | undefined => {
    if (!user) return undefined;
    return createdRoles.get(user)?.get(project) ?? options.users[user]?.roles?.[project];
  };

  /**
   * The project policies the account holds [src/common/rbac/project/evaluator.go]: an admin all of them, a robot its
   * own, a member its role's, anyone logged in the public ones of a public project.
   */
  const policiesOf = (user: string | undefined, projectName: string): Set<string> => {
    const project = projects.get(projectName);
    if (!project) return new Set();
    const account = user ? options.users[user] : undefined;
    if (account?.admin) return new Set(MAINTAINER_POLICIES);
    const role = roleOf(user, projectName);
    const own = account?.robot === 'system' || (account?.robot === 'project' && role) ? (account.policies ?? ROBOT_POLICIES) : role ? ROLE_POLICIES[role] : [];
    const set = new Set(own);
    if (project.public) for (const p of PUBLIC_POLICIES) set.add(p);
    return set;
  };

  /** What the account may do to a project's repositories [src/core/service/token/creator.go repositoryFilter]. */
  const repositoryActions = (user: string | undefined, projectName: string): string[] => {
    if (user && options.users[user]?.admin && projects.has(projectName)) return ['pull', 'push', 'delete', '*'];
    const policies = policiesOf(user, projectName);
    return ['pull', 'push', 'delete'].filter((action) => policies.has(`repository:${action}`));
  };

  const double: HarborDouble = {
    host: '',
    url: '',
    registry: undefined as unknown as RunningRegistry,
    projects,
    repositories,
    log,
    storageLog,
    tokenRequests: 0,
    issuedTokens: [],
    events,
    projectLookups: 0,
    faults,
    servedDigests: new Map(),
    manifestGets: () => log.filter((r) => r.method === 'GET' && /^\/v2\/.+\/manifests\//.test(r.path)).length,
    uploadSessions: () => log.filter((r) => r.method === 'POST' && r.path.endsWith('/blobs/uploads/') && !r.query.includes('mount=')).length,
    tagDigest: (repository, tag) => repositories.get(repository)?.tags.get(tag),
    tagPushTime: (repository, tag) => repositories.get(repository)?.tagPushTimes.get(tag),
    retainMostRecentlyPushed: (repository, n) => retainLatestPushed(repositories.get(repository)!, n),
    garbageCollect: async (gcOptions = {}) => {
      if (gcOptions.deleteUntagged === false) return [];
      const deleted: string[] = [];
      for (const [repository, repo] of repositories) {
        const tagged = new Set(repo.tags.values());
        const referenced = new Set([...repo.artifacts.values()].flatMap((a) => a.references));
        const doomed = [...repo.artifacts.values()].filter((a) => !tagged.has(a.digest) && !referenced.has(a.digest) && !a.accessoryOf).map((a) => a.digest);
        for (const a of repo.artifacts.values()) if (a.accessoryOf && doomed.includes(a.accessoryOf)) doomed.push(a.digest);
        for (const digest of doomed) {
          repo.artifacts.delete(digest);
          // The registry forgets the manifest too (GC's sweep deletes it through the registry's API).
          const token = makeToken(key, certDer, 'harbor-gc', [{ type: 'repository', name: repository, actions: ['delete', 'pull'] }], 60, Date.now());
          const res = await fetch(`http://127.0.0.1:${registryPort}/v2/${repository}/manifests/${digest}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
          if (res.status !== 202) throw new Error(`the double's GC could not delete ${repository}@${digest}: ${res.status}`);
          deleted.push(`${repository}@${digest}`);
        }
      }
      return deleted;
    },
    stop: async () => undefined,
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://double');
    let bytesIn = 0;
    req.on('data', (chunk: Buffer) => (bytesIn += chunk.length));
    // Counting turned the body flowing: hold it until a handler reads or forwards it.
    req.pause();
    let who: string | undefined;
    res.on('finish', () =>
      log.push({ method: req.method ?? '', path: url.pathname, query: url.search, status: res.statusCode, user: who, bytesIn, authorization: req.headers.authorization !== undefined }),
    );
    const fault = faults.find((f) => f.times > 0 && f.method === req.method && f.path.test(url.pathname) && (!f.query || f.query.test(url.search)));
    if (fault) {
      fault.times--;
      req.resume();
      return harborError(res, fault.status, fault.code ?? 'UNKNOWN', fault.message ?? 'injected fault');
    }
    // Read-only mode refuses every unsafe method with 403 DENIED [src/server/middleware/readonly/readonly.go].
    if (options.readOnly && !['GET', 'HEAD', 'OPTIONS'].includes(req.method ?? '')) {
      req.resume();
      return harborError(res, 403, 'DENIED', 'The system is in read only mode. Any modification is prohibited.');
    }
    if (url.pathname === '/v2' || url.pathname.startsWith('/v2/')) {
      void handleV2(req, res, url, (u) => (who = u)).catch((err: unknown) => {
        if (!res.headersSent) harborError(res, 500, 'UNKNOWN', String(err));
      });
      return;
    }
    const { user, bad } = basicUser(req);
    who = user;
    void readBody(req).then((body) => handleApi(req, res, url, user, bad, body));
  });

  /**
   * The `/v2/` front [src/server/middleware/v2auth/auth.go]: every repository request needs the action it implies
   * (GET/HEAD pull, POST/PUT/PATCH push, DELETE delete; a mount also pull on `from`). A refused request that carried
   * an Authorization header gets `Basic realm="harbor"`; one without gets the Bearer challenge; a repository whose
   * project does not exist gets 401 with an empty challenge.
   */
  async function handleV2(req: http.IncomingMessage, res: http.ServerResponse, url: URL, setUser: (u: string | undefined) => void): Promise<void> {
    const header = req.headers.authorization;
    let claims: Claims | undefined;
    let basic: string | undefined;
    if (header?.startsWith('Bearer ')) {
      const found = tokens.get(header.slice(7));
      // Expired is unauthenticated [src/pkg/token/claims/v2/claims.go Valid]. Judged at the exact instant the token
      // was told to end (not its `exp`, whole seconds: floored, a token of 1 s could be born expired).
      if (found && clock() < found.expiresAt) claims = found;
    } else if (header?.startsWith('Basic ')) {
      basic = basicUser(req).user;
    }
    const user = claims?.sub || basic;
    setUser(user);
    const authenticated = claims !== undefined || basic !== undefined;
    const challenge = (scope?: string): string =>
      header ? 'Basic realm="harbor"' : `Bearer realm="http://${double.host}/service/token",service="${SERVICE}"${scope ? `,scope="${scope}"` : ''}`;
    const unauthorized = (message: string, value: string): void => {
      req.resume();
      harborError(res, 401, 'UNAUTHORIZED', message, { 'www-authenticate': value, 'docker-distribution-api-version': 'registry/2.0' });
    };
    if (url.pathname === '/v2/' || url.pathname === '/v2') {
      if (!authenticated) return unauthorized('unauthorized', challenge());
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' }).end('{}');
      return;
    }
    if (url.pathname === '/v2/_catalog') {
      if (!(claims?.access.some((a) => a.type === 'registry') || (basic && options.users[basic]?.admin))) return unauthorized('unauthorized to list catalog', 'Basic realm="harbor"');
      req.resume();
      const names = [...repositories.keys()].sort();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ repositories: names }));
      return;
    }
    const route = /^\/v2\/(.+)\/(manifests|blobs|tags)\/(.*)$/.exec(url.pathname);
    if (!route) return unauthorized(`un-recognized request: ${req.method} ${url.pathname}`, '');
    const repository = route[1]!;
    const needs: Array<{ name: string; action: string }> = [];
    const method = req.method ?? 'GET';
    // The action each method needs [src/server/middleware/v2auth/access.go getAction]: GET/HEAD pull, DELETE delete (a
    // manifest's or an upload session's), POST/PUT/PATCH push.
    needs.push({ name: repository, action: method === 'GET' || method === 'HEAD' ? 'pull' : method === 'DELETE' ? 'delete' : 'push' });
    const from = url.searchParams.get('from');
    if (method === 'POST' && url.searchParams.get('mount') && from) needs.push({ name: from, action: 'pull' });
    for (const need of needs) {
      const project = need.name.split('/')[0]!;
      // reqChecker.check: a GET or HEAD without Authorization is challenged first; then the project is looked up,
      // and a missing one is an error with no challenge at all.
      if (!header && (method === 'GET' || method === 'HEAD')) return unauthorized('authorize header needed to send HEAD to repository', challenge(`repository:${repository}:pull`));
      if (!projects.has(project)) return unauthorized(`project ${project} not found`, '');
      const granted = claims
        ? (claims.access.find((a) => a.type === 'repository' && a.name === need.name)?.actions ?? [])
        : basic
          ? repositoryActions(basic, project)
          : repositoryActions(undefined, project);
      if (!granted.includes(need.action) && !granted.includes('*')) {
        return unauthorized(`unauthorized to access repository: ${need.name}, action: ${need.action}`, challenge(`repository:${need.name}:${need.action}`));
      }
    }
    if (method === 'POST' && url.pathname.endsWith('/blobs/uploads/') && !events.includes('first-blob-upload')) events.push('first-blob-upload');
    if (options.registryDelayMs) await new Promise((r) => setTimeout(r, options.registryDelayMs));
    const kind = route[2]!;
    const reference = route[3]!;
    if (kind === 'tags' && reference === 'list') return listTags(req, res, repository);
    if (kind === 'manifests') return manifest(req, res, url, repository, decodeURIComponent(reference));
    if (kind === 'blobs' && reference.startsWith('uploads/') && method !== 'GET' && method !== 'DELETE') return blobUpload(req, res, url, repository, reference.slice('uploads/'.length));
    forward(req, res, url.pathname + url.search);
  }

  /**
   * Blob uploads through Harbor's middlewares [src/server/registry/route.go]: a proxy-cache project refuses the POST
   * [src/server/middleware/repoproxy/proxy.go DisableBlobAndManifestUploadMiddleware]; the quota is charged on the
   * POST of a mount and on the PUT that ends an upload, nothing when the blob is already associated with the project
   * [src/server/middleware/quota/post_initiate_blob_upload.go, put_blob_upload.go], and the blob is associated with the
   * project once the registry answered 201 [src/server/middleware/blob/post_initiate_blob_upload.go,
   * put_blob_upload.go].
   */
  function blobUpload(req: http.IncomingMessage, res: http.ServerResponse, url: URL, repository: string, session: string): void {
    const name = repository.split('/')[0]!;
    const project = projects.get(name)!;
    const target = url.pathname + url.search;
    if (req.method === 'POST') {
      if (project.registryId !== undefined) return refuse(req, res, 403, 'DENIED', `can not push artifact to a proxy project: ${name}`);
      const mount = url.searchParams.get('mount');
      // Not a mount: a zero-byte request that only fails when the quota is already over; a mount of a blob Harbor
      // does not know, or one already in the project: nothing requested.
      const size = mount ? blobSizes.get(mount) : 0;
      const charge = mount && (size === undefined || linked(name, mount)) ? undefined : size;
      if (charge !== undefined) {
        const refused = reserveQuota(project, charge);
        if (refused) return refuse(req, res, 403, 'DENIED', refused);
      }
      return forward(req, res, target, (status) => {
        // quotaController.Request keeps the reservation for any 2xx, a 202 that opened a session included.
        if (charge !== undefined && (status < 200 || status > 299)) project.storageUsed -= charge;
        if (status === 201 && mount) associate(name, mount);
      });
    }
    if (req.method === 'PATCH') {
      req.on('data', (chunk: Buffer) => sessionBytes.set(session, (sessionBytes.get(session) ?? 0) + chunk.length));
      return forward(req, res, target);
    }
    // PUT: the body's length, or what the session's PATCHes brought (GetAcceptedBlobSize).
    const digest = url.searchParams.get('digest') ?? '';
    const size = Number(req.headers['content-length'] ?? 0) || (sessionBytes.get(session) ?? 0);
    const charge = size === 0 || linked(name, digest) ? undefined : size;
    if (charge !== undefined) {
      const refused = reserveQuota(project, charge);
      if (refused) return refuse(req, res, 403, 'DENIED', refused);
    }
    forward(req, res, target, (status, headers) => {
      if (charge !== undefined && (status < 200 || status > 299)) project.storageUsed -= charge;
      if (status !== 201) return;
      const landed = String(headers['docker-content-digest'] ?? digest);
      blobSizes.set(landed, size);
      associate(name, landed);
    });
  }

  function refuse(req: http.IncomingMessage, res: http.ServerResponse, status: number, code: string, message: string): void {
    req.resume();
    harborError(res, status, code, message);
  }

  /**
   * The quota's reservation [src/controller/quota/controller.go reserveResources, src/pkg/quota/util.go IsSafe]: the
   * new usage may not pass the hard limit (-1: unlimited). The refusal's words [src/pkg/quota/errors.go
   * ResourceOverflow], sent as 403 DENIED [src/server/middleware/quota/quota.go RequestMiddleware].
   */
  function reserveQuota(project: ProjectRecord, bytes: number): string | undefined {
    const used = project.storageUsed;
    if (project.storageLimit !== -1 && used + bytes > project.storageLimit) {
      return `adding ${displaySize(bytes)} of storage resource, which when updated to current usage of ${displaySize(used)} will exceed the configured upper limit of ${displaySize(project.storageLimit)}.`;
    }
    project.storageUsed = used + bytes;
    return undefined;
  }

  /**
   * What a manifest PUT charges [src/server/middleware/quota/put_manifest.go]: nothing when the manifest is already in
   * the project, else its size plus every reference not in the project yet (foreign layers aside).
   */
  function manifestCharge(project: string, digest: string, body: Buffer): number | undefined {
    if (linked(project, digest)) return undefined;
    let size = body.length;
    for (const ref of manifestReferences(body)) if (!linked(project, ref.digest) && !/foreign|nondistributable/.test(ref.mediaType)) size += ref.size;
    return size;
  }

  /** `/v2/<name>/tags/list` from the database [src/server/registry/tag.go]: accessory tags included. */
  function listTags(req: http.IncomingMessage, res: http.ServerResponse, repository: string): void {
    req.resume();
    const repo = repositories.get(repository);
    if (!repo) return harborError(res, 404, 'NAME_UNKNOWN', `repository name not known to registry: ${repository}`);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: repository, tags: [...repo.tags.keys()].sort() }));
  }

  async function manifest(req: http.IncomingMessage, res: http.ServerResponse, url: URL, repository: string, reference: string): Promise<void> {
    const method = req.method ?? 'GET';
    const isDigest = reference.startsWith('sha256:');
    const repo = repositories.get(repository);
    if (method === 'GET' || method === 'HEAD') {
      req.resume();
      // getManifest resolves the reference in the database and proxies by digest [src/server/registry/manifest.go].
      const digest = isDigest ? (repo?.artifacts.has(reference) ? reference : undefined) : repo?.tags.get(reference);
      if (!digest) return harborError(res, 404, 'MANIFEST_UNKNOWN', `artifact ${repository}:${reference} not found`);
      const project = projects.get(repository.split('/')[0]!)!;
      // [src/server/middleware/vulnerable/vulnerable.go]: nothing is scanned in the double, so nothing may be pulled.
      if (project.preventVulnerable) {
        return harborError(
          res,
          412,
          'PROJECTPOLICYVIOLATION',
          `current image without vulnerability scanning cannot be pulled due to configured policy in 'Prevent images with vulnerability severity of "low" or higher from running.' To continue with pull, please contact your project administrator for help.`,
        );
      }
      if (method === 'GET') repo!.artifacts.get(digest)!.pullCount++;
      return forward(req, res, `/v2/${repository}/manifests/${digest}`);
    }
    if (method === 'PUT') {
      const body = await readBody(req);
      const name = repository.split('/')[0]!;
      const project = projects.get(name)!;
      // The PUT's middlewares in their order [src/server/registry/route.go]: proxy project, then quota.
      if (project.registryId !== undefined) return harborError(res, 403, 'DENIED', `can not push artifact to a proxy project: ${name}`);
      // An existing tag that a rule protects is refused, even at the same digest [src/server/middleware/immutable/
      // pushmf.go handlePush, error.go].
      if (!isDigest && repo?.tags.has(reference) && tagImmutable(repository, reference)) {
        return harborError(res, 412, 'PRECONDITION', `Failed to process request due to '${repository.slice(name.length + 1)}:${reference}' configured as immutable.`);
      }
      const bodyDigest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
      const charge = manifestCharge(name, bodyDigest, body);
      if (charge !== undefined) {
        const refused = reserveQuota(project, charge);
        if (refused) return harborError(res, 403, 'DENIED', refused);
      }
      // Since 2.15 a PUT by tag goes to the registry as a PUT by sha256 of the raw body, and the tag is kept in the
      // database only [src/server/registry/manifest.go putManifest].
      const target = !isDigest && version === '2.15' ? bodyDigest : reference;
      const upstream = await registryFetch('PUT', `/v2/${repository}/manifests/${target}`, req.headers.authorization, body, req.headers['content-type']);
      const text = Buffer.from(await upstream.arrayBuffer());
      if (charge !== undefined && upstream.status !== 201) project.storageUsed -= charge;
      if (upstream.status === 201) {
        const digest = upstream.headers.get('docker-content-digest')!;
        blobSizes.set(digest, body.length);
        associate(name, digest);
        const mediaType = (req.headers['content-type'] ?? '').split(';')[0]!;
        recordArtifact(repository, digest, mediaType, body, isDigest ? undefined : reference);
      }
      const headers: Record<string, string> = {};
      upstream.headers.forEach((v, k) => (headers[k] = v));
      delete headers['content-length'];
      delete headers['transfer-encoding'];
      res.writeHead(upstream.status, headers).end(text);
      return;
    }
    if (method === 'DELETE') {
      req.resume();
      const upstream = await registryFetch('DELETE', `/v2/${repository}/manifests/${reference}`, req.headers.authorization);
      if (upstream.status === 202 && repo) {
        repo.artifacts.delete(reference);
        for (const [tag, digest] of repo.tags) if (digest === reference) deleteTag(repo, tag);
      }
      res.writeHead(upstream.status).end(Buffer.from(await upstream.arrayBuffer()));
      return;
    }
    forward(req, res, url.pathname + url.search);
  }

  /**
   * An artifact and its tag in the database [src/controller/artifact/controller.go Ensure]. Accessories: a cosign
   * tag names its subject [src/server/middleware/cosign/cosign.go]; a manifest's `subject` field does the same
   * [src/server/middleware/subject/subject.go].
   */
  function recordArtifact(repository: string, digest: string, mediaType: string, body: Buffer, tag: string | undefined): void {
    let repo = repositories.get(repository);
    if (!repo) repositories.set(repository, (repo = { artifacts: new Map(), tags: new Map(), tagPushTimes: new Map() }));
    let accessoryOf: string | undefined;
    const cosign = tag ? COSIGN_TAG.exec(tag) : null;
    if (cosign) accessoryOf = `sha256:${tag!.slice(7, 71)}`;
    try {
      const subject = (JSON.parse(body.toString('utf8')) as { subject?: { digest?: string } }).subject?.digest;
      if (subject) accessoryOf = subject;
    } catch {
      // schema1 and others: no subject
    }
    const existing = repo.artifacts.get(digest);
    if (existing) existing.accessoryOf ??= accessoryOf;
    else repo.artifacts.set(digest, { digest, mediaType, accessoryOf, pullCount: 0, id: nextArtifactId++, pushTime: Date.now(), references: indexChildren(body) });
    if (tag) ensureTag(repo, tag, digest);
  }

  /** `after`: what Harbor's middlewares do once the registry answered (src/server/middleware AfterResponse). */
  function forward(req: http.IncomingMessage, res: http.ServerResponse, target: string, after?: (status: number, headers: http.IncomingHttpHeaders) => void): void {
    const upstream = http.request({ host: '127.0.0.1', port: registryPort, method: req.method, path: target, headers: req.headers }, (upstreamRes) => {
      after?.(upstreamRes.statusCode ?? 502, upstreamRes.headers);
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
      upstreamRes.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) harborError(res, 502, 'UNKNOWN', 'registry unreachable');
      else res.destroy();
    });
    req.pipe(upstream);
  }

  async function registryFetch(method: string, target: string, authorization: string | undefined, body?: Buffer, contentType?: string): Promise<Response> {
    const headers: Record<string, string> = { accept: MANIFEST_ACCEPT };
    if (authorization) headers.authorization = authorization;
    if (contentType) headers['content-type'] = contentType;
    return fetch(`http://127.0.0.1:${registryPort}${target}`, { method, headers, ...(body ? { body } : {}) });
  }

  function issueToken(req: http.IncomingMessage, res: http.ServerResponse, url: URL, user: string | undefined, bad: boolean): void {
    double.tokenRequests++;
    const scopes = url.searchParams.getAll('scope');
    // Wrong credentials fall back to anonymous; only a scope-less request (docker login) is refused
    // [src/core/service/token/creator.go generalCreator.Create].
    if (!user && scopes.length === 0) return void res.writeHead(401).end();
    void bad;
    const access: Claims['access'] = [];
    for (const scope of scopes) {
      const [type, name, actions] = scope.split(':') as [string, string, string];
      const requested = (actions ?? '').split(',');
      if (type === 'registry' && name === 'catalog') {
        access.push({ type, name, actions: user && options.users[user]!.admin ? requested : [] });
        continue;
      }
      if (type !== 'repository' || !name) continue;
      // The requested actions are replaced by what the account holds [creator.go repositoryFilter].
      const allowed = repositoryActions(user, name.split('/')[0]!);
      access.push({ type, name, actions: requested.filter((a) => allowed.includes(a) || allowed.includes('*')) });
    }
    const issuedAt = clock();
    const token = makeToken(key, certDer, user ?? '', access, lifetime, issuedAt, LEEWAY_SECONDS);
    tokens.set(token, { sub: user ?? '', expiresAt: issuedAt + lifetime * 1000, access });
    double.issuedTokens.push(token);
    res.writeHead(200, { 'content-type': 'application/json' });
    // Harbor's shape: the token in `token`, an empty `access_token` [src/common/models/token.go].
    res.end(JSON.stringify({ token, access_token: '', expires_in: lifetime, issued_at: new Date(issuedAt).toISOString() }));
  }

  function handleApi(req: http.IncomingMessage, res: http.ServerResponse, url: URL, user: string | undefined, bad: boolean, body: Buffer): void {
    if (url.pathname === '/service/token' && req.method === 'GET') return issueToken(req, res, url, user, bad);
    if (url.pathname === '/api/v2.0/systeminfo' && req.method === 'GET') {
      // The version and settings only for an authenticated caller [src/controller/systeminfo/controller.go GetInfo].
      const info: Record<string, unknown> = { auth_mode: 'db_auth', self_registration: false, primary_auth_mode: false };
      if (user) Object.assign(info, { harbor_version: `v${version}.0-double`, project_creation_restriction: restriction, read_only: options.readOnly ?? false, registry_url: double.host });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(info));
      return;
    }
    if (bad) return harborError(res, 401, 'UNAUTHORIZED', 'unauthorized');
    if (url.pathname === '/api/v2.0/projects') return projectsRoute(req, res, url, user, body);
    if (url.pathname === '/api/v2.0/quotas' && req.method === 'GET') return listQuotas(res, url, user);
    if (url.pathname === '/api/v2.0/users/current/permissions' && req.method === 'GET') return currentPermissions(res, url, user);
    const rules = /^\/api\/v2\.0\/projects\/([^/]+)\/immutabletagrules$/.exec(url.pathname);
    if (rules && req.method === 'GET') return listImmutableRules(req, res, url, decodeURIComponent(rules[1]!), user);
    const summary = /^\/api\/v2\.0\/projects\/([^/]+)\/summary$/.exec(url.pathname);
    if (summary && req.method === 'GET') return projectSummary(req, res, decodeURIComponent(summary[1]!), user);
    const one = /^\/api\/v2\.0\/projects\/([^/]+)$/.exec(url.pathname);
    if (one && req.method === 'GET') {
      double.projectLookups++;
      const answer = (): void => getProject(req, res, decodeURIComponent(one[1]!), user);
      if (options.holdProjectLookups) void options.holdProjectLookups.then(answer);
      else answer();
      return;
    }
    const repoRoute = /^\/api\/v2\.0\/projects\/([^/]+)\/repositories(?:\/([^/]+)(\/artifacts(?:\/([^/]+)(\/tags(?:\/([^/]+))?)?)?)?)?$/.exec(url.pathname);
    if (repoRoute) return repositoryRoute(req, res, url, user, body, repoRoute);
    harborError(res, 404, 'NOT_FOUND', `no route ${req.method} ${url.pathname} in the Harbor double`);
  }

  function projectsRoute(req: http.IncomingMessage, res: http.ServerResponse, url: URL, user: string | undefined, body: Buffer): void {
    if (req.method === 'HEAD') {
      // [src/server/v2.0/handler/project.go HeadProject]: any logged-in caller learns whether the name exists.
      if (!user) return void res.writeHead(401).end();
      res.writeHead(projects.has(url.searchParams.get('project_name') ?? '') ? 200 : 404).end();
      return;
    }
    if (req.method === 'GET') {
      const name = url.searchParams.get('name');
      const list = [...projects.values()].filter((p) => !name || p.name.includes(name)).map((p) => ({ project_id: p.id, name: p.name }));
      return page(res, url, list);
    }
    if (req.method !== 'POST') return harborError(res, 405, 'METHOD_NOT_ALLOWED', 'method not allowed');
    // [src/server/v2.0/handler/project.go CreateProject]
    if (!user) return harborError(res, 401, 'UNAUTHORIZED', 'unauthorized');
    let parsed: { project_name?: unknown; metadata?: Record<string, unknown>; storage_limit?: unknown };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch {
      return harborError(res, 400, 'BAD_REQUEST', 'invalid JSON');
    }
    const account = options.users[user]!;
    if (account.robot === 'project') return harborError(res, 403, 'FORBIDDEN', 'Only system level robot can create project');
    if (account.robot === 'system' && !account.canCreateProject) return harborError(res, 403, 'FORBIDDEN', 'forbidden');
    if (restriction === 'adminonly' && !account.admin) return harborError(res, 403, 'FORBIDDEN', 'Only system admin can create project');
    const name = parsed.project_name;
    if (typeof name !== 'string' || !PROJECT_RE.test(name) || name.length > 255) {
      return harborError(res, 400, 'BAD_REQUEST', `validation failure: project_name in body should match '${PROJECT_RE.source}'`);
    }
    for (const [k, v] of Object.entries(parsed.metadata ?? {})) {
      // ProjectMetadata fields are strings in Harbor's swagger; a boolean fails to unmarshal.
      if (typeof v !== 'string') return harborError(res, 400, 'BAD_REQUEST', `json: cannot unmarshal ${typeof v} into Go struct field ProjectMetadata.metadata.${k} of type string`);
    }
    if (projects.has(name)) return harborError(res, 409, 'CONFLICT', `The project named ${name} already exists`);
    const id = nextId++;
    projects.set(name, {
      id,
      name,
      public: parsed.metadata?.public === 'true',
      preventVulnerable: parsed.metadata?.prevent_vul === 'true',
      storageLimit: typeof parsed.storage_limit === 'number' && account.admin ? parsed.storage_limit : -1,
      storageUsed: 0,
      registryId: undefined,
      immutableRules: [],
      createdBy: user,
    });
    if (!account.admin && !account.robot) {
      const mine = createdRoles.get(user) ?? new Map<string, HarborRole>();
      mine.set(name, 'projectAdmin');
      createdRoles.set(user, mine);
    }
    events.push(`project-created:${name}`);
    res.writeHead(201, { location: `/api/v2.0/projects/${id}` }).end();
  }

  /**
   * `GET /projects/{name}` with `X-Is-Resource-Name: true` [src/server/v2.0/handler/project.go GetProject]. The
   * read permission is checked before the project is looked up [src/server/v2.0/handler/base.go
   * RequireProjectAccess → HasProjectPermission]: a name that does not exist is checked as project id 0, on which
   * only a system admin (or a system robot covering every project) has rights, so anyone else gets 403 (401
   * anonymous) for a missing project, not 404.
   */
  function getProject(req: http.IncomingMessage, res: http.ServerResponse, name: string, user: string | undefined): void {
    if (req.headers['x-is-resource-name'] !== 'true') return harborError(res, 400, 'BAD_REQUEST', 'project_name_or_id must be a number without X-Is-Resource-Name');
    const project = projects.get(name);
    const account = user ? options.users[user] : undefined;
    const role = project ? roleOf(user, name) : undefined;
    if (!project?.public && !account?.admin && account?.robot !== 'system' && !role) {
      return harborError(res, user ? 403 : 401, user ? 'FORBIDDEN' : 'UNAUTHORIZED', 'forbidden');
    }
    if (!project) return harborError(res, 404, 'NOT_FOUND', `project ${name} not found`);
    const roleId = role ? ROLE_IDS[role] : 0;
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        project_id: project.id,
        name: project.name,
        current_user_role_id: roleId,
        current_user_role_ids: roleId ? [roleId] : [],
        // Set for a proxy-cache project [src/pkg/project/models/project.go IsProxy: RegistryID > 0].
        ...(project.registryId ? { registry_id: project.registryId } : {}),
        metadata: { public: String(project.public), ...(project.preventVulnerable ? { prevent_vul: 'true', severity: 'low' } : {}) },
      }),
    );
  }

  /**
   * `GET /quotas?reference=project&reference_id=ID` [src/server/v2.0/handler/quota.go ListQuotas]: system-level
   * "list quota" only (a system admin here), else 403. Harbor's shape [api/v2.0/swagger.yaml definitions Quota].
   */
  function listQuotas(res: http.ServerResponse, url: URL, user: string | undefined): void {
    if (!user) return harborError(res, 401, 'UNAUTHORIZED', 'unauthorized');
    if (!options.users[user]?.admin) return harborError(res, 403, 'FORBIDDEN', 'forbidden');
    const id = url.searchParams.get('reference_id');
    const list = [...projects.values()]
      .filter((p) => url.searchParams.get('reference') === 'project' && (!id || String(p.id) === id))
      .map((p) => ({ id: p.id, ref: { id: p.id, name: p.name }, hard: { storage: p.storageLimit }, used: { storage: p.storageUsed } }));
    page(res, url, list);
  }

  /**
   * `GET /users/current/permissions?scope=…&relative=true` [src/server/v2.0/handler/user.go GetCurrentUserPermissions]:
   * the policies of the scope's namespace (`/project/{id}`, `/system`) the caller holds, resources relative to the
   * scope. In `/system`, `project:create` for a system admin and a system robot given it; a user's right to create
   * projects under `project_creation_restriction: everyone` is no system policy.
   */
  function currentPermissions(res: http.ServerResponse, url: URL, user: string | undefined): void {
    if (!user) return harborError(res, 401, 'UNAUTHORIZED', 'unauthorized');
    const scope = url.searchParams.get('scope') ?? '';
    const relative = url.searchParams.get('relative') === 'true';
    let policies: string[] = [];
    let prefix = '';
    const projectScope = /^\/project\/(\d+)\/?$/.exec(scope);
    if (projectScope) {
      const project = [...projects.values()].find((p) => String(p.id) === projectScope[1]);
      policies = project ? [...policiesOf(user, project.name)] : [];
      prefix = `/project/${projectScope[1]}/`;
    } else if (scope.startsWith('/system')) {
      const account = options.users[user]!;
      policies = account.admin || (account.robot === 'system' && account.canCreateProject) ? ['project:create', 'project:list'] : [];
      prefix = '/system/';
    }
    const body = policies.map((p) => {
      const [resource, action] = p.split(':') as [string, string];
      return { resource: relative ? resource : `${prefix}${resource}`, action };
    });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }

  /**
   * `GET /projects/{name}/summary` [src/server/v2.0/handler/project.go GetProjectSummary]: the quota for anyone who may
   * read the project and its quota (every project role holds "quota read", rbac_role.go).
   */
  function projectSummary(req: http.IncomingMessage, res: http.ServerResponse, name: string, user: string | undefined): void {
    if (req.headers['x-is-resource-name'] !== 'true') return harborError(res, 400, 'BAD_REQUEST', 'project_name_or_id must be a number without X-Is-Resource-Name');
    const project = projects.get(name);
    const account = user ? options.users[user] : undefined;
    if (!project || (!project.public && !account?.admin && account?.robot !== 'system' && !roleOf(user, name))) return harborError(res, user ? 403 : 401, user ? 'FORBIDDEN' : 'UNAUTHORIZED', 'forbidden');
    const quota = account?.admin || roleOf(user, name) ? { quota: { hard: { storage: project.storageLimit }, used: { storage: project.storageUsed } } } : {};
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ repo_count: [...repositories.keys()].filter((r) => r.startsWith(`${name}/`)).length, ...quota }));
  }

  /**
   * `GET /projects/{p}/immutabletagrules` [src/server/v2.0/handler/immutable.go ListImmuRules]: "immutable-tag list",
   * held by project admins and maintainers (rbac_role.go) and system admins; developers get 403.
   */
  function listImmutableRules(req: http.IncomingMessage, res: http.ServerResponse, url: URL, name: string, user: string | undefined): void {
    if (req.headers['x-is-resource-name'] !== 'true') return harborError(res, 400, 'BAD_REQUEST', 'project_name_or_id must be a number without X-Is-Resource-Name');
    const project = projects.get(name);
    const role = roleOf(user, name);
    if (!user) return harborError(res, 401, 'UNAUTHORIZED', 'unauthorized');
    if (!project || !(options.users[user]?.admin || role === 'projectAdmin' || role === 'maintainer')) return harborError(res, 403, 'FORBIDDEN', 'forbidden');
    page(res, url, project.immutableRules);
  }

  function repositoryRoute(req: http.IncomingMessage, res: http.ServerResponse, url: URL, user: string | undefined, body: Buffer, m: RegExpExecArray): void {
    const project = decodeURIComponent(m[1]!);
    if (!projects.has(project)) return harborError(res, 404, 'NOT_FOUND', `project ${project} not found`);
    const actions = repositoryActions(user, project);
    // Reading repositories and artifacts needs their read/list policies [src/server/v2.0/handler/artifact.go,
    // repository.go RequireProjectAccess], not the pull right.
    const policies = policiesOf(user, project);
    if (!actions.includes('*') && !policies.has('artifact:read') && !policies.has('repository:list')) return harborError(res, user ? 403 : 401, user ? 'FORBIDDEN' : 'UNAUTHORIZED', 'forbidden');
    if (!m[2]) {
      if (req.method !== 'GET') return harborError(res, 405, 'METHOD_NOT_ALLOWED', 'method not allowed');
      const names = [...repositories.keys()].filter((r) => r.startsWith(`${project}/`)).sort();
      return page(res, url, names.map((name) => ({ name, artifact_count: repositories.get(name)!.artifacts.size })));
    }
    // The repository name goes encoded twice: once decoded it must still hold no "/" (docs/registry-behaviour.md, Harbor API).
    const once = decodeURIComponent(m[2]);
    if (once.includes('/')) return harborError(res, 404, 'NOT_FOUND', 'repository name not double-encoded');
    const repository = `${project}/${decodeURIComponent(once)}`;
    const repo = repositories.get(repository);
    const toSwagger = (a: ArtifactRecord) => ({
      digest: a.digest,
      manifest_media_type: a.mediaType,
      media_type: a.mediaType,
      pull_count: a.pullCount,
      push_time: new Date(a.pushTime).toISOString(),
      tags: [...repo!.tags]
        .filter(([, d]) => d === a.digest)
        // `immutable` only when asked [src/controller/tag/controller.go Option.WithImmutableStatus].
        .map(([name]) => ({ name, push_time: new Date(repo!.tagPushTimes.get(name)!).toISOString(), ...(url.searchParams.get('with_immutable_status') === 'true' ? { immutable: tagImmutable(repository, name) } : {}) })),
    });
    if (!m[3]) return harborError(res, 404, 'NOT_FOUND', 'no such route');
    if (!m[4]) {
      if (req.method !== 'GET') return harborError(res, 405, 'METHOD_NOT_ALLOWED', 'method not allowed');
      if (!repo) return harborError(res, 404, 'NOT_FOUND', `repository ${repository} not found`);
      // Accessories are left out of the listing [src/pkg/artifact/dao/dao.go setAccessoryQuery].
      return page(res, url, listingOrder(repo).map(toSwagger));
    }
    const reference = decodeURIComponent(m[4]);
    const digest = reference.startsWith('sha256:') ? (repo?.artifacts.has(reference) ? reference : undefined) : repo?.tags.get(reference);
    if (!digest || !repo) return harborError(res, 404, 'NOT_FOUND', `artifact ${repository}:${reference} not found`);
    if (!m[5]) {
      // One artifact by tag or digest, accessories too [src/server/v2.0/handler/artifact.go GetArtifact].
      if (req.method !== 'GET') return harborError(res, 405, 'METHOD_NOT_ALLOWED', 'method not allowed');
      const served = double.servedDigests.get(`${repository}:${reference}`);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...toSwagger(repo.artifacts.get(digest)!), ...(served ? { digest: served } : {}) }));
      return;
    }
    if (!m[6] && req.method === 'POST') {
      // CreateTag needs tag create (developer and up) [src/server/v2.0/handler/artifact.go CreateTag].
      if (!actions.includes('push') && !actions.includes('*')) return harborError(res, 403, 'FORBIDDEN', 'forbidden');
      let name: unknown;
      try {
        name = (JSON.parse(body.toString('utf8')) as { name?: unknown }).name;
      } catch {
        return harborError(res, 400, 'BAD_REQUEST', 'invalid JSON');
      }
      if (typeof name !== 'string') return harborError(res, 400, 'BAD_REQUEST', 'tag name required');
      if (repo.tags.has(name)) return harborError(res, 409, 'CONFLICT', `tag ${name} already exists`);
      ensureTag(repo, name, digest);
      res.writeHead(201).end();
      return;
    }
    if (m[6] && req.method === 'DELETE') {
      // DeleteTag needs tag delete: maintainer and up [rbac_role.go ResourceTag ActionDelete].
      if (!actions.includes('delete') && !actions.includes('*')) return harborError(res, 403, 'FORBIDDEN', 'forbidden');
      const tag = decodeURIComponent(m[6]);
      if (repo.tags.get(tag) !== digest) return harborError(res, 404, 'NOT_FOUND', `tag ${tag} not found`);
      // [src/controller/tag/controller.go Delete]
      if (tagImmutable(repository, tag)) return harborError(res, 412, 'PRECONDITION', `the tag ${tag} configured as immutable, cannot be deleted`);
      deleteTag(repo, tag);
      events.push(`tag-deleted:${repository}:${tag}`);
      res.writeHead(200).end();
      return;
    }
    harborError(res, 405, 'METHOD_NOT_ALLOWED', 'method not allowed');
  }

  /**
   * Harbor's pagination: `page`, `page_size` (default 10, at most 100: more is refused by the swagger validation,
   * 422 [api/v2.0/swagger.yaml pageSize; src/lib/http/error.go apiError]), `X-Total-Count`.
   */
  function page(res: http.ServerResponse, url: URL, items: unknown[]): void {
    const size = Number(url.searchParams.get('page_size') ?? 10);
    if (size > 100) return harborError(res, 422, 'UNPROCESSABLE_ENTITY', 'page_size in query should be less than or equal to 100');
    const number = Number(url.searchParams.get('page') ?? 1);
    res.writeHead(200, { 'content-type': 'application/json', 'x-total-count': String(items.length) });
    res.end(JSON.stringify(items.slice((number - 1) * size, number * size)));
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as { port: number }).port}`;

  // Object storage: a static server for the registry's storage directory, on its own origin. distribution's
  // `redirect` middleware (registry/storage/driver/middleware/redirect) makes the registry answer blob GET and
  // HEAD with 307 to it, as S3, GCS and Azure do with Harbor's default `storage.redirect`.
  let storage: http.Server | undefined;
  let storageUrl: string | undefined;
  let storageRoot = '';
  if (options.redirectStorage) {
    storage = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://storage');
      const file = path.join(storageRoot, path.normalize(decodeURIComponent(url.pathname)));
      let size: number | undefined;
      try {
        size = file.startsWith(storageRoot) ? statSync(file).size : undefined;
      } catch {
        size = undefined;
      }
      // Logged before answering: the client may hold the bytes before this server's 'finish' event runs.
      storageLog.push({ method: req.method ?? '', path: url.pathname, query: url.search, status: size === undefined ? 404 : 200, user: undefined, bytesIn: 0, authorization: req.headers.authorization !== undefined });
      if (size === undefined) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
      if (req.method === 'HEAD') return void res.end();
      createReadStream(file).pipe(res);
    });
    await new Promise<void>((resolve) => storage!.listen(0, '127.0.0.1', resolve));
    storageUrl = `http://127.0.0.1:${(storage.address() as { port: number }).port}`;
  }
  const registry = await startRegistry({
    schema1: true,
    allowManifestUrls: true,
    token: { realm: `http://${host}/service/token`, service: SERVICE, issuer: ISSUER, certFile },
    ...(storageUrl ? { redirectBaseUrl: storageUrl } : {}),
  });
  storageRoot = registry.root;
  registryPort = registry.port;
  Object.assign(double, { host, url: `http://${host}`, registry });
  double.stop = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (storage) {
      storage.closeAllConnections();
      await new Promise<void>((resolve) => storage!.close(() => resolve()));
    }
    await registry.stop();
  };
  atEnd(() => double.stop());
  return double;
}

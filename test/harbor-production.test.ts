/**
 * What a production Harbor 2.13–2.16 does to a migration, through the built CLI against the Harbor double:
 * policy projects (412 on manifest GET/HEAD), object-storage redirects (307 from the real registry's `redirect`
 * middleware), tags held in Harbor's database (2.15+ rewrites a PUT by tag), real roles, transient API failures,
 * and accessories hidden from the artifact listing.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Agent } from 'undici';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildDemoStorage, type BuiltTree } from '../fixtures/trees.js';
import { RegistryClient } from '../src/registry/client.js';
import { parseEndpoint } from '../src/registry/endpoint.js';
import { fileRangeReader } from '../src/storage/file-range.js';
import { runCli } from './helpers/cli.js';
import { startHarborDouble, type HarborDouble, type HarborUser } from './helpers/harbor-double.js';
import { buildLegacyTree, type LegacyTree } from './helpers/legacy-tree.js';
import { tempDir } from './helpers/tmp.js';

const PASSWORD = 'Pr0d-harbor-Kq2';
const USERS: Record<string, HarborUser> = {
  admin: { password: PASSWORD, admin: true },
  dev: { password: PASSWORD, roles: { team: 'developer' } },
  maint: { password: PASSWORD, roles: { team: 'maintainer' } },
  guest: { password: PASSWORD, roles: { team: 'guest' } },
  'robot$team+ci': { password: PASSWORD, robot: 'project', roles: { team: 'developer' } },
  'robot$sync': { password: PASSWORD, robot: 'system' },
  'robot$creator': { password: PASSWORD, robot: 'system', canCreateProject: true },
};

interface Report {
  images: Array<{ source: string; destination: string | null; digest: string | null; status: string; reason: string | null; convertedTo: string | null }>;
  summary: { verified: number; failed: number; projectsCreated: string[] };
}

async function push(harbor: HarborDouble, root: string, user: string, extra: string[] = []): Promise<{ exitCode: number; stdout: string; stderr: string; report: Report }> {
  const file = path.join(tempDir(), 'report.json');
  const result = await runCli(['push', root, '--to', harbor.host, '--username', user, '--password-stdin', '--report', file, '--retries', '3', ...extra], { input: `${PASSWORD}\n` });
  let report: Report = { images: [], summary: { verified: 0, failed: 0, projectsCreated: [] } };
  try {
    report = JSON.parse(readFileSync(file, 'utf8')) as Report;
  } catch {
    // no report: the run stopped before any work
  }
  return { ...result, report };
}

/** Adds tag `name` to a source repository, pointing at a manifest it already holds (a new tag on known layers). */
function addSourceTag(root: string, repository: string, name: string, digest: string): void {
  const dir = path.join(root, 'docker/registry/v2/repositories', repository, '_manifests/tags', name);
  mkdirSync(path.join(dir, 'current'), { recursive: true });
  mkdirSync(path.join(dir, 'index/sha256', digest.slice(7)), { recursive: true });
  writeFileSync(path.join(dir, 'current/link'), digest);
  writeFileSync(path.join(dir, 'index/sha256', digest.slice(7), 'link'), digest);
}

const since = (harbor: HarborDouble, mark: number) => harbor.log.slice(mark);
const manifestGets = (log: HarborDouble['log']) => log.filter((r) => r.method === 'GET' && /^\/v2\/.+\/manifests\//.test(r.path)).length;
const manifestHeads = (log: HarborDouble['log']) => log.filter((r) => r.method === 'HEAD' && /^\/v2\/.+\/manifests\//.test(r.path)).length;
/** Upload sessions opened: a POST answered 202 (a mount answers 201, and a mount that falls back opens one too). */
const uploadSessions = (log: HarborDouble['log']) => log.filter((r) => r.method === 'POST' && r.path.endsWith('/blobs/uploads/') && r.status === 202).length;

describe('a policy project on object storage (prevent vulnerable images; blobs served by 307)', () => {
  let tree: BuiltTree;
  beforeAll(() => {
    tree = buildDemoStorage(path.join(tempDir(), 'registry'));
  });

  it.each(['oci', 'skopeo'])('--via %s: every tag verified through the API, no manifest GET; a second run opens no upload', async (via) => {
    const harbor = await startHarborDouble({ users: USERS, projects: [{ name: 'library', preventVulnerable: true, public: false }], redirectStorage: true });
    const first = await push(harbor, tree.root, 'admin', ['--via', via]);
    expect(first.exitCode, first.stderr).toBe(0);
    for (const expected of tree.tags) {
      const row = first.report.images.find((i) => i.source === `${expected.repository}:${expected.tag}`)!;
      expect(row).toMatchObject({ status: 'verified', digest: expected.digest });
    }
    // The policy project's images are verified through the API, and the report names the policy.
    const alpine = first.report.images.find((i) => i.source === 'library/alpine:3.19')!;
    expect(alpine.reason).toMatch(/verified through Harbor's API: project policy "prevent vulnerable images/);
    // The double really refuses pulls there: a manifest GET answers 412.
    expect(harbor.tagDigest('library/alpine', '3.19')).toBe(alpine.digest);
    const pull = await fetch(`${harbor.url}/v2/library/alpine/manifests/3.19`, { headers: { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` } });
    expect(pull.status).toBe(412);
    expect(((await pull.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('PROJECTPOLICYVIOLATION');
    // Nothing regmigrate did recorded a pull (that fetch above is the double's own check, after the run).
    expect(manifestGets(harbor.log.slice(0, -1))).toBe(0);
    expect(manifestHeads(harbor.log)).toBe(0);
    expect(uploadSessions(harbor.log)).toBeGreaterThan(0);

    const mark = harbor.log.length;
    const second = await push(harbor, tree.root, 'admin', ['--via', via]);
    expect(second.exitCode, second.stderr).toBe(0);
    expect(second.report.images.every((i) => i.status === 'skipped-existing')).toBe(true);
    expect(uploadSessions(since(harbor, mark))).toBe(0);
    expect(manifestGets(since(harbor, mark))).toBe(0);
    expect(since(harbor, mark).filter((r) => r.method === 'PUT')).toEqual([]);
  });

  it('a new tag on an image Harbor holds: no blob request at all, nothing uploaded again', async () => {
    const harbor = await startHarborDouble({ users: USERS, projects: [], redirectStorage: true });
    const copy = buildDemoStorage(path.join(tempDir(), 'registry'));
    expect((await push(harbor, copy.root, 'admin')).exitCode).toBe(0);
    const alpine = copy.tags.find((t) => t.repository === 'library/alpine')!;
    addSourceTag(copy.root, 'library/alpine', 'edge', alpine.digest!);
    const mark = harbor.log.length;
    const again = await push(harbor, copy.root, 'admin');
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.report.images.find((i) => i.source === 'library/alpine:edge')).toMatchObject({ status: 'verified', digest: alpine.digest });
    const log = since(harbor, mark);
    // The image is there under another tag: its blobs are held, so not one is asked about, mounted or sent.
    expect(log.filter((r) => r.path.includes('/blobs/'))).toEqual([]);
    expect(uploadSessions(log)).toBe(0);
    expect(log.filter((r) => r.method === 'PATCH' || (r.method === 'PUT' && r.path.includes('/blobs/')))).toEqual([]);
  });

  it('a blob read follows the redirect to the object store without sending Authorization there', async () => {
    const harbor = await startHarborDouble({ users: USERS, projects: [], redirectStorage: true });
    const copy = buildDemoStorage(path.join(tempDir(), 'registry'));
    expect((await push(harbor, copy.root, 'admin')).exitCode).toBe(0);
    const dispatcher = new Agent();
    const client = new RegistryClient({ endpoint: parseEndpoint(harbor.host), credentials: { username: 'admin', password: PASSWORD, source: 'test' }, dispatcher });
    await client.ping();
    const alpine = copy.tags.find((t) => t.repository === 'library/alpine')!.digest!;
    const manifest = JSON.parse(readFileSync(path.join(copy.v2, 'blobs/sha256', alpine.slice(7, 9), alpine.slice(7), 'data'), 'utf8')) as { config: { digest: string } };
    // A blob HEAD the object store answers with a 307 counts as present (`diff` asks this way).
    const mark = harbor.log.length;
    expect(await client.hasBlob('library/alpine', manifest.config.digest)).toBe(true);
    expect(since(harbor, mark).filter((r) => r.method === 'HEAD' && r.path.includes('/blobs/')).map((r) => r.status)).toEqual([307]);
    const bytes = await client.readBlob('library/alpine', manifest.config.digest);
    expect(`sha256:${createHash('sha256').update(bytes).digest('hex')}`).toBe(manifest.config.digest);
    expect(harbor.storageLog.filter((r) => r.method === 'GET').length).toBeGreaterThan(0);
    expect(harbor.storageLog.every((r) => !r.authorization)).toBe(true);
    await dispatcher.close();
  });
});

describe('schema1 on Harbor: tags live in the database', () => {
  let tree: LegacyTree;
  beforeAll(async () => {
    tree = await buildLegacyTree();
  });

  it.each(['2.15', '2.13'] as const)('Harbor %s: kept with its own digest (PUT by payload digest, tagged through the API)', async (version) => {
    const harbor = await startHarborDouble({ users: USERS, projects: [], version });
    // One passing 500 on the first schema1 manifest PUT: retried, never a reason to convert.
    harbor.faults.push({ method: 'PUT', path: /^\/v2\/legacy\/.+\/manifests\//, status: 500, times: 1 });
    const result = await push(harbor, tree.root, 'admin', ['--include', 'legacy/**']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(Object.keys(tree.schema1).length).toBeGreaterThan(0);
    for (const [ref, digest] of Object.entries(tree.schema1)) {
      expect(result.report.images.find((i) => i.source === ref)).toMatchObject({ status: 'verified', digest, convertedTo: null });
      const [repository, tag] = ref.split(':') as [string, string];
      expect(harbor.tagDigest(repository, tag)).toBe(digest);
    }
    expect(harbor.faults[0]!.times).toBe(0);
  });
});

describe('accounts and roles', () => {
  let tree: BuiltTree;
  beforeAll(() => {
    tree = buildDemoStorage(path.join(tempDir(), 'registry'));
  });

  it('a developer pushes into its project; a guest is refused before any upload, by project and role', async () => {
    const harbor = await startHarborDouble({ users: USERS, projects: [{ name: 'team', public: false }] });
    const dev = await push(harbor, tree.root, 'dev', ['--include', 'team/**']);
    expect(dev.exitCode, dev.stderr).toBe(0);
    expect(dev.report.summary.verified).toBe(2);

    const mark = harbor.log.length;
    const guest = await push(harbor, tree.root, 'guest', ['--include', 'team/**']);
    expect(guest.exitCode).toBe(3);
    expect(guest.stderr).toMatch(/guest cannot push to project "team": its role there is guest \(pull only; pushing needs developer or higher\)/);
    expect(since(harbor, mark).filter((r) => r.method === 'POST' || r.method === 'PUT' || r.method === 'PATCH')).toEqual([]);
  });

  it('one refused project does not stop the others: the report lists its images as failed', async () => {
    const harbor = await startHarborDouble({ users: USERS, projects: [{ name: 'team', public: false }] });
    // Any logged-in user may create projects by default, and becomes their admin; in "team" it is only a guest.
    const result = await push(harbor, tree.root, 'guest');
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/error: guest cannot push to project "team": its role there is guest/);
    expect(result.report.summary.projectsCreated.sort()).toEqual(['infra', 'library']);
    for (const row of result.report.images) {
      if (row.destination!.startsWith('team/')) expect(row).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^permission: guest cannot push to project "team"/) });
      else expect(row.status).toBe('verified');
    }
  });

  it('a project robot pushes into its own project; creating others is refused with the reason and both robot forms', async () => {
    const harbor = await startHarborDouble({ users: USERS, projects: [{ name: 'team', public: false }] });
    const result = await push(harbor, tree.root, 'robot$team+ci');
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/cannot create project "infra": robot\$team\+ci is a project robot, and only system-level robots may create projects/);
    expect(result.stderr).toMatch(/system robot account \(robot\$<name>\).*project robots \(robot\$<project>\+<name>\)/);
    expect(result.report.images.filter((i) => i.destination!.startsWith('team/')).every((i) => i.status === 'verified')).toBe(true);
    expect(harbor.projects.has('infra')).toBe(false);
    expect(result.stderr).not.toContain(PASSWORD);
  });

  it('a logged-in user who is not an admin creates the missing projects (Harbor answers 403, not 404, to a GET of a project that does not exist)', async () => {
    const harbor = await startHarborDouble({ users: USERS, projects: [] });
    const result = await push(harbor, tree.root, 'dev');
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.report.summary.projectsCreated.sort()).toEqual(['infra', 'library', 'team']);
    expect(result.report.images.every((i) => i.status === 'verified')).toBe(true);
  });

  it('a system robot creates projects only with the permission; "adminonly" is named as the reason', async () => {
    const plain = await startHarborDouble({ users: USERS, projects: [] });
    const denied = await push(plain, tree.root, 'robot$sync');
    expect(denied.exitCode).toBe(3);
    expect(denied.stderr).toMatch(/cannot create project "infra": Harbor refused \(403/);
    const allowed = await push(plain, tree.root, 'robot$creator');
    expect(allowed.exitCode, allowed.stderr).toBe(0);
    expect(allowed.report.summary.projectsCreated.sort()).toEqual(['infra', 'library', 'team']);

    const adminOnly = await startHarborDouble({ users: USERS, projects: [], projectCreationRestriction: 'adminonly' });
    const dev = await push(adminOnly, tree.root, 'dev');
    expect(dev.exitCode).toBe(3);
    expect(dev.stderr).toMatch(/cannot create project "infra": this Harbor lets only administrators create projects \(project_creation_restriction: adminonly\)/);
  });

  it('sync --delete-extra --yes: a developer is told it may not delete; a maintainer deletes the tag', async () => {
    const harbor = await startHarborDouble({ users: USERS, projects: [{ name: 'team', public: false }] });
    const copy = buildDemoStorage(path.join(tempDir(), 'registry'));
    const state = path.join(tempDir(), 'state.json');
    const sync = (user: string) =>
      runCli(['sync', copy.root, '--to', harbor.host, '--username', user, '--password-stdin', '--include', 'team/**', '--state', state, '--delete-extra', '--yes'], { input: `${PASSWORD}\n` });
    expect((await sync('dev')).exitCode).toBe(0);
    // The source tag goes away: the journal says the destination tag came from it.
    rmSync(path.join(copy.v2, 'repositories/team/api/_manifests/tags/1.1'), { recursive: true });
    const refused = await sync('dev');
    expect(refused.exitCode).toBe(1);
    expect(refused.stdout).toMatch(/could not delete team\/api:1\.1 .*dev may not delete tags in project "team": deleting needs the maintainer role or higher/);
    expect(harbor.tagDigest('team/api', '1.1')).toBeDefined();
    const done = await sync('maint');
    expect(done.exitCode, done.stdout + done.stderr).toBe(0);
    expect(done.stdout).toMatch(/^deleted team\/api:1\.1 /m);
    expect(harbor.tagDigest('team/api', '1.1')).toBeUndefined();
    expect(harbor.tagDigest('team/api', '1.0')).toBeDefined();
  });

  it('a 401 to a fresh token says "no permission" with what was granted, not "credentials refused"', async () => {
    const harbor = await startHarborDouble({ users: USERS, projects: [{ name: 'team', public: false }] });
    const dispatcher = new Agent();
    const client = new RegistryClient({ endpoint: parseEndpoint(harbor.host), credentials: { username: 'guest', password: PASSWORD, source: 'test' }, dispatcher, retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 } });
    await client.ping();
    const file = path.join(tempDir(), 'blob');
    writeFileSync(file, 'x');
    const blob = fileRangeReader(file, 0, 1, 'sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881');
    await expect(client.uploadBlob({ repository: 'team/api', blob })).rejects.toThrow(
      /401: no push permission on repository team\/api: the account was granted only pull/,
    );
    await dispatcher.close();
  });
});

describe('Harbor API hiccups and quota', () => {
  it('survives a 502 on systeminfo and on project creation; a systeminfo that keeps failing is exit 3, not "a plain registry"', async () => {
    const tree = buildDemoStorage(path.join(tempDir(), 'registry'));
    const harbor = await startHarborDouble({ users: USERS, projects: [] });
    harbor.faults.push({ method: 'GET', path: /^\/api\/v2\.0\/systeminfo$/, status: 502, times: 2 }, { method: 'POST', path: /^\/api\/v2\.0\/projects$/, status: 502, times: 1 });
    const result = await push(harbor, tree.root, 'admin');
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/Harbor v2\.15\.0-double/);
    expect(result.report.summary.projectsCreated.sort()).toEqual(['infra', 'library', 'team']);
    expect(harbor.faults.every((f) => f.times === 0)).toBe(true);

    harbor.faults.push({ method: 'GET', path: /^\/api\/v2\.0\/systeminfo$/, status: 502, times: 100 });
    const down = await push(harbor, tree.root, 'admin');
    expect(down.exitCode).toBe(3);
    expect(down.stderr).toMatch(/systeminfo did not answer: GET \/api\/v2\.0\/systeminfo: 502/);
  });

  it('a 429 from the Harbor API (its artifact listing) halves the request budget as a registry 429 does', async () => {
    const tree = buildDemoStorage(path.join(tempDir(), 'registry'));
    const harbor = await startHarborDouble({ users: USERS, projects: ['library', 'team', 'infra'] });
    harbor.faults.push({ method: 'GET', path: /^\/api\/v2\.0\/projects\/.+\/artifacts$/, status: 429, code: 'TOO_MANY_REQUESTS', message: 'rate limited', times: 3 });
    const result = await push(harbor, tree.root, 'admin', ['--log-format', 'json']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(harbor.faults.every((f) => f.times === 0)).toBe(true);
    expect(result.report.summary.verified).toBe(tree.tags.length);
    const halvings = result.stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.event === 'budget');
    expect(halvings.length).toBeGreaterThan(0);
    expect(halvings[0]).toMatchObject({ budget: 'requests', reason: 'HTTP 429' });
  });

  it('a mount refused with 403 DENIED (quota) fails the image without a full upload behind it', async () => {
    const tree = buildDemoStorage(path.join(tempDir(), 'registry'));
    const harbor = await startHarborDouble({ users: USERS, projects: [] });
    harbor.faults.push({ method: 'POST', path: /\/blobs\/uploads\/$/, query: /mount=/, status: 403, code: 'DENIED', message: 'adding 24.0 KiB of storage resource, which when updated to current usage of 10.0 MiB will exceed the configured upper limit of 10.0 MiB.', times: 100 });
    const result = await push(harbor, tree.root, 'admin');
    expect(result.exitCode).toBe(1);
    const failed = result.report.images.filter((i) => i.status === 'failed');
    expect(failed.length).toBeGreaterThan(0);
    for (const row of failed) expect(row.reason).toMatch(/quota-exceeded: .*403 DENIED.*exceed the configured upper limit/);
    // Every upload session opened was for a blob's one upload at its home: none followed a refused mount.
    const uploaded = Number(/uploaded [\d.]+ \S+ \((\d+) blobs\)/.exec(result.stderr)![1]);
    expect(uploadSessions(harbor.log)).toBe(uploaded);
  });
});

describe('diff and sync see accessories', () => {
  it('a migrated cosign signature and referrer are "same"', async () => {
    const tree = await buildLegacyTree();
    const harbor = await startHarborDouble({ users: USERS, projects: [] });
    expect((await push(harbor, tree.root, 'admin', ['--include', 'signed/**'])).exitCode).toBe(0);
    // The double hides them from the artifact listing, as Harbor does.
    const listing = (await (
      await fetch(`${harbor.url}/api/v2.0/projects/signed/repositories/app/artifacts?page_size=100`, { headers: { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` } })
    ).json()) as Array<{ tags: Array<{ name: string }> }>;
    const listed = listing.flatMap((a) => a.tags.map((t) => t.name));
    expect(listed.some((t) => t.endsWith('.sig'))).toBe(false);
    expect(listed).not.toContain('sbom');
    const diff = await runCli(['diff', tree.root, '--to', harbor.host, '--username', 'admin', '--password-stdin', '--include', 'signed/**', '--output', 'json'], { input: `${PASSWORD}\n` });
    expect(diff.exitCode, diff.stdout + diff.stderr).toBe(0);
    const doc = JSON.parse(diff.stdout) as { tags: Array<{ destination: string; status: string }> };
    const sig = doc.tags.find((t) => /\.sig$/.test(t.destination))!;
    expect(sig.status).toBe('same');
    expect(doc.tags.find((t) => t.destination === 'signed/app:sbom')!.status).toBe('same');
    expect(doc.tags.every((t) => t.status === 'same')).toBe(true);
  });
});

describe('the double refuses what Harbor refuses', () => {
  it('page_size over 100 is a 422; anonymous systeminfo has no version; an expired token gets Basic realm="harbor"', async () => {
    // The double's clock stands still until the test moves it: the token ends exactly 1 s after it was issued.
    let now = Date.now();
    const harbor = await startHarborDouble({ users: USERS, projects: [{ name: 'library', public: false }], tokenLifetime: 1, clock: () => now });
    const basic = { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` };
    expect((await fetch(`${harbor.url}/api/v2.0/projects?page_size=101`, { headers: basic })).status).toBe(422);
    const anonymous = (await (await fetch(`${harbor.url}/api/v2.0/systeminfo`)).json()) as Record<string, unknown>;
    expect(anonymous.auth_mode).toBe('db_auth');
    expect(anonymous.harbor_version).toBeUndefined();
    const token = ((await (await fetch(`${harbor.url}/service/token?service=harbor-registry&scope=repository:library/x:pull`, { headers: basic })).json()) as { token: string }).token;
    expect((await fetch(`${harbor.url}/v2/library/x/tags/list`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(404);
    now += 999;
    expect((await fetch(`${harbor.url}/v2/library/x/tags/list`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(404);
    now += 1;
    const expired = await fetch(`${harbor.url}/v2/library/x/tags/list`, { headers: { authorization: `Bearer ${token}` } });
    expect(expired.status).toBe(401);
    expect(expired.headers.get('www-authenticate')).toBe('Basic realm="harbor"');
    const missing = await fetch(`${harbor.url}/v2/nope/x/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toBe('');
  });
});

describe('verification through the artifact API', () => {
  it('an artifact whose digest is not the one pushed fails that image, naming the digest Harbor reports', async () => {
    const harbor = await startHarborDouble({ users: USERS, projects: [] });
    const wrong = `sha256:${createHash('sha256').update('not what was pushed').digest('hex')}`;
    harbor.servedDigests.set('team/api:1.0', wrong);
    const tree = buildDemoStorage(path.join(tempDir('regmigrate-src-'), 'registry'));
    const { exitCode, report } = await push(harbor, tree.root, 'admin');
    expect(exitCode).toBe(1);
    const row = report.images.find((i) => i.source === 'team/api:1.0')!;
    expect(row).toMatchObject({ status: 'failed', reason: `verification: the destination serves digest ${wrong}` });
    // What was pushed is there all the same: only the report of it is wrong, and only that image fails.
    expect(harbor.tagDigest('team/api', '1.0')).toBe(row.digest);
    expect(report.images.filter((i) => i.status === 'verified')).toHaveLength(report.images.length - 1);
  });
});

/**
 * Harbor's policies met before the first byte, through the built CLI against the Harbor double: storage quotas,
 * proxy-cache projects, immutable tags, the account's permissions, the old push order (retention), and untagged
 * images kept through garbage collection.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addImage, makeLayer, StorageBuilder, type BuiltImage } from '../fixtures/builder.js';
import { runCli } from './helpers/cli.js';
import { startHarborDouble, type HarborDouble, type HarborUser } from './helpers/harbor-double.js';
import { tempDir } from './helpers/tmp.js';

const PASSWORD = 'P0licy-harbor-Zr8';
const USERS: Record<string, HarborUser> = {
  admin: { password: PASSWORD, admin: true },
  'robot$sync': { password: PASSWORD, robot: 'system' },
  dev: { password: PASSWORD, roles: { team: 'developer' } },
  'robot$team+ci': { password: PASSWORD, robot: 'project', roles: { team: 'developer' } },
  // A robot given push (and what reading artifacts takes) but not pull: mounts from its projects are refused.
  'robot$pushonly': { password: PASSWORD, robot: 'system', policies: ['repository:push', 'tag:create', 'tag:list', 'artifact:read', 'artifact:list'] },
};

interface ReportImage {
  source: string;
  destination: string | null;
  digest: string | null;
  status: string;
  reason: string | null;
}
interface Report {
  images: ReportImage[];
}

async function push(harbor: HarborDouble, root: string, user: string, extra: string[] = [], env: Record<string, string> = {}): Promise<{ exitCode: number; stdout: string; stderr: string; report: Report; reportText: string }> {
  const file = path.join(tempDir(), 'report.json');
  const result = await runCli(['push', root, '--to', harbor.host, '--username', user, '--password-stdin', '--report', file, '--retries', '2', ...extra], { input: `${PASSWORD}\n`, env });
  let report: Report = { images: [] };
  let reportText = '';
  try {
    reportText = readFileSync(file, 'utf8');
    report = JSON.parse(reportText) as Report;
  } catch {
    // no report (a dry run, or a run stopped before any work)
  }
  return { ...result, report, reportText };
}

/** One image of `layerBytes` (incompressible) in `repo`, tagged `tag`. */
function image(builder: StorageBuilder, repo: string, tag: string, layerBytes: number, label = `${repo}:${tag}`): BuiltImage {
  const built = addImage(builder, repo, { format: 'oci', layers: [makeLayer(`${label}.bin`, label, layerBytes)], label });
  builder.tag(repo, tag, built.digest);
  return built;
}

/** Requests that write blobs or manifests into a project (uploads, mounts, manifest PUTs). */
const writesTo = (harbor: HarborDouble, project: string) => harbor.log.filter((r) => r.path.startsWith(`/v2/${project}/`) && (r.method === 'POST' || r.method === 'PUT' || r.method === 'PATCH'));

describe('Harbor storage quotas, known before the first byte', () => {
  it('refuses a project whose quota is too small before any upload, says so once with the numbers, and pushes the others', async () => {
    const root = path.join(tempDir(), 'registry');
    const builder = new StorageBuilder(root);
    image(builder, 'big/app', 'v1', 150_000);
    image(builder, 'big/app', 'v2', 150_000);
    image(builder, 'fits/app', 'v1', 50_000);
    image(builder, 'open/app', 'v1', 50_000);
    const harbor = await startHarborDouble({
      users: USERS,
      projects: [
        { name: 'big', storageLimit: 200_000 },
        { name: 'fits', storageLimit: 1_000_000, storageUsed: 100_000 },
        { name: 'open' },
      ],
    });

    const dry = await push(harbor, root, 'admin', ['--dry-run']);
    // The dry run shows each project's charge beside its quota; the over-quota project's images cannot go.
    expect(dry.stdout).toMatch(/Storage quota/);
    expect(dry.stdout).toMatch(/big\s+29\d KiB\s+195 KiB\s+0 B\s+195 KiB\s+refused: over quota/);
    expect(dry.stdout).toMatch(/fits\s+49\.\d KiB\s+977 KiB\s+97\.7 KiB\s+879 KiB\s+fits/);
    expect(dry.stdout).toMatch(/open\s+49\.\d KiB\s+unlimited/);
    expect(dry.stdout).toMatch(/big\/app:v1 .*fail: quota-exceeded: project "big" needs/);
    expect(dry.exitCode).toBe(1);
    const plan = JSON.parse((await push(harbor, root, 'admin', ['--dry-run', '--output', 'json'])).stdout) as { quotas: Array<{ project: string; charge: number }> };
    const planned = Object.fromEntries(plan.quotas.filter((q) => q.project !== 'big').map((q) => [q.project, q.charge]));

    const result = await push(harbor, root, 'admin');
    expect(result.exitCode, result.stderr).toBe(1);
    // One line for the project: its name, what it needs, what is left, and what to do.
    const lines = result.stderr.split('\n').filter((l) => l.includes('project "big" needs'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/project "big" needs 29\d KiB more storage and its quota has 195 KiB left \(limit 195 KiB, 0 B used\); raise the project's quota in Harbor .* or leave its repositories out \(--exclude\)/);
    // Not one blob or manifest request went to the refused project.
    expect(writesTo(harbor, 'big')).toEqual([]);
    const byDestination = new Map(result.report.images.map((i) => [i.destination, i]));
    expect(byDestination.get('big/app:v1')).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^quota-exceeded: project "big" needs/) });
    expect(byDestination.get('big/app:v2')?.status).toBe('failed');
    expect(byDestination.get('fits/app:v1')?.status).toBe('verified');
    expect(byDestination.get('open/app:v1')?.status).toBe('verified');
    // What Harbor charged is what the dry run said the run would add, to the byte.
    const charged = { fits: harbor.projects.get('fits')!.storageUsed - 100_000, open: harbor.projects.get('open')!.storageUsed };
    expect(planned).toEqual(charged);
  });

  it('pushes a project whose charge fills its quota to the byte (Harbor refuses only what goes over the limit)', async () => {
    const root = path.join(tempDir(), 'registry');
    const builder = new StorageBuilder(root);
    image(builder, 'exact/app', 'v1', 40_000);
    // What the run will charge, from a dry run against an unlimited project.
    const open = await startHarborDouble({ users: USERS, projects: [{ name: 'exact' }] });
    const plan = JSON.parse((await push(open, root, 'admin', ['--dry-run', '--output', 'json'])).stdout) as { quotas: Array<{ project: string; charge: number }> };
    const charge = plan.quotas.find((q) => q.project === 'exact')!.charge;
    expect(charge).toBeGreaterThan(40_000);
    const harbor = await startHarborDouble({ users: USERS, projects: [{ name: 'exact', storageLimit: charge }] });
    const result = await push(harbor, root, 'admin');
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.report.images.map((i) => [i.destination, i.status])).toEqual([['exact/app:v1', 'verified']]);
    // Harbor charged exactly that: the quota is full, not over.
    expect(harbor.projects.get('exact')!.storageUsed).toBe(charge);
  });

  it("counts what the run's earlier batches charged: a project that fits batch by batch but not in all is refused before the batch that overflows it", async () => {
    const root = path.join(tempDir(), 'registry');
    const builder = new StorageBuilder(root);
    image(builder, 'two/a', 'v1', 60_000);
    const second = image(builder, 'two/b', 'v1', 60_000);
    const secondLayer = (JSON.parse(second.manifest.toString('utf8')) as { layers: Array<{ digest: string }> }).layers[0]!.digest;
    // Room for either image alone, not for both.
    const harbor = await startHarborDouble({ users: USERS, projects: [{ name: 'two', storageLimit: 100_000 }] });
    // One repository a batch (a batch never splits a repository): the second is planned after the first has landed.
    const result = await push(harbor, root, 'admin', [], { REGMIGRATE_BATCH_TAGS: '1' });
    expect(result.exitCode, result.stderr).toBe(1);
    const byDestination = new Map(result.report.images.map((i) => [i.destination, i]));
    expect(byDestination.get('two/a:v1')?.status, result.stderr).toBe('verified');
    expect(byDestination.get('two/b:v1')).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^quota-exceeded: project "two" needs .* of it taken by this run's earlier batches\)/) });
    // Refused before its bytes: the second image's layer was never offered to Harbor.
    expect(harbor.log.filter((r) => decodeURIComponent(r.query).includes(secondLayer))).toEqual([]);
  });

  it('names a quota refusal that still comes (the quota not readable beforehand) by Harbor\'s error code, and does not retry it', async () => {
    const root = path.join(tempDir(), 'registry');
    const builder = new StorageBuilder(root);
    const built = image(builder, 'tight/app', 'v1', 20_000);
    const layer = JSON.parse(built.manifest.toString('utf8')) as { config: { size: number }; layers: Array<{ size: number }> };
    // Room for the blobs, not for the manifest: the refusal comes on the manifest PUT.
    const blobs = layer.config.size + layer.layers[0]!.size;
    const harbor = await startHarborDouble({ users: USERS, projects: [{ name: 'tight', storageLimit: blobs + built.manifest.length - 1 }] });
    // A system robot may not read quotas: nothing to check before, Harbor refuses during the push.
    const result = await push(harbor, root, 'robot$sync');
    expect(result.exitCode).toBe(1);
    const row = result.report.images.find((i) => i.destination === 'tight/app:v1')!;
    expect(row).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^quota-exceeded: PUT .*403 DENIED/) });
    expect(harbor.log.filter((r) => r.method === 'PUT' && r.path.includes('/manifests/'))).toHaveLength(1);
  });
});

describe('a Harbor in read-only mode', () => {
  it('is said once before anything is sent (exit 3), not image by image as a quota refusal (the same 403 DENIED); the dry run warns', async () => {
    const root = path.join(tempDir(), 'registry');
    image(new StorageBuilder(root), 'team/app', 'v1', 5_000);
    const harbor = await startHarborDouble({ users: USERS, projects: ['team'], readOnly: true });
    const result = await push(harbor, root, 'admin');
    expect(result.exitCode, result.stderr).toBe(3);
    expect(result.stderr).toContain(`${harbor.host}: Harbor is in read-only mode and refuses every push`);
    expect(result.stderr).not.toMatch(/quota/);
    expect(harbor.log.filter((r) => r.method !== 'GET' && r.method !== 'HEAD')).toEqual([]);
    const dry = await push(harbor, root, 'admin', ['--dry-run']);
    expect(dry.stderr).toContain('warning: ' + `${harbor.host}: Harbor is in read-only mode`);
  });
});

describe('proxy-cache projects and immutable tags, known before the first byte', () => {
  it('refuses a proxy-cache project before any upload, on one line, and pushes the rest', async () => {
    const root = path.join(tempDir(), 'registry');
    const builder = new StorageBuilder(root);
    image(builder, 'hub/nginx', '1.25', 10_000);
    image(builder, 'team/app', 'v1', 10_000);
    const harbor = await startHarborDouble({ users: USERS, projects: [{ name: 'hub', proxyCacheOf: 1 }, 'team'] });
    const dry = await push(harbor, root, 'admin', ['--dry-run']);
    expect(dry.stdout).toMatch(/hub\/nginx:1\.25 .*fail: proxy-cache: project "hub" is a proxy cache project/);
    const result = await push(harbor, root, 'admin');
    expect(result.exitCode).toBe(1);
    expect(result.stderr.split('\n').filter((l) => l.includes('"hub" is a proxy cache project'))).toHaveLength(1);
    expect(writesTo(harbor, 'hub')).toEqual([]);
    const rows = new Map(result.report.images.map((i) => [i.destination, i]));
    expect(rows.get('hub/nginx:1.25')).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^proxy-cache: project "hub" is a proxy cache project: Harbor takes no push into it; map these repositories to another project \(--map\)/) });
    expect(rows.get('team/app:v1')?.status).toBe('verified');
  });

  /** team/app at v1 and v2 pushed to Harbor; then the source moves v1 and adds v3 and latest. */
  async function movedTags(rules: Array<{ tags: string }>): Promise<{ harbor: HarborDouble; root: string; old: BuiltImage; moved: BuiltImage }> {
    const first = path.join(tempDir(), 'registry');
    const before = new StorageBuilder(first);
    const old = image(before, 'team/app', 'v1', 5_000, 'old');
    image(before, 'team/app', 'v2', 5_000, 'two');
    const harbor = await startHarborDouble({ users: USERS, projects: [{ name: 'team', immutableRules: rules }] });
    expect((await push(harbor, first, 'admin')).exitCode).toBe(0);
    const root = path.join(tempDir(), 'registry');
    const after = new StorageBuilder(root);
    const moved = image(after, 'team/app', 'v1', 5_000, 'moved');
    image(after, 'team/app', 'v2', 5_000, 'two');
    image(after, 'team/app', 'v3', 5_000, 'three');
    after.tag('team/app', 'latest', moved.digest);
    return { harbor, root, old, moved };
  }

  const tagPuts = (harbor: HarborDouble, mark: number, tag: string) => harbor.log.slice(mark).filter((r) => r.method === 'PUT' && r.path === `/v2/team/app/manifests/${tag}`);

  it('leaves a tag an immutability rule keeps at another digest alone: `immutable` in plan and report, nothing sent for it, exit 6', async () => {
    const { harbor, root, old } = await movedTags([{ tags: 'v*' }]);
    const dry = await push(harbor, root, 'admin', ['--dry-run']);
    expect(dry.stdout).toMatch(/team\/app:v1 .*immutable: holds [0-9a-f]{12}, kept by immutability rule #1 \(repositories matching "\*\*", tags matching "v\*"\)/);
    expect(dry.exitCode).toBe(6);
    const mark = harbor.log.length;
    const result = await push(harbor, root, 'admin');
    expect(result.exitCode, result.stderr).toBe(6);
    const rows = new Map(result.report.images.map((i) => [i.destination, i]));
    expect(rows.get('team/app:v1')).toMatchObject({ status: 'immutable', reason: expect.stringMatching(new RegExp(`^immutable: the destination tag holds ${old.digest} and immutability rule #1 \\(repositories matching "\\*\\*", tags matching "v\\*"\\) keeps it there`)) });
    expect(rows.get('team/app:v3')?.status).toBe('verified');
    expect(rows.get('team/app:latest')?.status).toBe('verified');
    expect(tagPuts(harbor, mark, 'v1')).toEqual([]);
    expect(harbor.tagDigest('team/app', 'v1')).toBe(old.digest);
    expect(result.stdout).toMatch(/Immutable \(Harbor keeps these tags at another digest\):\n  team\/app:v1: immutable:/);
  });

  it('sync reports the drift as a warning every run and exits 6, not 1; an account that may not read the rules asks Harbor per tag', async () => {
    const { harbor, root } = await movedTags([{ tags: 'v1' }]);
    const state = path.join(tempDir(), 'state.json');
    const sync = () => runCli(['sync', root, '--to', harbor.host, '--username', 'dev', '--password-stdin', '--state', state], { input: `${PASSWORD}\n` });
    for (let run = 0; run < 2; run++) {
      const mark = harbor.log.length;
      const result = await sync();
      expect(result.exitCode, result.stderr).toBe(6);
      expect(result.stdout).toMatch(/^immutable team\/app:v1 -> team\/app:v1: immutable: the destination tag holds sha256:[0-9a-f]{64} and an immutability rule \(this account may not read the project's rules\) keeps it there/m);
      expect(result.stdout).toMatch(/sync: \d+ pushed, \d+ unchanged, 1 immutable, 0 failed/);
      expect(tagPuts(harbor, mark, 'v1')).toEqual([]);
    }
  });

  it("names a 412 that still comes by Harbor's error code: `immutable`, not retried, exit 6", async () => {
    const root = path.join(tempDir(), 'registry');
    const builder = new StorageBuilder(root);
    image(builder, 'team/app', 'v9', 5_000);
    image(builder, 'team/app', 'v8', 5_000);
    const harbor = await startHarborDouble({ users: USERS, projects: ['team'] });
    // A rule added between the check and the push: Harbor answers 412 PRECONDITION, in words the program never reads.
    harbor.faults.push({ method: 'PUT', path: /\/manifests\/v9$/, status: 412, code: 'PRECONDITION', message: 'no', times: 5 });
    const result = await push(harbor, root, 'admin');
    expect(result.exitCode, result.stderr).toBe(6);
    const rows = new Map(result.report.images.map((i) => [i.destination, i]));
    expect(rows.get('team/app:v9')).toMatchObject({ status: 'immutable', reason: expect.stringMatching(/^immutable: PUT .*412 PRECONDITION/) });
    expect(rows.get('team/app:v8')?.status).toBe('verified');
    expect(harbor.log.filter((r) => r.method === 'PUT' && r.path.endsWith('/manifests/v9'))).toHaveLength(1);
  });
});

describe("the account's permissions, known before the first byte", () => {
  /** Two repositories of `team` sharing a base layer (one mounts it from the other), and one of `infra`. */
  function sharedBase(): string {
    const root = path.join(tempDir(), 'registry');
    const builder = new StorageBuilder(root);
    const base = makeLayer('base.bin', 'base', 20_000);
    for (const repo of ['team/a', 'team/b', 'infra/tools']) {
      const built = addImage(builder, repo, { format: 'oci', layers: [base, makeLayer(`${repo}.bin`, repo, 2_000)], label: repo });
      builder.tag(repo, 'v1', built.digest);
    }
    return root;
  }

  it('the dry run names what the account must be allowed in each project and what it lacks; a project robot cannot create projects', async () => {
    const root = sharedBase();
    const harbor = await startHarborDouble({ users: USERS, projects: ['team'] });
    const dry = await push(harbor, root, 'robot$team+ci', ['--dry-run']);
    expect(dry.stdout).toMatch(/Permissions robot\$team\+ci needs:\nPROJECT\s+NEEDS\s+CHECK\n/);
    expect(dry.stdout).toMatch(/^infra\s+create project, push, pull\s+MISSING: create project$/m);
    expect(dry.stdout).toMatch(/^team\s+push, pull\s+ok$/m);
    expect(dry.stdout).toMatch(/infra\/tools:v1 .*fail: permission: cannot create project "infra": robot\$team\+ci is a project robot/);
    expect(harbor.projects.has('infra')).toBe(false);
  });

  it('a robot that may push but not pull is told once per project, before any upload, and nothing is sent', async () => {
    const root = sharedBase();
    const harbor = await startHarborDouble({ users: USERS, projects: [{ name: 'team', public: false }, { name: 'infra', public: false }] });
    const dry = await push(harbor, root, 'robot$pushonly', ['--dry-run']);
    expect(dry.stdout).toMatch(/^infra\s+push, pull\s+MISSING: pull$/m);
    expect(dry.stdout).toMatch(/^team\s+push, pull\s+MISSING: pull$/m);
    const result = await push(harbor, root, 'robot$pushonly');
    expect(result.exitCode).toBe(3);
    for (const project of ['infra', 'team']) {
      // One line per project as it is checked (the closing exit-3 line sums them up).
      expect(result.stderr.split('\n').filter((l) => l.includes(`may push to project "${project}" but not pull`) && l.endsWith('its images are skipped'))).toHaveLength(1);
      expect(writesTo(harbor, project)).toEqual([]);
    }
    expect(harbor.uploadSessions()).toBe(0);
  });

  it('sync --delete-extra --yes says once per project, before any upload, that the account may not delete tags there', async () => {
    const root = path.join(tempDir(), 'registry');
    const builder = new StorageBuilder(root);
    for (const tag of ['v1', 'v2', 'v3']) image(builder, 'team/app', tag, 3_000, tag);
    const harbor = await startHarborDouble({ users: USERS, projects: ['team'] });
    const state = path.join(tempDir(), 'state.json');
    const sync = (extra: string[]) => runCli(['sync', root, '--to', harbor.host, '--username', 'dev', '--password-stdin', '--state', state, ...extra], { input: `${PASSWORD}\n` });
    expect((await sync([])).exitCode).toBe(0);
    // Two tags leave the source, one arrives.
    for (const tag of ['v1', 'v2']) rmSync(path.join(builder.repoDir('team/app'), '_manifests/tags', tag), { recursive: true });
    image(builder, 'team/app', 'v4', 3_000, 'v4');
    const result = await sync(['--delete-extra', '--yes', '--max-delete', '5']);
    const said = result.stderr.split('\n').filter((l) => l.includes('may not delete tags in project'));
    expect(said).toEqual(['regmigrate: warning: dev may not delete tags in project "team": --delete-extra deletes nothing there (deleting tags needs the maintainer role or higher)']);
    expect(result.stdout).toMatch(/^pushed team\/app:v4 /m);
    expect(harbor.tagDigest('team/app', 'v1')).toBeDefined();
  });
});

describe('the old push order, kept for Harbor retention', () => {
  const HOUR = 3_600_000;
  const BASE = Date.parse('2024-03-01T08:00:00Z');

  /** Tags pushed to the source in `order` (oldest first), an hour apart; the oldest the largest, so nothing but the order can make it land first. */
  function pushedInOrder(builder: StorageBuilder, repo: string, order: readonly string[], offset = 0): void {
    order.forEach((tag, i) => {
      image(builder, repo, tag, (order.length - i) * 60_000, `${repo}:${tag}:${offset}`);
      builder.setPushedAt(repo, tag, new Date(BASE + (offset + i) * HOUR));
    });
  }

  const byHarborPushTime = (harbor: HarborDouble, repo: string, tags: readonly string[]) => [...tags].sort((a, b) => harbor.tagPushTime(repo, a)! - harbor.tagPushTime(repo, b)!);

  it("lands each repository's tags in their source push order, so retention keeps the source's newest, with --concurrency 32 and across two batches", async () => {
    const root = path.join(tempDir(), 'registry');
    const builder = new StorageBuilder(root);
    const app = ['rc', 'beta', 'v2', 'alpha', 'v1'];
    const web = ['b', 'c', 'a'];
    pushedInOrder(builder, 'team/app', app);
    pushedInOrder(builder, 'team/web', web);
    const harbor = await startHarborDouble({ users: USERS, projects: ['team'] });
    // Five tags a batch: team/app in the first, team/web in the second.
    const result = await push(harbor, root, 'admin', ['--concurrency', '32', '--log-format', 'json'], { REGMIGRATE_BATCH_TAGS: '5' });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/"event":"planned".*"batch":2,"batches":2/);
    expect(byHarborPushTime(harbor, 'team/app', app)).toEqual(app);
    expect(byHarborPushTime(harbor, 'team/web', web)).toEqual(web);
    // "Retain the most recently pushed 3", as Harbor ranks: the source's three newest.
    expect(harbor.retainMostRecentlyPushed('team/app', 3)).toEqual(['alpha', 'v1', 'v2']);
    expect(harbor.retainMostRecentlyPushed('team/web', 2)).toEqual(['a', 'c']);
    // The report shows each image's source push time beside Harbor's.
    const row = result.report.images.find((i) => i.destination === 'team/app:rc') as ReportImage & { sourcePushedAt: string; destinationPushedAt: string };
    expect(row.sourcePushedAt).toBe(new Date(BASE).toISOString());
    expect(Date.parse(row.destinationPushedAt)).toBe(harbor.tagPushTime('team/app', 'rc'));
    // And so does `report html`, in the row of the image.
    const file = path.join(tempDir(), 'report.json');
    writeFileSync(file, result.reportText);
    const page = await runCli(['report', 'html', file]);
    const html = page.stdout.split('<tr>').find((r) => r.includes('<code>team/app:rc</code></td><td><code>team/app:rc</code>'))!;
    expect(html).toContain(`<td><time datetime="${row.sourcePushedAt}">2024-03-01 08:00:00</time></td><td><time datetime="${row.destinationPushedAt}">`);
  });

  it('takes the push time of a tar of the storage from its headers', async () => {
    const root = path.join(tempDir(), 'registry');
    const builder = new StorageBuilder(root);
    const order = ['d', 'b', 'a', 'c'];
    pushedInOrder(builder, 'team/app', order);
    const tar = path.join(tempDir(), 'registry.tar');
    // GNU tar keeps each file's mtime in its header.
    await execa('tar', ['-cf', tar, '-C', root, 'docker']);
    const harbor = await startHarborDouble({ users: USERS, projects: ['team'] });
    const result = await push(harbor, tar, 'admin', ['--concurrency', '32']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(byHarborPushTime(harbor, 'team/app', order)).toEqual(order);
    expect(harbor.retainMostRecentlyPushed('team/app', 3)).toEqual(['a', 'b', 'c']);
  });

  it('keeps the order with --via skopeo too', async () => {
    const root = path.join(tempDir(), 'registry');
    const builder = new StorageBuilder(root);
    const order = ['c', 'a', 'd', 'b'];
    pushedInOrder(builder, 'team/app', order);
    const harbor = await startHarborDouble({ users: USERS, projects: ['team'] });
    const result = await push(harbor, root, 'admin', ['--via', 'skopeo', '--concurrency', '8']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(byHarborPushTime(harbor, 'team/app', order)).toEqual(order);
  });

  it('sync puts new and moved tags in their source push order too', async () => {
    const root = path.join(tempDir(), 'registry');
    const builder = new StorageBuilder(root);
    pushedInOrder(builder, 'team/app', ['v1', 'v2']);
    const harbor = await startHarborDouble({ users: USERS, projects: ['team'] });
    const state = path.join(tempDir(), 'state.json');
    const sync = () => runCli(['sync', root, '--to', harbor.host, '--username', 'admin', '--password-stdin', '--state', state, '--concurrency', '32'], { input: `${PASSWORD}\n` });
    expect((await sync()).exitCode).toBe(0);
    // Then: v3 is pushed to the source, and after it v1 is moved to a new image (the larger one goes first).
    image(builder, 'team/app', 'v3', 4_000_000, 'v3');
    builder.setPushedAt('team/app', 'v3', new Date(BASE + 5 * HOUR));
    image(builder, 'team/app', 'v1', 10_000, 'v1-moved');
    builder.setPushedAt('team/app', 'v1', new Date(BASE + 6 * HOUR));
    const result = await sync();
    expect(result.exitCode, result.stderr).toBe(0);
    expect(byHarborPushTime(harbor, 'team/app', ['v1', 'v2', 'v3'])).toEqual(['v2', 'v3', 'v1']);
    expect(harbor.retainMostRecentlyPushed('team/app', 2)).toEqual(['v1', 'v3']);
  });
});

describe("untagged images kept through Harbor's garbage collection", () => {
  const OLD = 'old-registry:5000';

  /** `team/keep` and `team/loose`, each with a tagged image and an untagged one (in revisions, no tag points at it). */
  function withUntagged(): { root: string; builder: StorageBuilder; kept: BuiltImage; loose: BuiltImage } {
    const root = path.join(tempDir(), 'registry');
    const builder = new StorageBuilder(root);
    image(builder, 'team/keep', 'v1', 4_000);
    image(builder, 'team/loose', 'v1', 4_000);
    const kept = addImage(builder, 'team/keep', { format: 'oci', layers: [makeLayer('kept.bin', 'kept', 4_000)], label: 'kept' });
    const loose = addImage(builder, 'team/loose', { format: 'oci', layers: [makeLayer('loose.bin', 'loose', 4_000)], label: 'loose' });
    return { root, builder, kept, loose };
  }

  /** podman pulls `ref` from the double, logged in (an authfile, so no password on its command line). */
  async function podmanPull(harbor: HarborDouble, ref: string): Promise<{ exitCode: number; stderr: string }> {
    const dir = tempDir('regmigrate-podman-');
    const authfile = path.join(dir, 'auth.json');
    writeFileSync(authfile, JSON.stringify({ auths: { [harbor.host]: { auth: Buffer.from(`admin:${PASSWORD}`).toString('base64') } } }));
    const result = await execa('podman', ['--storage-driver', 'vfs', '--root', path.join(dir, 'root'), '--runroot', path.join(dir, 'run'), 'pull', '--tls-verify=false', '--authfile', authfile, `${harbor.host}/${ref}`], { reject: false });
    return { exitCode: result.exitCode ?? -1, stderr: String(result.stderr) };
  }

  it('--tag-untagged keeps an untagged image through GC (pull by digest works), one pushed by digest alone is collected, and report references counts only the kept one', async () => {
    const { root, kept, loose } = withUntagged();
    const harbor = await startHarborDouble({ users: USERS, projects: ['team'] });
    const keptTag = `untagged-${kept.digest.slice(7, 19)}`;

    const withTag = await push(harbor, root, 'admin', ['--include', 'team/keep', '--include-untagged', '--tag-untagged', 'untagged-{digest12}']);
    expect(withTag.exitCode, withTag.stderr).toBe(0);
    expect(withTag.stderr).not.toMatch(/garbage collection/);
    expect(withTag.report.images.find((i) => i.source === `team/keep@${kept.digest}`)).toMatchObject({ destination: `team/keep:${keptTag}`, digest: kept.digest, status: 'verified' });
    expect(harbor.tagDigest('team/keep', keptTag)).toBe(kept.digest);

    const byDigest = await push(harbor, root, 'admin', ['--include', 'team/loose', '--include-untagged', '--log-format', 'json']);
    expect(byDigest.exitCode, byDigest.stderr).toBe(0);
    // Said once, before the first image is planned (so before any upload).
    const lines = byDigest.stderr.split('\n');
    const warned = lines.flatMap((l, i) => (l.includes("Harbor's garbage collection deletes such artifacts") ? [i] : []));
    expect(warned).toHaveLength(1);
    expect(lines[warned[0]!]).toContain("--tag-untagged 'untagged-{digest12}'");
    expect(warned[0]!).toBeLessThan(lines.findIndex((l) => l.includes('"event":"planned"')));
    expect(byDigest.report.images.find((i) => i.source === `team/loose@${loose.digest}`)).toMatchObject({ destination: `team/loose@${loose.digest}`, status: 'verified' });

    // Harbor's GC with its defaults (delete_untagged absent: true).
    expect(await harbor.garbageCollect()).toEqual([`team/loose@${loose.digest}`]);
    const keptPull = await podmanPull(harbor, `team/keep@${kept.digest}`);
    expect(keptPull.exitCode, keptPull.stderr).toBe(0);
    expect((await podmanPull(harbor, `team/loose@${loose.digest}`)).exitCode).not.toBe(0);

    // A workload pinned by digest: migrated when the image was kept under a tag, not when GC could take it.
    const dir = tempDir();
    writeFileSync(path.join(dir, 'deploy.yaml'), `image: ${OLD}/team/keep@${kept.digest}\n---\nimage: ${OLD}/team/loose@${loose.digest}\n`);
    const references = async (report: string) => {
      const file = path.join(tempDir(), 'report.json');
      writeFileSync(file, report);
      const result = await runCli(['report', 'references', dir, '--from', file, '--old-host', OLD, '--new-host', 'harbor.example.com', '--output', 'json']);
      expect(result.exitCode, result.stderr).toBeLessThan(2);
      return (JSON.parse(result.stdout) as { references: Array<{ old: string; new: string | null; status: string }> }).references;
    };
    expect(await references(withTag.reportText)).toContainEqual(expect.objectContaining({ old: `${OLD}/team/keep@${kept.digest}`, new: `harbor.example.com/team/keep@${kept.digest}`, status: 'migrated' }));
    expect(await references(byDigest.reportText)).toContainEqual(expect.objectContaining({ old: `${OLD}/team/loose@${loose.digest}`, new: null, status: 'unknown' }));
  });

  it.each([
    [['--tag-untagged', 'untagged-{digest12}'], '--tag-untagged goes with --include-untagged'],
    [['--include-untagged', '--tag-untagged', 'kept'], '--tag-untagged "kept" must hold {digest12} or {digest}'],
    [['--include-untagged', '--tag-untagged', '-{digest}'], '--tag-untagged "-{digest}" does not make a valid tag'],
  ])('refuses %j before any work (exit 2)', async (extra, message) => {
    const result = await runCli(['push', tempDir(), '--to', '127.0.0.1:9', '--dry-run', ...extra]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(message);
  });

  it('the journal records the kept tag under its untagged source: sync --delete-extra never takes it for an extra, and a dry run shows it', async () => {
    const { root, kept } = withUntagged();
    const harbor = await startHarborDouble({ users: USERS, projects: ['team'] });
    const keptTag = `untagged-${kept.digest.slice(7, 19)}`;
    const state = path.join(tempDir(), 'state.json');
    const sync = (extra: string[]) => runCli(['sync', root, '--to', harbor.host, '--username', 'admin', '--password-stdin', '--state', state, '--include', 'team/keep', ...extra], { input: `${PASSWORD}\n` });
    const first = await sync(['--include-untagged', '--tag-untagged', 'untagged-{digest12}']);
    expect(first.exitCode, first.stderr).toBe(0);
    const journal = JSON.parse(readFileSync(state, 'utf8')) as { tags: Record<string, { source: string; digest: string }> };
    expect(journal.tags[`team/keep:${keptTag}`]).toMatchObject({ source: `team/keep@${kept.digest}`, digest: kept.digest });
    for (const extra of [['--include-untagged', '--tag-untagged', 'untagged-{digest12}'], []]) {
      const again = await sync([...extra, '--delete-extra', '--yes', '--max-delete', '5']);
      expect(again.exitCode, again.stderr).toBe(0);
      // Not deleted, not kept back as a gone tag: not a line about it at all.
      expect(again.stdout).not.toContain(keptTag);
      expect(harbor.tagDigest('team/keep', keptTag)).toBe(kept.digest);
    }
    expect(Object.keys((JSON.parse(readFileSync(state, 'utf8')) as { tags: object }).tags)).toContain(`team/keep:${keptTag}`);
    // The dry run names the tag the manifest gets.
    const dry = await push(harbor, root, 'admin', ['--include', 'team/keep', '--include-untagged', '--tag-untagged', 'untagged-{digest12}', '--dry-run']);
    expect(dry.stdout).toContain(`team/keep:${keptTag}`);
  });
});

import { execa } from 'execa';
import { cpSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addImage, makeLayer, StorageBuilder } from '../fixtures/builder.js';
import { buildFaultyStorage } from '../fixtures/trees.js';
import { BIN, DEMO_STORAGE, runCli } from './helpers/cli.js';
import { startHarborDouble } from './helpers/harbor-double.js';
import { startProxy, type ScriptedProxy } from './helpers/proxy.js';
import { startRegistry, type RunningRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';
import { servedDigest, waitFor } from './helpers/observe.js';

interface DiffJson {
  summary: { new: number; changed: number; same: number; extra: number; faulty: number; bytesToUpload: number; blobsToUpload: number };
  tags: Array<{ status: string; source: string | null; destination: string | null; sourceDigest: string | null; destinationDigest: string | null }>;
}

function copyDemo(): string {
  const root = path.join(tempDir('regmigrate-src-'), 'registry');
  cpSync(DEMO_STORAGE, root, { recursive: true });
  return root;
}

/** Points `team/api:1.1` at a new image with one new layer; returns the new digest and the bytes a push needs. */
function changeApi11(root: string): { digest: string; newBytes: number } {
  const b = new StorageBuilder(root);
  const base = makeLayer('etc/os-release', 'NAME="fixture-base"\n', 24 * 1024);
  const layer = makeLayer('srv/app', 'api v1.1 hotfix\n', 6 * 1024);
  const image = addImage(b, 'team/api', { format: 'oci', layers: [base, layer], label: 'api-1.1-hotfix' });
  b.tag('team/api', '1.1', image.digest);
  const configSize = readFileSync(b.blobPath(image.config)).length;
  return { digest: image.digest, newBytes: layer.blob.length + configSize };
}

async function diff(root: string, host: string, extra: string[] = []): Promise<{ exitCode: number; doc: DiffJson }> {
  const result = await runCli(['diff', root, '--to', host, '--output', 'json', ...extra]);
  return { exitCode: result.exitCode, doc: JSON.parse(result.stdout) as DiffJson };
}

/**
 * Each test gets its own registry, proxy, storage copy and journal, so the tests pass in any order (vitest
 * `--sequence.shuffle`): `synced` is the demo storage after one sync, `fresh` before any.
 */
async function fresh(): Promise<{ registry: RunningRegistry; proxy: ScriptedProxy; root: string; state: string }> {
  const registry = await startRegistry();
  const proxy = await startProxy(registry.host);
  return { registry, proxy, root: copyDemo(), state: path.join(tempDir(), 'state.json') };
}

async function synced(): Promise<Awaited<ReturnType<typeof fresh>>> {
  const setup = await fresh();
  const sync = await runCli(['sync', setup.root, '--to', setup.proxy.host, '--state', setup.state]);
  expect(sync.exitCode, sync.stderr).toBe(0);
  setup.proxy.reset();
  return setup;
}

/** Copies `from` to `to` inside the registry, as a CI job pushing straight to the destination would. */
async function pushedByOthers(registry: RunningRegistry, from: string, to: string): Promise<void> {
  await execa('skopeo', ['copy', '--quiet', '--all', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${registry.host}/${from}`, `docker://${registry.host}/${to}`]);
}

describe('diff and sync against a real docker-registry', () => {
  it('diff on an empty destination: everything new, with the bytes a push would send (exit 1)', async () => {
    const { proxy, root } = await fresh();
    const { exitCode, doc } = await diff(root, proxy.host);
    expect(exitCode).toBe(1);
    expect(doc.summary).toMatchObject({ new: 7, changed: 0, same: 0, extra: 0, faulty: 0, blobsToUpload: 18 });
    expect(doc.summary.bytesToUpload).toBeGreaterThan(100 * 1024);
    // Read-only: nothing was written.
    expect(proxy.log.filter((r) => !['GET', 'HEAD'].includes(r.method))).toEqual([]);
  });

  it('sync pushes everything, then diff says all same (exit 0)', async () => {
    const { proxy, root, state } = await fresh();
    const sync = await runCli(['sync', root, '--to', proxy.host, '--state', state]);
    expect(sync.exitCode, sync.stderr).toBe(0);
    expect(sync.stdout).toMatch(/^pushed busybox:1\.36 -> library\/busybox:1\.36 sha256:[0-9a-f]{64}$/m);
    expect(sync.stdout).toMatch(/^sync: 7 pushed, 0 unchanged, 0 failed; uploaded [\d.]+ KiB; /m);
    const { exitCode, doc } = await diff(root, proxy.host);
    expect(exitCode).toBe(0);
    expect(doc.summary).toMatchObject({ new: 0, changed: 0, same: 7, extra: 0, bytesToUpload: 0 });
  });

  it('a changed source tag shows as changed, and sync sends only its new blobs and manifest', async () => {
    const { proxy, root, state } = await synced();
    const { digest, newBytes } = changeApi11(root);
    const { doc } = await diff(root, proxy.host);
    const row = doc.tags.find((t) => t.destination === 'team/api:1.1')!;
    expect(row.status).toBe('changed');
    expect(row.sourceDigest).toBe(digest);
    expect(doc.summary.bytesToUpload).toBe(newBytes);

    proxy.reset();
    const sync = await runCli(['sync', root, '--to', proxy.host, '--state', state]);
    expect(sync.exitCode, sync.stderr).toBe(0);
    expect(sync.stdout).toMatch(/^pushed team\/api:1\.1 -> team\/api:1\.1 /m);
    expect(sync.stdout).toMatch(/^sync: 1 pushed, 6 unchanged, 0 failed/m);
    const uploads = proxy.log.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/'));
    expect(uploads.reduce((sum, r) => sum + r.bytesIn, 0)).toBe(newBytes);
    expect(proxy.log.filter((r) => r.method === 'PUT' && r.path.includes('/manifests/')).map((r) => r.path)).toEqual(['/v2/team/api/manifests/1.1']);
  });

  it('a tag only the destination has shows as extra', async () => {
    const { registry, proxy, root } = await synced();
    await pushedByOthers(registry, 'team/api:1.0', 'team/api:pushed-by-ci');
    const { exitCode, doc } = await diff(root, proxy.host);
    expect(exitCode).toBe(1);
    expect(doc.tags.filter((t) => t.status === 'extra').map((t) => t.destination)).toEqual(['team/api:pushed-by-ci']);
  });

  it('--trust-state skips the destination for tags the journal vouches for', async () => {
    const { proxy, root, state } = await synced();
    const sync = await runCli(['sync', root, '--to', proxy.host, '--state', state, '--trust-state']);
    expect(sync.exitCode, sync.stderr).toBe(0);
    expect(sync.stdout).toMatch(/^sync: 0 pushed, 7 unchanged, 0 failed/m);
    expect(proxy.log.filter((r) => r.path.includes('/manifests/'))).toEqual([]);
    const journal = JSON.parse(readFileSync(state, 'utf8')) as { kind: string; tags: Record<string, { digest: string; source: string }> };
    expect(journal.kind).toBe('regmigrate.sync-state');
    expect(Object.keys(journal.tags).sort()).toHaveLength(7);
  });

  it('--trust-state vouches only for a tag whose link still names the journal digest: a changed tag is read and pushed', async () => {
    const { registry, proxy, root, state } = await synced();
    const { digest } = changeApi11(root);
    const sync = await runCli(['sync', root, '--to', proxy.host, '--state', state, '--trust-state']);
    expect(sync.exitCode, sync.stderr).toBe(0);
    expect(sync.stdout).toMatch(/^pushed team\/api:1\.1 -> team\/api:1\.1 /m);
    expect(sync.stdout).toMatch(/^sync: 1 pushed, 6 unchanged, 0 failed/m);
    expect(await servedDigest(registry.host, 'team/api:1.1')).toBe(digest);
    const journal = JSON.parse(readFileSync(state, 'utf8')) as { tags: Record<string, { digest: string }> };
    expect(journal.tags['team/api:1.1']!.digest).toBe(digest);
  });

  it('--trust-state does not vouch for a tag the journal saw gone from the source: back again, it is checked and pushed', async () => {
    const { registry, proxy, root, state } = await synced();
    const digest = await servedDigest(registry.host, 'team/api:1.0');
    expect(digest).toBeDefined();
    const tagDir = path.join(root, 'docker/registry/v2/repositories/team/api/_manifests/tags/1.0');
    const away = path.join(tempDir(), '1.0');
    renameSync(tagDir, away);
    expect((await runCli(['sync', root, '--to', proxy.host, '--state', state])).exitCode).toBe(0);
    const journal = () => JSON.parse(readFileSync(state, 'utf8')) as { tags: Record<string, { digest: string; goneFromSourceAt: string | null }> };
    expect(journal().tags['team/api:1.0']!.goneFromSourceAt).not.toBeNull();
    // Meanwhile someone deletes it at the destination; then the tag comes back to the source, at the same digest.
    const deleted = await fetch(`${registry.url}/v2/team/api/manifests/${digest}`, { method: 'DELETE' });
    expect(deleted.status).toBe(202);
    renameSync(away, tagDir);
    const sync = await runCli(['sync', root, '--to', proxy.host, '--state', state, '--trust-state']);
    expect(sync.exitCode, sync.stderr).toBe(0);
    expect(sync.stdout).toMatch(/^pushed team\/api:1\.0 -> team\/api:1\.0 /m);
    expect(await servedDigest(registry.host, 'team/api:1.0')).toBe(digest);
    expect(journal().tags['team/api:1.0']!.goneFromSourceAt).toBeNull();
  });

  it('--delete-extra lists tags whose source is gone, and deletes them only with --yes', async () => {
    const { registry, proxy, root, state } = await synced();
    await pushedByOthers(registry, 'team/api:1.0', 'team/api:pushed-by-ci');
    rmSync(path.join(root, 'docker/registry/v2/repositories/team/api/_manifests/tags/1.1'), { recursive: true });
    const plan = await runCli(['sync', root, '--to', proxy.host, '--state', state, '--delete-extra']);
    expect(plan.exitCode, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/^would delete team\/api:1\.1 sha256:[0-9a-f]{64} \(source team\/api:1\.1 is gone\)$/m);
    expect((await runCli(['diff', root, '--to', proxy.host])).stdout).toMatch(/extra\s+-\s+team\/api:1\.1/);
    // The extra tag pushed by someone else is never a candidate: the journal does not know it.
    expect(plan.stdout).not.toContain('pushed-by-ci');
    expect(await tagsOf(registry.url, 'team/api')).toEqual(['1.0', '1.1', 'pushed-by-ci']);
    const apply = await runCli(['sync', root, '--to', proxy.host, '--state', state, '--delete-extra', '--yes']);
    expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toMatch(/^deleted team\/api:1\.1 sha256:[0-9a-f]{64} \(source team\/api:1\.1 is gone\)$/m);
    expect(await tagsOf(registry.url, 'team/api')).toEqual(['1.0', 'pushed-by-ci']);
  });

  it('--delete-extra on a plain registry: a tag whose manifest a staying tag shares is planned and reported as kept, a warning', async () => {
    const { registry, proxy, root, state } = await synced();
    // library/alpine:latest and :3.19 are one manifest. A plain registry deletes a tag only by deleting the manifest,
    // which takes :3.19 too: the plan must not promise it, and --yes must not fail on it run after run.
    rmSync(path.join(root, 'docker/registry/v2/repositories/library/alpine/_manifests/tags/latest'), { recursive: true });
    const kept = /^kept library\/alpine:latest sha256:[0-9a-f]{64} \(source library\/alpine:latest is gone\): tag 3\.19 of the destination shares its manifest and stays; a plain registry deletes a tag only by deleting its manifest, which would delete it too$/m;
    const plan = await runCli(['sync', root, '--to', proxy.host, '--state', state, '--delete-extra']);
    expect(plan.exitCode, plan.stdout + plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(kept);
    expect(plan.stdout).not.toMatch(/would delete library\/alpine/);
    const metrics = path.join(tempDir(), 'sync.prom');
    const apply = await runCli(['sync', root, '--to', proxy.host, '--state', state, '--delete-extra', '--yes', '--metrics-file', metrics, '--log-format', 'json']);
    expect(apply.exitCode, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toMatch(kept);
    expect(apply.stdout).toMatch(/^sync: 0 pushed, 6 unchanged, 0 failed, 0 deleted, 1 kept \(its manifest is shared\); /m);
    expect(apply.stderr.split('\n').filter((l) => l.includes('"tag-kept"')).map((l) => JSON.parse(l) as { level: string; repo: string })).toEqual([expect.objectContaining({ level: 'warn', repo: 'library/alpine:latest' })]);
    expect(readFileSync(metrics, 'utf8')).toMatch(/^regmigrate_tags_kept_total\{command="sync"\} 1$/m);
    expect(await tagsOf(registry.url, 'library/alpine')).toEqual(['3.19', 'latest']);
    // Once :3.19 is gone from the source too, the manifest goes, once, with both tags.
    rmSync(path.join(root, 'docker/registry/v2/repositories/library/alpine/_manifests/tags/3.19'), { recursive: true });
    const both = await runCli(['sync', root, '--to', proxy.host, '--state', state, '--delete-extra']);
    expect(both.exitCode, both.stdout + both.stderr).toBe(0);
    expect(both.stdout.match(/^would delete library\/alpine:\S+/gm)).toEqual(['would delete library/alpine:3.19', 'would delete library/alpine:latest']);
    proxy.reset();
    const gone = await runCli(['sync', root, '--to', proxy.host, '--state', state, '--delete-extra', '--yes']);
    expect(gone.exitCode, gone.stdout + gone.stderr).toBe(0);
    expect(gone.stdout.match(/^deleted library\/alpine:\S+/gm)).toEqual(['deleted library/alpine:3.19', 'deleted library/alpine:latest']);
    expect(proxy.log.filter((r) => r.method === 'DELETE').map((r) => r.path)).toEqual([expect.stringMatching(/^\/v2\/library\/alpine\/manifests\/sha256:[0-9a-f]{64}$/)]);
    expect(await tagsOf(registry.url, 'library/alpine')).toEqual([]);
  });
});

async function tagsOf(url: string, repository: string): Promise<string[]> {
  const res = await fetch(`${url}/v2/${repository}/tags/list`);
  if (res.status !== 200) return [];
  return (((await res.json()) as { tags: string[] | null }).tags ?? []).sort();
}

describe('sync as a cron job', () => {
  it('prints plain progress lines when not on a terminal, one line per failure, and only failures with --quiet, as push does', async () => {
    const tree = buildFaultyStorage(path.join(tempDir(), 'registry'));
    const registry = await startRegistry();
    const loud = await runCli(['sync', tree.root, '--to', registry.host, '--state', path.join(tempDir(), 'state.json')], { env: { REGMIGRATE_NO_PROGRESS: '' } });
    expect(loud.stderr).toMatch(/^plan: \d+ images to push, 0 already there, up to [\d.]+ KiB to upload$/m);
    expect(loud.stderr).toMatch(/^failed: broken\/rot:v1 → broken\/rot:v1: corrupt-blob: /m);
    const registry2 = await startRegistry();
    const quiet = await runCli(['sync', tree.root, '--to', registry2.host, '--state', path.join(tempDir(), 'state.json'), '--quiet']);
    expect(quiet.stderr).not.toMatch(/^plan:/m);
    expect(quiet.stderr).toMatch(/^failed: broken\/rot:v1/m);
  });

  it('a second sync while one runs exits 4 with "locked"; --wait-lock waits for it', async () => {
    const registry = await startRegistry();
    const root = copyDemo();
    const state = path.join(tempDir(), 'state.json');
    // The destination answers nothing until the test lets it: the first sync holds the lock as long as needed.
    let open = (): void => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const delayed = await startProxy(registry.host);
    delayed.script = () => ({ kind: 'forward', after: gate });
    const first = runCli(['sync', root, '--to', delayed.host, '--state', state]);
    await waitFor(() => existsSync(`${state}.lock`), 60_000);
    const second = await runCli(['sync', root, '--to', delayed.host, '--state', state, '--wait-lock', '0']);
    expect(second.exitCode, second.stderr).toBe(4); // --wait-lock 0, as in the config example of docs/selection.md: do not wait
    expect(second.stderr).toMatch(/^regmigrate: locked: another sync \(pid \d+ on .*\) holds .*state\.json\.lock$/m);
    const waiting = runCli(['sync', root, '--to', delayed.host, '--state', state, '--wait-lock', '60']);
    open();
    const third = await waiting;
    expect((await first).exitCode).toBe(0);
    expect(third.exitCode, third.stderr).toBe(0);
    expect(third.stdout).toMatch(/^sync: 0 pushed, 7 unchanged/m);
    expect(existsSync(`${state}.lock`)).toBe(false);
  });

  it('takes over a stale lock left by a dead process', async () => {
    const registry = await startRegistry();
    const state = path.join(tempDir(), 'state.json');
    const dead = (await execa('sh', ['-c', 'echo $$'])).stdout.trim();
    writeFileSync(`${state}.lock`, JSON.stringify({ pid: Number(dead), hostname: hostname(), startedAt: '2020-01-01T00:00:00Z' }));
    const result = await runCli(['sync', DEMO_STORAGE, '--to', registry.host, '--state', state]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(existsSync(`${state}.lock`)).toBe(false);
  });

  it('a sync killed mid-run is completed by the next one without re-sending finished blobs', async () => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    const root = copyDemo();
    const state = path.join(tempDir(), 'state.json');
    const uploaded = (): string[] =>
      proxy.log.filter((r) => r.method === 'PUT' && r.status === 201 && r.path.includes('/blobs/uploads/')).map((r) => new URLSearchParams(r.query).get('digest')!);
    // The first four blob uploads land; every later one is held at the proxy and never reaches the registry: the
    // run is killed with exactly four blobs landed, however fast or slow the machine.
    const never = new Promise<void>(() => undefined);
    proxy.script = (req) => (req.method === 'PUT' && req.url.pathname.includes('/blobs/uploads/') && req.seen >= 4 ? { kind: 'forward', after: never } : { kind: 'forward' });
    const child = execa(BIN, ['sync', root, '--to', proxy.host, '--state', state, '--concurrency', '1'], { reject: false });
    await waitFor(() => uploaded().length === 4);
    child.kill('SIGKILL');
    await child;
    const firstRun = uploaded();
    expect(firstRun).toHaveLength(4);
    expect(existsSync(`${state}.lock`)).toBe(true);
    proxy.reset();
    // The killed run's lock is stale now: the next run takes it over and finishes the job.
    const next = await runCli(['sync', root, '--to', proxy.host, '--state', state]);
    expect(next.exitCode, next.stderr).toBe(0);
    const secondRun = uploaded();
    expect(secondRun.filter((d) => firstRun.includes(d))).toEqual([]);
    expect(firstRun.length + secondRun.length).toBe(18);
    expect((await runCli(['diff', root, '--to', registry.host])).exitCode).toBe(0);
  });
});

describe('diff and sync against the Harbor double', () => {
  it('diff sees new, then same after a sync that creates the projects; extra tags in its projects', async () => {
    const harbor = await startHarborDouble({ users: { admin: { password: 'Sync-pass-1', admin: true } }, projects: [] });
    const auth = { env: { REGMIGRATE_USERNAME: 'admin', REGMIGRATE_PASSWORD: 'Sync-pass-1' } };
    const before = await runCli(['diff', DEMO_STORAGE, '--to', harbor.host, '--output', 'json'], auth);
    expect(before.exitCode, before.stderr).toBe(1);
    expect((JSON.parse(before.stdout) as DiffJson).summary).toMatchObject({ new: 7, same: 0 });
    const root = copyDemo();
    const state = path.join(tempDir(), 'state.json');
    const sync = await runCli(['sync', root, '--to', harbor.host, '--state', state], auth);
    expect(sync.exitCode, sync.stderr).toBe(0);
    expect([...harbor.projects.keys()].sort()).toEqual(['infra', 'library', 'team']);
    const after = await runCli(['diff', root, '--to', harbor.host, '--output', 'json'], auth);
    expect(after.exitCode, after.stdout).toBe(0);
    const doc = JSON.parse(after.stdout) as DiffJson;
    expect(doc.summary).toMatchObject({ new: 0, changed: 0, same: 7, extra: 0 });
    // The nested repository came back through the double-encoded artifacts route.
    expect(doc.tags.find((t) => t.destination === 'infra/tools/kubectl:1.29')!.destinationDigest).toMatch(/^sha256:/);
    expect(harbor.log.some((r) => r.path.includes('/repositories/tools%252Fkubectl/artifacts'))).toBe(true);

    // A tag pushed straight to Harbor is extra; a tag gone from the source is deleted through Harbor's API with --yes.
    await execa('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--src-tls-verify=false', '--src-creds', 'admin:Sync-pass-1', '--dest-creds', 'admin:Sync-pass-1', `docker://${harbor.host}/team/api:1.0`, `docker://${harbor.host}/team/api:from-ci`]);
    rmSync(path.join(root, 'docker/registry/v2/repositories/team/api/_manifests/tags/1.1'), { recursive: true });
    const extra = JSON.parse((await runCli(['diff', root, '--to', harbor.host, '--output', 'json'], auth)).stdout) as DiffJson;
    expect(extra.tags.filter((t) => t.status === 'extra').map((t) => t.destination).sort()).toEqual(['team/api:1.1', 'team/api:from-ci']);
    const removed = await runCli(['sync', root, '--to', harbor.host, '--state', state, '--delete-extra', '--yes'], auth);
    expect(removed.exitCode, removed.stdout + removed.stderr).toBe(0);
    expect(removed.stdout).toMatch(/^deleted team\/api:1\.1 sha256:[0-9a-f]{64} \(source team\/api:1\.1 is gone\)$/m);
    expect(harbor.events).toContain('tag-deleted:team/api:1.1');
    const final = JSON.parse((await runCli(['diff', root, '--to', harbor.host, '--output', 'json'], auth)).stdout) as DiffJson;
    expect(final.tags.filter((t) => t.status === 'extra').map((t) => t.destination)).toEqual(['team/api:from-ci']);
  });
});

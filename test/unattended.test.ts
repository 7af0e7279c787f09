/**
 * The unattended sync: it never deletes by mistake, never wedges on a lock, never loses its results at the end, and
 * never lets two sources fight over one destination tag. Each test first reproduces a failure that was possible
 * before, through the built CLI against a real docker-registry (or the Harbor double).
 */
import { execa, execaSync } from 'execa';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addCollidingBusybox, buildDemoStorage, type BuiltTree } from '../fixtures/trees.js';
import { BIN, PROJECT, runCli } from './helpers/cli.js';
import { splitRef } from '../src/inventory/types.js';
import { startHarborDouble } from './helpers/harbor-double.js';
import { openUp, runAsNobody } from './helpers/nobody.js';
import { sourceLinkState } from '../src/sync/sync.js';
import { openStorage } from '../src/storage/open.js';
import { servedDigest, waitFor } from './helpers/observe.js';
import { startProxy } from './helpers/proxy.js';
import { startRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

function demo(): BuiltTree {
  return buildDemoStorage(path.join(tempDir('regmigrate-src-'), 'registry'));
}

async function catalogTags(url: string, repository: string): Promise<string[]> {
  const res = await fetch(`${url}/v2/${repository}/tags/list`);
  if (res.status !== 200) return [];
  return ((await res.json()) as { tags: string[] | null }).tags ?? [];
}

const tagsDir = (tree: BuiltTree, repository: string) => path.join(tree.v2, 'repositories', repository, '_manifests', 'tags');

/**
 * A demo storage synced once into a fresh registry (through a scripted proxy, which forwards everything until a test
 * says otherwise), and the sync command (with --delete-extra --yes) to run again.
 */
async function syncedTree() {
  const registry = await startRegistry();
  const proxy = await startProxy(registry.host);
  const tree = demo();
  const state = path.join(tempDir(), 'state.json');
  const args = (...extra: string[]) => ['sync', tree.root, '--to', proxy.host, '--state', state, '--delete-extra', '--yes', ...extra];
  const sync = (...extra: string[]) => runCli(args(...extra));
  expect((await sync()).exitCode).toBe(0);
  return { registry, proxy, tree, state, args, sync };
}

/**
 * A demo storage synced once by `nobody` into a fresh registry, and the sync command (with --delete-extra --yes)
 * to run again as nobody: mode 000 on a file or directory binds only a user who is not root.
 */
async function syncedAsNobody() {
  const tree = demo();
  openUp(tree.root);
  const work = tempDir('regmigrate-nobody-sync-');
  openUp(work);
  chmodSync(work, 0o777);
  const registry = await startRegistry();
  const state = path.join(work, 'state.json');
  const args = ['sync', tree.root, '--to', registry.host, '--state', state, '--delete-extra', '--yes'];
  expect((await runAsNobody(args)).exitCode).toBe(0);
  return { tree, registry, state, args };
}

interface Journal {
  tags: Record<string, { source: string; digest: string; goneFromSourceAt: string | null }>;
}
const readJournal = (file: string): Journal => JSON.parse(readFileSync(file, 'utf8')) as Journal;

describe('deleting only what is really gone', () => {
  it('an unreadable tags/ directory is a fault in scan, and never makes its tags "gone"', async () => {
    const { registry, tree, state, sync } = await syncedTree();
    // tags/ stops being readable (ENOTDIR here; EACCES, EIO or ESTALE on a real host): before, readdir errors
    // became an empty list and both team/api tags were deleted with exit 0.
    rmSync(tagsDir(tree, 'team/api'), { recursive: true });
    writeFileSync(tagsDir(tree, 'team/api'), 'not a directory');
    const scan = await runCli(['scan', tree.root]);
    expect(scan.exitCode).toBe(1);
    expect(scan.stdout).toMatch(/unreadable: .*repositories\/team\/api\/_manifests\/tags \(ENOTDIR\): the tags of team\/api could not be listed/);
    const json = JSON.parse((await runCli(['scan', tree.root, '--output', 'json'])).stdout) as { readFaults: Array<{ prefix: string; code: string }>; summary: { faults: { unreadable: number } } };
    expect(json.readFaults).toEqual([expect.objectContaining({ prefix: 'team/api', code: 'ENOTDIR' })]);
    expect(json.summary.faults.unreadable).toBe(1);

    const result = await sync();
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/failed team\/api: unreadable: /);
    // Not a candidate at all: no line about deleting a team/api tag (planned, done, refused or left alone), and a
    // summary without a deletion count (it has one whenever any tag was considered).
    expect(result.stdout).not.toMatch(/^(would delete|deleted|could not delete|not deleted|left alone|kept) team\/api:/m);
    expect(result.stdout).toMatch(/^sync: 0 pushed, 5 unchanged, 1 failed; uploaded /m);
    expect((await catalogTags(registry.url, 'team/api')).sort()).toEqual(['1.0', '1.1']);
    const journal = JSON.parse(readFileSync(state, 'utf8')) as { tags: Record<string, { goneFromSourceAt: string | null }> };
    expect(journal.tags['team/api:1.0']!.goneFromSourceAt).toBeNull();
  });

  it('a tags/ directory this user may not list (EACCES) is a fault, never an empty list: its tags are not "gone"', async () => {
    const { tree, registry, state, args } = await syncedAsNobody();
    chmodSync(tagsDir(tree, 'team/api'), 0o000);
    const scan = await runAsNobody(['scan', tree.root]);
    expect(scan.exitCode).toBe(1);
    expect(scan.stdout).toMatch(/unreadable: .*repositories\/team\/api\/_manifests\/tags \(EACCES\): the tags of team\/api could not be listed/);
    const result = await runAsNobody(args);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).not.toMatch(/^(would delete|deleted) team\/api:/m);
    expect((await catalogTags(registry.url, 'team/api')).sort()).toEqual(['1.0', '1.1']);
    expect(readJournal(state).tags['team/api:1.0']!.goneFromSourceAt).toBeNull();
  });

  it('a namespace directory this user may not list (EACCES) is a fault of the walk: the repositories under it are not "gone"', async () => {
    const { tree, registry, state, args } = await syncedAsNobody();
    chmodSync(path.join(tree.v2, 'repositories', 'infra'), 0o000);
    const scan = await runAsNobody(['scan', tree.root]);
    expect(scan.exitCode).toBe(1);
    expect(scan.stdout).toMatch(/unreadable: .*repositories\/infra \(EACCES\): the repositories under infra could not be listed/);
    const result = await runAsNobody(args);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/^no tag is taken for gone: the source was not read whole \(1 unreadable directory\)/m);
    expect(result.stdout).not.toMatch(/^(would delete|deleted) infra\//m);
    expect(await catalogTags(registry.url, 'infra/tools')).toEqual(['latest']);
    expect(readJournal(state).tags['infra/tools:latest']!.goneFromSourceAt).toBeNull();
  });

  it('a tag link the walk cannot read withholds every deletion of the run, not only its own', async () => {
    const { tree, registry, args } = await syncedAsNobody();
    rmSync(path.join(tagsDir(tree, 'team/api'), '1.0'), { recursive: true });
    chmodSync(path.join(tagsDir(tree, 'busybox'), '1.36', 'current', 'link'), 0o000);
    const result = await runAsNobody(args);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/^no tag is taken for gone: the source was not read whole \(1 unreadable tag\)/m);
    expect(result.stdout).not.toMatch(/^deleted /m);
    expect((await catalogTags(registry.url, 'team/api')).sort()).toEqual(['1.0', '1.1']);
  });

  it('a source tag turned faulty is still in the source: never a candidate, and it stays in the journal', async () => {
    const { registry, tree, state, sync } = await syncedTree();
    // Its link now holds garbage: the tag is there, faulty (invalid-link), not gone.
    writeFileSync(path.join(tagsDir(tree, 'team/api'), '1.1', 'current', 'link'), 'not a digest');
    const result = await sync();
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/team\/api:1\.1/);
    expect(result.stdout).not.toMatch(/^(would delete|deleted|could not delete|not deleted|left alone|kept) team\/api:1\.1/m);
    expect(readJournal(state).tags['team/api:1.1']).toMatchObject({ source: 'team/api:1.1', goneFromSourceAt: null });
    expect((await catalogTags(registry.url, 'team/api')).sort()).toEqual(['1.0', '1.1']);
  });

  it('--max-delete refuses a run that would delete more, and says so', async () => {
    const { registry, proxy, tree, state, sync } = await syncedTree();
    rmSync(tagsDir(tree, 'team/api'), { recursive: true });
    rmSync(path.join(tree.v2, 'repositories/busybox'), { recursive: true });
    // The dry run says that --yes would refuse, and what would allow it.
    const dry = await runCli(['sync', tree.root, '--to', proxy.host, '--state', state, '--delete-extra', '--max-delete', '2']);
    expect(dry.exitCode, dry.stdout + dry.stderr).toBe(0);
    expect(dry.stdout.match(/^would delete /gm)).toHaveLength(3);
    expect(dry.stdout).toMatch(/^--yes would refuse: 3 tags to delete, more than --max-delete 2; check the source, then give --max-delete 3 to allow it$/m);
    expect(dry.stdout).toMatch(/^sync: 0 pushed, \d+ unchanged, 0 failed, 0 deleted, 3 would be deleted \(--yes would refuse: over --max-delete 2\); /m);
    const refused = await sync('--max-delete', '2');
    expect(refused.exitCode).toBe(1);
    // Each tag is listed once; the refusal is said once; the summary counts the tags it kept.
    expect(refused.stdout).toMatch(/^not deleted team\/api:1\.0 sha256:[0-9a-f]{64} \(source team\/api:1\.0 is gone\): over --max-delete 2$/m);
    expect(refused.stdout.match(/^not deleted /gm)).toHaveLength(3);
    expect(refused.stdout.match(/this run would delete 3 tags, more than --max-delete 2; check the source, then give --max-delete 3 to allow it/g)).toHaveLength(1);
    expect(refused.stdout).toMatch(/^sync: 0 pushed, \d+ unchanged, 0 failed, 0 deleted, 3 not deleted: over --max-delete 2; /m);
    expect((await catalogTags(registry.url, 'team/api')).sort()).toEqual(['1.0', '1.1']);
    const allowed = await sync('--max-delete', '3');
    expect(allowed.exitCode, allowed.stdout).toBe(0);
    expect(allowed.stdout.match(/^deleted /gm)).toHaveLength(3);
  });

  it('after a change of --shard, repositories of the other shards are not "gone"', async () => {
    const registry = await startRegistry();
    const tree = demo();
    const state = path.join(tempDir(), 'state.json');
    expect((await runCli(['sync', tree.root, '--to', registry.host, '--state', state])).exitCode).toBe(0);
    const before = (await catalogTags(registry.url, 'team/api')).length + (await catalogTags(registry.url, 'library/alpine')).length;
    for (const k of ['0/3', '1/3', '2/3']) {
      const result = await runCli(['sync', tree.root, '--to', registry.host, '--state', state, '--shard', k, '--delete-extra', '--yes']);
      expect(result.exitCode, result.stdout).toBe(0);
      expect(result.stdout).not.toMatch(/delete/);
    }
    expect((await catalogTags(registry.url, 'team/api')).length + (await catalogTags(registry.url, 'library/alpine')).length).toBe(before);
  });

  it.each([
    ['absent', { state: 'absent' }, (dir: string) => rmSync(dir, { recursive: true })],
    ['back', { state: 'present' }, () => undefined],
    ['a file where the tag directory was', { state: 'unknown', reason: expect.stringMatching(/1\.1\/current\/link is not there: a directory above it is a file$/) }, (dir: string) => (rmSync(dir, { recursive: true }), writeFileSync(dir, 'x'))],
  ] as const)('right before a delete the source link is read again: %s (only ENOENT proves "gone")', async (_, expected, change) => {
    const tree = demo();
    const dir = path.join(tagsDir(tree, 'team/api'), '1.1');
    change(dir);
    expect(await sourceLinkState(await openStorage(tree.v2), 'team/api:1.1')).toEqual(expected);
  });
});

describe('deleting only what is still gone right before the delete', () => {
  it('a source link that turns unreadable after the walk (ENOTDIR here; EACCES, ESTALE on a real host) is left alone', async () => {
    const { registry, proxy, tree, state, sync } = await syncedTree();
    const repository = path.join(tree.v2, 'repositories/team/api');
    rmSync(repository, { recursive: true });
    // The walk finds team/api gone (ENOENT), so both its tags are candidates. When the deletion plan first asks the
    // destination about team/api (after the link of the first candidate was looked at again), the place turns
    // unreadable: a file where the directory was.
    let turned = false;
    proxy.script = (req) => {
      if (!turned && req.url.pathname.startsWith('/v2/team/api/')) {
        turned = true;
        writeFileSync(repository, 'not a directory');
      }
      return { kind: 'forward' };
    };
    const result = await sync();
    expect(turned).toBe(true);
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^deleted team\/api:1\.0 sha256:[0-9a-f]{64} \(source team\/api:1\.0 is gone\)$/m);
    expect(result.stdout).toMatch(/^left alone team\/api:1\.1 sha256:[0-9a-f]{64} \(source team\/api:1\.1 is gone\): the source link is not known to be gone: \S+\/team\/api\/_manifests\/tags\/1\.1\/current\/link is not there: a directory above it is a file$/m);
    expect(await catalogTags(registry.url, 'team/api')).toEqual(['1.1']);
    expect(Object.keys(readJournal(state).tags)).not.toContain('team/api:1.0');
  });

  it('a destination tag someone re-pointed since regmigrate pushed it is left alone when its source goes', async () => {
    const { registry, tree, state, sync } = await syncedTree();
    // Another image is pushed to team/api:1.1 on the destination, one no other tag of team/api points at.
    await execa('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${registry.host}/library/alpine:3.19`, `docker://${registry.host}/team/api:1.1`]);
    const theirs = await servedDigest(registry.host, 'team/api:1.1');
    expect(theirs).toMatch(/^sha256:/);
    expect(theirs).not.toBe(readJournal(state).tags['team/api:1.1']!.digest);
    rmSync(path.join(tagsDir(tree, 'team/api'), '1.1'), { recursive: true });
    const result = await sync();
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^left alone team/api:1\\.1 sha256:[0-9a-f]{64} \\(source team/api:1\\.1 is gone\\): now points at ${theirs}$`, 'm'));
    expect(result.stdout).not.toMatch(/^deleted /m);
    expect(await servedDigest(registry.host, 'team/api:1.1')).toBe(theirs);
    // Not ours any more: out of the journal, so no later run deletes it either.
    expect(Object.keys(readJournal(state).tags)).not.toContain('team/api:1.1');
  });

  it('sync --state --delete-extra --yes stopped by SIGINT after a source tag vanished deletes nothing and keeps the journal', async () => {
    const { registry, proxy, tree, state, args } = await syncedTree();
    rmSync(path.join(tagsDir(tree, 'team/api'), '1.1'), { recursive: true });
    const before = readJournal(state);
    // The destination holds the run's first question about what it holds until the signal has been heard.
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let asked = false;
    proxy.script = (req) => {
      if (!req.url.pathname.includes('/manifests/') && !req.url.pathname.endsWith('/tags/list')) return { kind: 'forward' };
      asked = true;
      return { kind: 'forward', after: held };
    };
    const child = execa(BIN, args(), { reject: false, env: { REGMIGRATE_NO_PROGRESS: '1' } });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    await waitFor(() => asked);
    child.kill('SIGINT');
    await waitFor(() => stderr.includes('SIGINT: '));
    release();
    const result = await child;
    expect(result.exitCode, stderr).toBe(130);
    expect(String(result.stdout)).not.toMatch(/delete/);
    expect(proxy.log.filter((r) => r.method === 'DELETE')).toEqual([]);
    expect((await catalogTags(registry.url, 'team/api')).sort()).toEqual(['1.0', '1.1']);
    // Every entry stays, and the vanished tag is not even marked gone: an interrupted run read too little to say.
    const after = readJournal(state);
    expect(Object.keys(after.tags).sort()).toEqual(Object.keys(before.tags).sort());
    expect(after.tags['team/api:1.1']).toEqual(before.tags['team/api:1.1']);
  });
});

/** Sets a lock's mtime (its heartbeat) `seconds` back: a holder silent that long, without waiting for it. */
function backdate(file: string, seconds: number): void {
  const then = new Date(Date.now() - seconds * 1000);
  utimesSync(file, then, then);
}

describe('a lease, not a pid file', () => {
  /** A tiny program that takes the lease with the real acquireLock, holds it, and logs enter/leave with times. */
  function leaseScript(dir: string): string {
    const file = path.join(dir, 'hold.mjs');
    writeFileSync(
      file,
      `import { acquireLock } from ${JSON.stringify(path.join(PROJECT, 'dist/src/util/lock.js'))};
import { appendFileSync } from 'node:fs';
const [lock, log, hold, stale] = process.argv.slice(2);
const lease = await acquireLock(lock, { waitSeconds: 30, staleSeconds: Number(stale), hostname: process.env.FAKE_HOST });
appendFileSync(log, 'enter ' + process.pid + ' ' + Date.now() + '\\n');
await new Promise((r) => setTimeout(r, Number(hold)));
appendFileSync(log, 'leave ' + process.pid + ' ' + Date.now() + '\\n');
lease.release();
`,
    );
    return file;
  }

  it('processes racing to start (on a stale lock, too) never hold it together', async () => {
    const dir = tempDir();
    const script = leaseScript(dir);
    const lock = path.join(dir, 'sync.lock');
    const log = path.join(dir, 'log');
    // A stale lock from a pod long gone: every racer sees it and tries to take it over at once.
    writeFileSync(lock, JSON.stringify({ pid: 1, hostname: 'old-pod-7f9c', startedAt: '2020-01-01T00:00:00Z', token: 'x' }));
    utimesSync(lock, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
    const racers = Array.from({ length: 6 }, (_, i) => execa(process.execPath, [script, lock, log, '150', '60'], { env: { FAKE_HOST: `pod-${i}` } }));
    await Promise.all(racers);
    const events = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' '));
    expect(events).toHaveLength(12);
    // Strictly alternating enter/leave of the same process: never two holders at once.
    for (let i = 0; i < events.length; i += 2) {
      expect(events[i]![0]).toBe('enter');
      expect(events[i + 1]![0]).toBe('leave');
      expect(events[i + 1]![1]).toBe(events[i]![1]);
    }
    expect(existsSync(lock)).toBe(false);
  });

  it('a holder SIGKILLed "on another host" is taken over once its heartbeat is older than --lock-stale', async () => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    proxy.script = () => ({ kind: 'forward', delayMs: 200 });
    const tree = demo();
    const state = path.join(tempDir(), 'state.json');
    // A lease of 300 s: no run of this test outlives it by accident, however slow the machine; the heartbeat is aged
    // by setting the lock's mtime back, not by waiting.
    const args = ['sync', tree.root, '--to', proxy.host, '--state', state, '--lock-stale', '300'];
    const holder = execa(BIN, args, { reject: false, env: { REGMIGRATE_HOSTNAME: 'pod-a-5d8f', REGMIGRATE_NO_PROGRESS: '1' } });
    await waitFor(() => existsSync(`${state}.lock`) && proxy.log.length > 2);
    holder.kill('SIGKILL');
    await holder;
    expect(JSON.parse(readFileSync(`${state}.lock`, 'utf8')).hostname).toBe('pod-a-5d8f');
    proxy.script = () => ({ kind: 'forward' });
    // A new pod, a new hostname, the same pid 1 for all we know: at once it is still locked, and still with a
    // heartbeat 240 s old...
    const early = await runCli(args, { env: { REGMIGRATE_HOSTNAME: 'pod-b-91c2' } });
    expect(early.exitCode).toBe(4);
    expect(early.stderr).toMatch(/locked: another sync \(pid \d+ on pod-a-5d8f/);
    backdate(`${state}.lock`, 240);
    const aging = await runCli(args, { env: { REGMIGRATE_HOSTNAME: 'pod-b-91c2' } });
    expect(aging.exitCode).toBe(4);
    expect(aging.stderr).toMatch(/locked: another sync \(pid \d+ on pod-a-5d8f.*heartbeat 2\d\d s ago/);
    // ...and once the heartbeat is older than the lease, taken over.
    backdate(`${state}.lock`, 301);
    const later = await runCli(args, { env: { REGMIGRATE_HOSTNAME: 'pod-b-91c2' } });
    expect(later.exitCode, later.stderr).toBe(0);
    expect(later.stderr).toMatch(/took over the lock .* from pid \d+ on pod-a-5d8f.*: no heartbeat for 3\d\d s/);
    expect(existsSync(`${state}.lock`)).toBe(false);
  });

  it('a live holder keeps its lease by heartbeat; an empty lock is not taken for free until it is stale', async () => {
    const registry = await startRegistry();
    const tree = demo();
    const state = path.join(tempDir(), 'state.json');
    writeFileSync(`${state}.lock`, '');
    const args = ['sync', tree.root, '--to', registry.host, '--state', state, '--lock-stale', '300'];
    const fresh = await runCli(args);
    expect(fresh.exitCode).toBe(4);
    expect(fresh.stderr).toMatch(/an owner not written yet/);
    backdate(`${state}.lock`, 301);
    const stale = await runCli(args);
    expect(stale.exitCode, stale.stderr).toBe(0);
    expect(stale.stderr).toMatch(/took over the lock .* from an unreadable owner/);

    // A run that lives longer than the lease keeps it: its heartbeat renews the file.
    const dir = tempDir();
    const script = leaseScript(dir);
    const lock = path.join(dir, 'l.lock');
    const log = path.join(dir, 'log');
    // Held 2.5 leases long; the heartbeat (every half second here) must miss four beats in a row to lose it.
    const long = execa(process.execPath, [script, lock, log, '5000', '2']);
    await waitFor(() => existsSync(log));
    const waiter = await execa(process.execPath, [script, lock, log, '10', '2']);
    await long;
    expect(waiter.exitCode).toBe(0);
    const events = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' ')[0]);
    expect(events).toEqual(['enter', 'leave', 'enter', 'leave']);
  });

  it('a lock that cannot be written (a full disk) is one line, and leaves no temp file behind', async () => {
    // A real ENOSPC: a 4 KiB tmpfs filled to its last page, mounted in a mount namespace of our own (unshare maps
    // us to root there, and the mount goes away with it). The temp owner file is created, its write fails.
    const script = 'mount -t tmpfs -o size=4k tmpfs "$1" && mkdir "$1/d" && head -c 4096 /dev/zero >"$1/fill" || exit 99\n' +
      '"$2" sync "$3" --to 127.0.0.1:9 --lock "$1/d/sync.lock"; echo "exit $?"; ls -A "$1/d"';
    const result = await execa('unshare', ['--map-root-user', '--mount', 'sh', '-c', script, 'sh', tempDir(), BIN, demo().root], { reject: false, env: { REGMIGRATE_NO_PROGRESS: '1' } });
    expect(result.stderr).toMatch(/^regmigrate: lock .*\/d\/sync\.lock: cannot be created \(ENOSPC\)$/m);
    // Exit 2 and an empty directory: neither the lock nor its temp file.
    expect(String(result.stdout).trim().split('\n')).toEqual(['exit 2']);
  });
});

describe('results survive', () => {
  it('a report or state in a missing directory is exit 2 before any work', async () => {
    const registry = await startRegistry();
    const tree = demo();
    const missing = path.join(tempDir(), 'no', 'such', 'dir');
    const push = await runCli(['push', tree.root, '--to', registry.host, '--report', path.join(missing, 'r.json')]);
    expect(push.exitCode).toBe(2);
    expect(push.stderr).toMatch(/--report .*r\.json: its directory .*no\/such\/dir does not exist/);
    const sync = await runCli(['sync', tree.root, '--to', registry.host, '--state', path.join(missing, 's.json')]);
    expect(sync.exitCode).toBe(2);
    expect(sync.stderr).toMatch(/--state .*s\.json: its directory .* does not exist/);
    expect(await catalogTags(registry.url, 'team/api')).toEqual([]);
  });

  it('a report that cannot be written at the end: exit 5, and the image list is on stdout all the same', async () => {
    const registry = await startRegistry();
    const tree = demo();
    const dir = tempDir();
    // A file size limit of 1 KiB (ulimit -f): the empty probe at the start passes, the report at the end cannot be
    // written (EFBIG; node ignores SIGXFSZ), the image list on the stdout pipe is not a file and goes out whole.
    const report = path.join(dir, 'report.json');
    const result = await execa('bash', ['-c', 'ulimit -f 1; exec "$0" "$@"', BIN, 'push', tree.root, '--to', registry.host, '--report', report], { reject: false, env: { REGMIGRATE_NO_PROGRESS: '1' } });
    expect(result.exitCode).toBe(5);
    expect(result.stderr).toMatch(/--report .*report\.json: could not be written \(EFBIG\)/);
    expect(result.stdout.match(/verified/g)).toHaveLength(7);
    expect(readdirSync(dir)).toEqual([]);
  });

  it.each([
    ['a directory', (dir: string) => (mkdirSync(path.join(dir, 'report.json')), path.join(dir, 'report.json')), /--report .*report\.json: is a directory/],
    ['a place no file can be made', () => '/proc/regmigrate-report.json', /--report \/proc\/regmigrate-report\.json: cannot be written \(E[A-Z]+\)/],
  ])('a report path that is %s is exit 2 before any work', async (_, where, message) => {
    const registry = await startRegistry();
    const tree = demo();
    const result = await runCli(['push', tree.root, '--to', registry.host, '--report', where(tempDir())]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(await catalogTags(registry.url, 'team/api')).toEqual([]);
  });
});

describe('two sources, one destination', () => {
  it('busybox and library/busybox: the second is a name-collision fault naming both, in push, diff, sync and export', async () => {
    const registry = await startRegistry();
    const tree = demo();
    addCollidingBusybox(tree.root);
    const push = await runCli(['push', tree.root, '--to', registry.host, '--output', 'json']);
    expect(push.exitCode).toBe(1);
    const doc = JSON.parse(push.stdout) as { images: Array<{ source: string; status: string; reason: string | null }> };
    expect(doc.images.find((i) => i.source === 'busybox:1.36')!.status).toBe('verified');
    expect(doc.images.find((i) => i.source === 'library/busybox:1.36')).toMatchObject({
      status: 'failed',
      reason: 'name-collision: library/busybox:1.36 and busybox:1.36 both map to library/busybox:1.36; busybox:1.36 is migrated, library/busybox:1.36 is not (use --map to give one another name)',
    });
    const diff = JSON.parse((await runCli(['diff', tree.root, '--to', registry.host, '--output', 'json'])).stdout) as { tags: Array<{ source: string; status: string }> };
    expect(diff.tags.find((t) => t.source === 'library/busybox:1.36')!.status).toBe('faulty');
    const state = path.join(tempDir(), 'state.json');
    for (let run = 0; run < 2; run++) {
      const sync = await runCli(['sync', tree.root, '--to', registry.host, '--state', state]);
      expect(sync.stdout).toMatch(/^failed library\/busybox:1\.36 -> library\/busybox:1\.36: name-collision/m);
      expect(sync.stdout).not.toMatch(/^pushed /m);
    }
    const exported = await runCli(['export', tree.root, '--out', path.join(tempDir(), 'out')]);
    expect(exported.stdout + exported.stderr).toMatch(/library\/busybox:1\.36.*name-collision/);
  });
});

describe('smaller items', () => {
  it('SIGINT while Harbor is asked about projects stops there: no project is created, nothing uploaded', async () => {
    // Harbor answers no project lookup until the run has heard the signal.
    let answer: () => void = () => undefined;
    const harbor = await startHarborDouble({ users: { admin: { password: 'Int-pass-1', admin: true } }, projects: [], holdProjectLookups: new Promise<void>((resolve) => (answer = resolve)) });
    const child = execa(BIN, ['push', demo().root, '--to', harbor.host, '--username', 'admin', '--password-stdin'], { reject: false, input: 'Int-pass-1\n', env: { REGMIGRATE_NO_PROGRESS: '1' } });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    await waitFor(() => harbor.projectLookups > 0);
    child.kill('SIGINT');
    await waitFor(() => stderr.includes('SIGINT: '));
    answer();
    const result = await child;
    expect(result.exitCode).toBe(130);
    expect(harbor.projects.size).toBe(0);
    expect(harbor.log.filter((r) => r.method === 'POST' || r.method === 'PUT')).toEqual([]);
    expect(String(result.stdout)).toMatch(/interrupted/);
  });

  it.each([
    ['team/api:1.1', { repository: 'team/api', tag: '1.1' }],
    [`signed/app@sha256:${'a'.repeat(64)}`, { repository: 'signed/app', tag: `sha256:${'a'.repeat(64)}` }],
    ['localhost/x:latest', { repository: 'localhost/x', tag: 'latest' }],
  ])('journal keys split where tagRef joined them: %s', (ref, expected) => {
    expect(splitRef(ref)).toEqual(expected);
  });

  it('a blob whose data file is a symbolic link is never followed: the image is faulty', async () => {
    const tree = demo();
    const alpine = tree.tags.find((t) => t.repository === 'library/alpine')!;
    const manifest = JSON.parse(readFileSync(path.join(tree.v2, 'blobs/sha256', alpine.digest!.slice(7, 9), alpine.digest!.slice(7), 'data'), 'utf8')) as { config: { digest: string } };
    const data = path.join(tree.v2, 'blobs/sha256', manifest.config.digest.slice(7, 9), manifest.config.digest.slice(7), 'data');
    const copy = path.join(tempDir(), 'elsewhere');
    execaSync('cp', [data, copy]);
    rmSync(data);
    symlinkSync(copy, data);
    const scan = JSON.parse((await runCli(['scan', tree.root, '--output', 'json'])).stdout) as { tags: Array<{ repository: string; tag: string; faults: Array<{ kind: string; message: string }> }> };
    const row = scan.tags.find((t) => t.repository === 'library/alpine' && t.tag === '3.19')!;
    expect(row.faults).toEqual([expect.objectContaining({ kind: 'unreadable', message: expect.stringMatching(/is a symbolic link \(symbolic links in the storage are never followed\)/) })]);
  });
});

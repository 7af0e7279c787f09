import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildFaultyStorage, type BuiltTree } from '../fixtures/trees.js';
import { scanStorage } from '../src/inventory/scan.js';
import { openStorage } from '../src/storage/open.js';
import { BIN, DEMO_STORAGE, PROJECT, runCli } from './helpers/cli.js';
import { addCollidingBusybox, buildDemoStorage } from '../fixtures/trees.js';
import { MEDIA } from '../fixtures/builder.js';
import { requestKind, startProxy, type ScriptedProxy } from './helpers/proxy.js';
import { startRegistry, type RunningRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';
import { buildLegacyTree } from './helpers/legacy-tree.js';
import { formatBytes } from '../src/util/format.js';
import { servedDigest } from './helpers/observe.js';

interface Report {
  command: string;
  source: string;
  destination: string;
  startedAt: string;
  endedAt: string;
  regmigrateVersion: string;
  images: Array<{ source: string; destination: string | null; digest: string | null; mediaType: string | null; size: number; status: string; reason: string | null }>;
  summary: { verified: number; skipped: number; failed: number; blobsUploaded: number; bytesUploaded: number; blobsMounted: number };
}


describe('push into a real docker-registry', () => {
  let tree: BuiltTree;
  let registry: RunningRegistry;
  let proxy: ScriptedProxy;
  let first: Report;
  let firstExit: number;
  beforeAll(async () => {
    tree = buildFaultyStorage(path.join(tempDir(), 'registry'));
    registry = await startRegistry();
    proxy = await startProxy(registry.host);
    const report = path.join(tempDir(), 'report.json');
    const result = await runCli(['push', tree.root, '--to', proxy.host, '--report', report]);
    firstExit = result.exitCode;
    first = JSON.parse(readFileSync(report, 'utf8')) as Report;
  });

  const healthy = () => tree.tags.filter((t) => !t.fault);
  const destinationOf = (repository: string) => (repository.includes('/') ? repository : `library/${repository}`);

  it('verifies every healthy tag, byte-identical to the source', async () => {
    expect(first.summary.verified).toBe(healthy().length);
    for (const t of healthy()) {
      const row = first.images.find((i) => i.source === `${t.repository}:${t.tag}`)!;
      expect(row.status, row.reason ?? '').toBe('verified');
      expect(await servedDigest(registry.host, `${destinationOf(t.repository)}:${t.tag}`)).toBe(t.digest);
    }
  });

  it('a faulty image keeps its destination tag, media type and size in the report', async () => {
    const inventory = await scanStorage(await openStorage(tree.root), { include: [], exclude: [], verify: false, concurrency: 8 });
    const scanned = inventory.tags.find((t) => t.repository === 'broken/layer' && t.tag === 'v1')!;
    expect(scanned.size).toBeGreaterThan(0);
    expect(first.images.find((i) => i.source === 'broken/layer:v1')).toMatchObject({
      status: 'failed',
      destination: 'broken/layer:v1',
      digest: scanned.digest,
      mediaType: MEDIA.dockerManifest,
      size: scanned.size,
      reason: expect.stringMatching(/^missing-blob: /),
    });
  });

  it('the report names the run: command, source, destination, start and end, and the version that wrote it', () => {
    const version = (JSON.parse(readFileSync(path.join(PROJECT, 'package.json'), 'utf8')) as { version: string }).version;
    expect(first).toMatchObject({ command: 'push', source: tree.root, destination: proxy.host, regmigrateVersion: version });
    expect(Date.parse(first.startedAt)).toBeLessThanOrEqual(Date.parse(first.endedAt));
    expect(new Date(first.endedAt).toISOString()).toBe(first.endedAt);
  });

  it('reports each faulty image with its reason, leaves it out of the destination, and exits 1', async () => {
    expect(firstExit).toBe(1);
    for (const t of tree.tags.filter((x) => x.fault && x.fault.kind !== 'corrupt-blob')) {
      const row = first.images.find((i) => i.source === `${t.repository}:${t.tag}`)!;
      expect(row.status).toBe('failed');
      expect(row.reason).toContain(t.fault!.kind);
      if (t.repository !== 'broken/Bad_Name') expect(await servedDigest(registry.host, `${t.repository}:${t.tag}`)).toBeUndefined();
    }
  });

  it('reports bit rot that scan did not see as a corrupt source blob, from the registry\'s DIGEST_INVALID', async () => {
    const row = first.images.find((i) => i.source === 'broken/rot:v1')!;
    expect(row.status).toBe('failed');
    expect(row.reason).toMatch(/corrupt-blob: the destination rejected blob sha256:[0-9a-f]{64}/);
    expect(await servedDigest(registry.host, 'broken/rot:v1')).toBeUndefined();
  });

  it('sends each unique blob once and mounts it everywhere else', async () => {
    const inventory = await scanStorage(await openStorage(tree.root), { include: [], exclude: [], verify: false, concurrency: 8 });
    const healthyTags = inventory.tags.filter((t) => t.faults.length === 0);
    const unique = new Set(healthyTags.flatMap((t) => t.blobs.map((b) => b.digest)));
    const uploads = proxy.log.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/') && r.status === 201);
    const uploadedDigests = uploads.map((u) => new URLSearchParams(u.query).get('digest'));
    // The rot blob is sent once and refused; every other upload is a distinct blob.
    expect(new Set(uploadedDigests).size).toBe(uploadedDigests.length);
    expect(uploads.length).toBe(unique.size - 1);
    expect(first.summary.blobsUploaded).toBe(uploads.length);
    const mounts = proxy.log.filter((r) => r.method === 'POST' && r.query.includes('mount=') && r.status === 201);
    expect(mounts.length).toBe(first.summary.blobsMounted);
    expect(mounts.length).toBeGreaterThan(0);
  });

  it('transfers nothing on a second run', async () => {
    const before = proxy.log.length;
    const report = path.join(tempDir(), 'second.json');
    const result = await runCli(['push', tree.root, '--to', proxy.host, '--report', report]);
    expect(result.exitCode).toBe(1);
    const second = JSON.parse(readFileSync(report, 'utf8')) as Report;
    expect(second.summary.bytesUploaded).toBe(0);
    expect(second.summary.skipped).toBe(healthy().length);
    const newRequests = proxy.log.slice(before);
    const kinds = new Set(newRequests.map((r) => requestKind(r.method, r.path)));
    // Only the tag probes (and the retry of the corrupt image, which fails again): no blob sent twice.
    expect(newRequests.filter((r) => r.method === 'PUT' && r.status === 201)).toEqual([]);
    expect(kinds.has('GET manifest')).toBe(true);
  });

  it('pushes images that a real client pulls and unpacks (podman checks every layer against the diff IDs)', async () => {
    const root = tempDir('regmigrate-podman-');
    for (const ref of ['infra/tools/kubectl:1.29', 'team/api:1.0', 'library/busybox:1.36']) {
      const result = await execa(
        'podman',
        ['--storage-driver', 'vfs', '--root', path.join(root, 'root'), '--runroot', path.join(root, 'run'), 'pull', '--tls-verify=false', `${registry.host}/${ref}`],
        { reject: false },
      );
      expect(result.exitCode, String(result.stderr)).toBe(0);
    }
  });
});

describe('push options', () => {
  it('--dry-run prints the plan and changes nothing', async () => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    const result = await runCli(['push', DEMO_STORAGE, '--to', proxy.host, '--dry-run']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/Blobs to upload \(unless already present\): 18, 102 KiB; cross-repository mounts: 4/);
    expect(result.stdout).toMatch(/Images to push: 7; already there: 0; cannot be migrated: 0/);
    expect(result.stdout).toMatch(/busybox:1\.36\s+library\/busybox:1\.36\s+[0-9a-f]{12}\s+docker-v2\s+[\d.]+ KiB\s+push/);
    expect(proxy.log.filter((r) => r.method !== 'GET' && r.method !== 'HEAD')).toEqual([]);
  });

  it('--dry-run --output json is a regmigrate.plan document; --schema1 skip lists what it leaves out', async () => {
    const legacy = await buildLegacyTree();
    const registry = await startRegistry({ allowManifestUrls: true });
    const result = await runCli(['push', legacy.root, '--to', registry.host, '--dry-run', '--output', 'json', '--schema1', 'skip']);
    expect(result.exitCode, result.stderr).toBe(0);
    const plan = JSON.parse(result.stdout) as { kind: string; schemaVersion: number; images: Array<{ source: string }>; skipped: Array<{ source: string }> };
    expect(plan).toMatchObject({ kind: 'regmigrate.plan', schemaVersion: 1 });
    expect(plan).not.toHaveProperty('version');
    expect(plan.skipped.map((i) => i.source).sort()).toEqual(Object.keys(legacy.schema1).sort());
    expect(plan.images.map((i) => i.source)).not.toContain(Object.keys(legacy.schema1)[0]);
    // The table lists them too.
    const table = await runCli(['push', legacy.root, '--to', registry.host, '--dry-run', '--schema1', 'skip']);
    for (const ref of Object.keys(legacy.schema1)) expect(table.stdout).toMatch(new RegExp(`^${ref.replace(/[.]/g, '\\.')} .*skip \\(--schema1 skip\\)`, 'm'));
  });

  it('--dry-run gives one upload figure: blobs the destination already holds are mounted, not counted', async () => {
    const registry = await startRegistry();
    expect((await runCli(['push', DEMO_STORAGE, '--to', registry.host, '--include', 'library/**'])).exitCode).toBe(0);
    const result = await runCli(['push', DEMO_STORAGE, '--to', registry.host, '--dry-run']);
    expect(result.exitCode, result.stderr).toBe(0);
    const onStdout = /Blobs to upload \(unless already present\): \d+, ([\d.]+ \w+);/.exec(result.stdout)?.[1];
    const onStderr = /up to ([\d.]+ \w+) to upload/.exec(result.stderr)?.[1];
    expect(onStdout).toBeDefined();
    expect(onStderr).toBe(onStdout);
    const plan = JSON.parse((await runCli(['push', DEMO_STORAGE, '--to', registry.host, '--dry-run', '--output', 'json'])).stdout) as { blobs: Array<{ size: number; held?: boolean }> };
    expect(plan.blobs.some((b) => b.held)).toBe(true);
    expect(onStdout).toBe(formatBytes(plan.blobs.reduce((n, b) => n + (b.held ? 0 : b.size), 0)));
  });

  it('--dry-run: a name collision is shown at the destination tag it would have had', async () => {
    const registry = await startRegistry();
    const tree = buildDemoStorage(path.join(tempDir(), 'registry'));
    addCollidingBusybox(tree.root);
    const result = await runCli(['push', tree.root, '--to', registry.host, '--dry-run']);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/^library\/busybox:1\.36\s+library\/busybox:1\.36\s+[0-9a-f]{12}\s+docker-v2\s+[\d.]+ (B|KiB)\s+fail: name-collision: /m);
  });

  it('--map and --default-project decide destination names; nested names stay whole', async () => {
    const registry = await startRegistry();
    const result = await runCli(['push', DEMO_STORAGE, '--to', registry.host, '--map', 'infra=platform/infra', '--map', 'team/api=apps/api-server', '--default-project', 'base', '--output', 'json']);
    expect(result.exitCode, result.stderr).toBe(0);
    const doc = JSON.parse(result.stdout) as Report;
    const destinations = Object.fromEntries(doc.images.map((i) => [i.source, i.destination]));
    expect(destinations).toEqual({
      'busybox:1.36': 'base/busybox:1.36',
      'infra/tools/kubectl:1.29': 'platform/infra/tools/kubectl:1.29',
      'infra/tools:latest': 'platform/infra/tools:latest',
      'library/alpine:3.19': 'library/alpine:3.19',
      'library/alpine:latest': 'library/alpine:latest',
      'team/api:1.0': 'apps/api-server:1.0',
      'team/api:1.1': 'apps/api-server:1.1',
    });
    expect(await servedDigest(registry.host, 'platform/infra/tools/kubectl:1.29')).toBeDefined();
  });

  it('prints plain progress lines when not on a terminal, one line per failure, and only failures with --quiet', async () => {
    const tree = buildFaultyStorage(path.join(tempDir(), 'registry'));
    const registry = await startRegistry();
    const loud = await runCli(['push', tree.root, '--to', registry.host], { env: { REGMIGRATE_NO_PROGRESS: '' } });
    expect(loud.stderr).toMatch(/^plan: \d+ images to push, 0 already there, up to [\d.]+ KiB to upload$/m);
    expect(loud.stderr).toMatch(/^failed: broken\/rot:v1 → broken\/rot:v1: corrupt-blob: /m);
    expect(loud.stderr).toMatch(/images verified, 0 already there, \d+ failed/);
    const registry2 = await startRegistry();
    const quiet = await runCli(['push', tree.root, '--to', registry2.host, '--quiet']);
    expect(quiet.stderr).not.toMatch(/^plan:/m);
    expect(quiet.stderr).toMatch(/^failed: broken\/rot:v1/m);
    // Only failures: no summary either.
    expect(quiet.stderr).not.toMatch(/verified|already there|uploaded/);
  });

  it('writes a CSV report', async () => {
    const registry = await startRegistry();
    const report = path.join(tempDir(), 'images.csv');
    const result = await runCli(['push', DEMO_STORAGE, '--to', registry.host, '--report', report, '--quiet']);
    expect(result.exitCode).toBe(0);
    const lines = readFileSync(report, 'utf8').trimEnd().split('\n');
    expect(lines[0]).toBe('source,destination,digest,media_type,size,status,reason,converted_to,run_command,run_source,run_destination,run_started_at,run_ended_at,regmigrate_version,source_pushed_at,destination_pushed_at');
    const row = lines[1]!.split(',');
    expect(row.slice(8, 11)).toEqual(['push', DEMO_STORAGE, registry.host]);
    expect(Date.parse(row[11]!)).toBeLessThanOrEqual(Date.parse(row[12]!));
    expect(row[13]).toBe((JSON.parse(readFileSync(path.join(PROJECT, 'package.json'), 'utf8')) as { version: string }).version);
    expect(lines).toHaveLength(8);
    expect(lines.filter((l) => l.includes(',verified,'))).toHaveLength(7);
  });

  it.each([
    [['push', DEMO_STORAGE], /--to is required: the destination registry or Harbor/],
    [['push', DEMO_STORAGE, '--to', 'ftp://x'], /only http:\/\/ and https:\/\//],
    [['push', DEMO_STORAGE, '--to', 'h:5000', '--map', 'nope', '--report', 'r.txt', '--username', 'u'], /^(?=.*--map "nope" is not from=to)(?=.*--report r\.txt: the name must end in \.json or \.csv)(?=.*--username needs --password-stdin)/],
    [['push', DEMO_STORAGE, '--to', 'h:5000', '--default-project', 'Bad__X'], /--default-project "Bad__X" is not a valid project name/],
  ])('exits 2 on bad options: %j', async (args, message) => {
    const result = await runCli(args);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(message);
  });

  it('exits 3 when the destination is unreachable', async () => {
    const result = await runCli(['push', DEMO_STORAGE, '--to', '127.0.0.1:9', '--retries', '1']);
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toMatch(/http:\/\/127\.0\.0\.1:9 is unreachable: .*ECONNREFUSED/);
  });
});

describe('progress on a terminal', () => {
  it('draws bars (bytes and images) on a TTY, and clears them before the summary', async () => {
    const registry = await startRegistry();
    // `script` gives the CLI a pseudo-terminal, as an operator's shell would.
    const result = await execa('script', ['-qec', `${BIN} push ${DEMO_STORAGE} --to ${registry.host} --concurrency 1`, '/dev/null'], { reject: false, env: { COLUMNS: '120' } });
    const output = String(result.stdout);
    expect(result.exitCode).toBe(0);
    // However short the push (the demo's can end before the first 200 ms frame), the bars are drawn with their final
    // figures, then cleared (ESC[0J) before the image list.
    const bars = output.slice(0, output.indexOf('\u001b[0JSOURCE'));
    expect(bars.length).toBeGreaterThan(0);
    // A frame rewrites only the bars that changed: the last drawing of each bar is what the operator saw last.
    const last = (pattern: RegExp): string | undefined => [...bars.matchAll(pattern)].map((m) => m[0]).at(-1);
    expect(last(/\d+% \| [\d.]+ (?:B|KiB) of 102 KiB/g)).toBe('100% | 102 KiB of 102 KiB');
    expect(last(/\d+% \| \d\/7 images/g)).toBe('100% | 7/7 images');
    expect(output).toMatch(/7 images verified, 0 already there, 0 failed/);
    // Every blob count names its unit, as the uploaded one does.
    expect(output).toMatch(/uploaded [\d.]+ KiB \(\d+ blobs\), mounted [\d.]+ (?:B|KiB) \(\d+ blobs?\), skipped 0 B \(0 blobs\); /);
  });
});

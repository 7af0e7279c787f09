/**
 * Migrate what matters: tag selection by pattern, version, push time and count (with referrers following their
 * subject), a shared bandwidth cap, and the whole job in one config file. Real storage trees with controlled link
 * mtimes, the built CLI, a real docker-registry.
 */
import { execa } from 'execa';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { addImage, makeLayer, StorageBuilder } from '../fixtures/builder.js';
import { DEMO_STORAGE, runCli } from './helpers/cli.js';
import { buildLegacyTree, type LegacyTree } from './helpers/legacy-tree.js';
import { startProxy } from './helpers/proxy.js';
import { startRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

const DAY = 86_400_000;
const NOW = Date.now();

/** `app/web` with tags pushed at known times; `app/api` with versions. */
function buildTaggedTree(): string {
  const root = path.join(tempDir('regmigrate-sel-'), 'registry');
  const b = new StorageBuilder(root);
  const base = makeLayer('etc/os-release', 'NAME="sel-base"\n', 4096);
  const tags: Array<[string, string, number]> = [
    ['app/web', 'ci-100', 400],
    ['app/web', 'ci-101', 200],
    ['app/web', 'ci-102', 30],
    ['app/web', 'latest', 1],
    ['app/api', '1.0.0', 500],
    ['app/api', '1.2.0', 300],
    ['app/api', 'v1.9', 100],
    ['app/api', '2.0.0-rc.1', 20],
    ['app/api', '2.0.0', 10],
    ['app/api', 'nightly', 2],
  ];
  for (const [repo, tag, ageDays] of tags) {
    const image = addImage(b, repo, { format: 'oci', layers: [base, makeLayer('srv/app', `${repo} ${tag}\n`, 1024)], label: `${repo}-${tag}` });
    b.tag(repo, tag, image.digest);
    b.setPushedAt(repo, tag, new Date(NOW - ageDays * DAY));
  }
  return root;
}

async function scanTags(root: string, args: string[]): Promise<string[]> {
  const result = await runCli(['scan', root, '--output', 'json', ...args]);
  expect(result.exitCode, result.stderr).toBe(0);
  return (JSON.parse(result.stdout) as { tags: Array<{ repository: string; tag: string }> }).tags.map((t) => `${t.repository}:${t.tag}`).sort();
}

describe('tag selection', () => {
  let root: string;
  beforeAll(() => {
    root = buildTaggedTree();
  });

  it('scan shows when each tag was pushed (json, csv, table)', async () => {
    const json = JSON.parse((await runCli(['scan', root, '--output', 'json'])).stdout) as { tags: Array<{ tag: string; pushedAt: string }> };
    const latest = json.tags.find((t) => t.tag === 'latest')!;
    expect(Math.abs(Date.parse(latest.pushedAt) - (NOW - DAY))).toBeLessThan(2000);
    const csv = (await runCli(['scan', root, '--output', 'csv'])).stdout.split('\n');
    expect(csv[0]).toMatch(/,pushed_at$/);
    expect(csv.find((l) => l.startsWith('app/web,latest,'))).toMatch(/,\d{4}-\d\d-\d\dT[\d:.]+Z$/);
    expect((await runCli(['scan', root])).stdout).toMatch(/PUSHED \(UTC\)/);
  });

  it.each([
    ['--tag-include glob', ['--tag-include', 'ci-*'], ['app/web:ci-100', 'app/web:ci-101', 'app/web:ci-102']],
    ['--tag-include /regex/', ['--tag-include', '/^v?\\d+\\.\\d+(\\.\\d+)?$/'], ['app/api:1.0.0', 'app/api:1.2.0', 'app/api:2.0.0', 'app/api:v1.9']],
    ['--tag-exclude', ['--tag-exclude', 'ci-*', '--tag-exclude', 'nightly'], ['app/api:1.0.0', 'app/api:1.2.0', 'app/api:2.0.0', 'app/api:2.0.0-rc.1', 'app/api:v1.9', 'app/web:latest']],
    ['--semver', ['--semver', '>=1.2 <2'], ['app/api:1.2.0', 'app/api:v1.9']],
    ['--semver leaves prereleases out (npm rule)', ['--semver', '>=1.2 <3'], ['app/api:1.2.0', 'app/api:2.0.0', 'app/api:v1.9']],
    ['--semver with prereleases when the range names one', ['--semver', '>=2.0.0-0 <3'], ['app/api:2.0.0', 'app/api:2.0.0-rc.1']],
    ['--pushed-after duration', ['--pushed-after', '25d'], ['app/api:2.0.0', 'app/api:2.0.0-rc.1', 'app/api:nightly', 'app/web:latest']],
    ['--pushed-after date', ['--pushed-after', new Date(NOW - 150 * DAY).toISOString().slice(0, 10)], ['app/api:2.0.0', 'app/api:2.0.0-rc.1', 'app/api:nightly', 'app/api:v1.9', 'app/web:ci-102', 'app/web:latest']],
    ['--keep-latest', ['--keep-latest', '2'], ['app/api:2.0.0', 'app/api:nightly', 'app/web:ci-102', 'app/web:latest']],
    ['combined: semver, then the newest one', ['--semver', '>=1', '--keep-latest', '1'], ['app/api:2.0.0']],
    ['combined: pattern and age', ['--tag-include', 'ci-*', '--pushed-after', '300d'], ['app/web:ci-101', 'app/web:ci-102']],
  ])('%s', async (_, args, expected) => {
    expect(await scanTags(root, args as string[])).toEqual(expected);
  });

  it('scan says what the selection keeps and drops, per project and in total', async () => {
    const result = await runCli(['scan', root, '--keep-latest', '1', '--output', 'json']);
    const doc = JSON.parse(result.stdout) as { selection: { projects: Array<{ project: string; keptTags: number; droppedTags: number; keptBytes: number; droppedBytes: number }>; total: { keptTags: number; droppedTags: number } } };
    expect(doc.selection.projects.map((p) => [p.project, p.keptTags, p.droppedTags])).toEqual([['app', 2, 8]]);
    expect(doc.selection.total).toMatchObject({ keptTags: 2, droppedTags: 8 });
    expect(doc.selection.projects[0]!.droppedBytes).toBeGreaterThan(0);
    const table = (await runCli(['scan', root, '--keep-latest', '1'])).stdout;
    expect(table).toMatch(/Selection:\nPROJECT +KEPT TAGS +KEPT BYTES +DROPPED TAGS +BYTES SAVED\napp +2 /);
  });

  it('--pushed-after on a tar of the storage keeps the same tags as on the directory (push times from the tar headers)', async () => {
    const file = path.join(tempDir(), 'storage.tar');
    await execa('tar', ['-cf', file, '-C', root, 'docker']);
    expect(await scanTags(file, ['--pushed-after', '25d'])).toEqual(await scanTags(root, ['--pushed-after', '25d']));
    expect(await scanTags(file, ['--keep-latest', '1'])).toEqual(['app/api:nightly', 'app/web:latest']);
  });

  it('a tar whose entries carry no time (mtime 0): no push time, so --pushed-after keeps none of its tags', async () => {
    const file = path.join(tempDir(), 'no-times.tar');
    await execa('tar', ['-cf', file, '--mtime=@0', '-C', root, 'docker']);
    const all = JSON.parse((await runCli(['scan', file, '--output', 'json'])).stdout) as { tags: Array<{ pushedAt: string | null }> };
    expect(all.tags).toHaveLength(10);
    expect(all.tags.map((t) => t.pushedAt)).toEqual(Array(10).fill(null));
    expect((await runCli(['scan', file])).stdout).toMatch(/^app\/web +latest .* - +ok$/m);
    const doc = JSON.parse((await runCli(['scan', file, '--pushed-after', '25d', '--output', 'json'])).stdout) as { tags: unknown[]; selection: { total: { keptTags: number; droppedTags: number } } };
    expect(doc.tags).toEqual([]);
    expect(doc.selection.total).toMatchObject({ keptTags: 0, droppedTags: 10 });
  });

  it('bad selectors are exit 2, all reported together', async () => {
    const result = await runCli(['scan', root, '--semver', 'not a range', '--pushed-after', 'yesterday', '--keep-latest', '0', '--tag-include', '/([/', '--include', 'a{b']);
    expect(result.exitCode).toBe(2);
    for (const message of [/--semver "not a range" is not a version range/, /--pushed-after "yesterday" is neither a date/, /--keep-latest must be a whole number/, /--tag-include "\/\(\[\/": not a valid regular expression/, /--include "a\{b" is not a valid glob/]) {
      expect(result.stderr).toMatch(message);
    }
  });
});

describe('referrers follow their subject', () => {
  let tree: LegacyTree;
  beforeAll(async () => {
    tree = await buildLegacyTree();
  });

  it('a kept image keeps its signature and SBOM; a dropped one leaves no orphan', async () => {
    const all = (await scanTags(tree.root, ['--include', 'signed/**'])).filter((t) => !t.includes('@'));
    expect(all.some((t) => t.endsWith('.sig'))).toBe(true);
    expect(await scanTags(tree.root, ['--include', 'signed/**', '--tag-include', 'v1'])).toEqual(all);
    expect(await scanTags(tree.root, ['--include', 'signed/**', '--tag-exclude', 'v1'])).toEqual([]);
    // Patterns judge images only: a pattern that matches the signature tag alone keeps nothing.
    expect(await scanTags(tree.root, ['--include', 'signed/**', '--tag-include', 'sha256-*'])).toEqual([]);
  });

  it('a referrer of a referrer follows too (an attestation of a signature), and goes with its image', async () => {
    const root = path.join(tempDir('regmigrate-sel-'), 'registry');
    const b = new StorageBuilder(root);
    for (const version of ['v1', 'v2']) {
      const image = addImage(b, 'app/chain', { format: 'oci', layers: [makeLayer('srv/app', `chain ${version}\n`, 512)], label: version });
      b.tag('app/chain', version, image.digest);
      const signature = addImage(b, 'app/chain', { format: 'oci', layers: [makeLayer('sig', `signature of ${version}\n`)], label: `${version}-sig`, subject: image.descriptor });
      b.tag('app/chain', `${version}-sig`, signature.digest);
      const attestation = addImage(b, 'app/chain', { format: 'oci', layers: [makeLayer('att', `attestation of ${version}-sig\n`)], label: `${version}-att`, subject: signature.descriptor });
      b.tag('app/chain', `${version}-sig-att`, attestation.digest);
    }
    expect(await scanTags(root, ['--tag-include', 'v1'])).toEqual(['app/chain:v1', 'app/chain:v1-sig', 'app/chain:v1-sig-att']);
    expect(await scanTags(root, ['--tag-exclude', 'v1'])).toEqual(['app/chain:v2', 'app/chain:v2-sig', 'app/chain:v2-sig-att']);
  });
});

describe('selection end to end', () => {
  it.each(['oci', 'skopeo'])('push --via %s moves only the selected tags', async (via) => {
    const root = buildTaggedTree();
    const registry = await startRegistry();
    const result = await runCli(['push', root, '--to', registry.host, '--via', via, '--keep-latest', '1', '--tag-exclude', 'nightly']);
    expect(result.exitCode, result.stderr).toBe(0);
    const list = async (repo: string) => ((await (await fetch(`${registry.url}/v2/${repo}/tags/list`)).json()) as { tags: string[] }).tags.sort();
    expect(await list('app/api')).toEqual(['2.0.0']);
    expect(await list('app/web')).toEqual(['latest']);
  });

  it('diff and sync apply the same selection; --delete-extra never takes an unselected tag for gone', async () => {
    const root = buildTaggedTree();
    const registry = await startRegistry();
    const state = path.join(tempDir(), 'state.json');
    expect((await runCli(['sync', root, '--to', registry.host, '--state', state])).exitCode).toBe(0);
    const narrowed = await runCli(['sync', root, '--to', registry.host, '--state', state, '--keep-latest', '1', '--delete-extra', '--yes']);
    expect(narrowed.exitCode, narrowed.stdout).toBe(0);
    expect(narrowed.stdout).not.toMatch(/delete/);
    expect(((await (await fetch(`${registry.url}/v2/app/web/tags/list`)).json()) as { tags: string[] }).tags).toHaveLength(4);
    const diff = JSON.parse((await runCli(['diff', root, '--to', registry.host, '--semver', '>=2.0.0-0', '--output', 'json'])).stdout) as { tags: Array<{ source: string | null; status: string }> };
    const sources = diff.tags.filter((t) => t.source).map((t) => t.source).sort();
    expect(sources).toEqual(['app/api:2.0.0', 'app/api:2.0.0-rc.1']);
  });

  it('--delete-extra leaves alone a tag the name rules exclude, even one gone from the source: not this run\'s business', async () => {
    const root = buildTaggedTree();
    const registry = await startRegistry();
    const state = path.join(tempDir(), 'state.json');
    const sync = (...extra: string[]) => runCli(['sync', root, '--to', registry.host, '--state', state, ...extra]);
    const apiTags = async () => ((await (await fetch(`${registry.url}/v2/app/api/tags/list`)).json()) as { tags: string[] }).tags.sort();
    expect((await sync()).exitCode).toBe(0);
    rmSync(path.join(root, 'docker/registry/v2/repositories/app/api/_manifests/tags/nightly'), { recursive: true });
    const excluded = await sync('--tag-exclude', 'nightly', '--delete-extra', '--yes');
    expect(excluded.exitCode, excluded.stdout).toBe(0);
    expect(excluded.stdout).not.toMatch(/delete/);
    expect(await apiTags()).toContain('nightly');
    // The same run without the rule takes it for gone and deletes it.
    const whole = await sync('--delete-extra', '--yes');
    expect(whole.exitCode, whole.stdout).toBe(0);
    expect(whole.stdout).toMatch(/^deleted app\/api:nightly /m);
    expect(await apiTags()).not.toContain('nightly');
  });
});

describe('--limit-rate', () => {
  /** ~24 MiB in incompressible layers: at 4 MiB/s a window of about six seconds. */
  function buildHeavyTree(): string {
    const root = path.join(tempDir('regmigrate-heavy-'), 'registry');
    const b = new StorageBuilder(root);
    for (let i = 0; i < 3; i++) {
      const image = addImage(b, `heavy/img${i}`, { format: 'docker', layers: [makeLayer(`blob${i}`, `heavy ${i}\n`, 8 * 1024 * 1024, 1)], label: `heavy-${i}` });
      b.tag(`heavy/img${i}`, 'v1', image.digest);
    }
    return root;
  }

  it.each(['oci', 'skopeo'])('--via %s: the uploads together never go more than 10 percent over the cap', async (via) => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    const arrivals: Array<[number, number]> = [];
    proxy.script = (req) => {
      if ((req.method === 'PUT' || req.method === 'PATCH') && req.url.pathname.includes('/blobs/uploads/')) {
        // Count body bytes as they arrive at the destination side.
        return { kind: 'forward', onBody: (n: number) => arrivals.push([performance.now(), n]) };
      }
      return { kind: 'forward' };
    };
    const rate = 4 * 1024 * 1024;
    const result = await runCli(['push', buildHeavyTree(), '--to', proxy.host, '--via', via, '--limit-rate', '4MiB/s', '--concurrency', '3']);
    expect(result.exitCode, result.stderr).toBe(0);
    const total = arrivals.reduce((n, [, b]) => n + b, 0);
    expect(total).toBeGreaterThan(24 * 1024 * 1024);
    // Over the window from the first to the last byte, the limiter's burst allowance (500 ms) left out.
    const first = arrivals[0]![0];
    const last = arrivals.at(-1)![0];
    const inWindow = arrivals.filter(([t]) => t >= first + 500).reduce((n, [, b]) => n + b, 0);
    const achieved = inWindow / ((last - first - 500) / 1000);
    // How close to the cap a run gets depends on the machine's load: that is no test's business, only the cap is.
    expect(achieved).toBeLessThan(rate * 1.1);
  });
});

describe('config file', () => {
  it('runs a push from the file; flags override it', async () => {
    const root = buildTaggedTree();
    const registry = await startRegistry();
    const dir = tempDir();
    const config = path.join(dir, 'regmigrate.yaml');
    writeFileSync(
      config,
      [
        'version: 1',
        `source: ${root}`,
        'destination:',
        `  to: ${registry.host}`,
        '  retries: 3',
        'selection:',
        '  tagInclude: ["ci-*"]',
        '  keepLatest: 1',
        'transfer:',
        '  concurrency: 4',
        'output:',
        `  report: ${path.join(dir, 'report.json')}`,
      ].join('\n'),
    );
    expect((await runCli(['config', 'check', config])).stdout).toMatch(/valid \(7 settings\)/);
    const result = await runCli(['push', '--config', config]);
    expect(result.exitCode, result.stderr).toBe(0);
    const report = JSON.parse(readFileSync(path.join(dir, 'report.json'), 'utf8')) as { images: Array<{ source: string }> };
    expect(report.images.map((i) => i.source)).toEqual(['app/web:ci-102']);
    // A flag on the command line wins over the file.
    const override = await runCli(['push', '--config', config, '--keep-latest', '2', '--output', 'json']);
    expect((JSON.parse(override.stdout) as { images: Array<{ source: string }> }).images.map((i) => i.source).sort()).toEqual(['app/web:ci-101', 'app/web:ci-102']);
  });

  it.each([
    ['a wrong type', 'selection:\n  keepLatest: two\n', /selection\.keepLatest: expected a whole number/],
    ['an unknown key', 'transfer:\n  concurrencyy: 4\n', /transfer\.concurrencyy: not a known setting/],
    ['an unknown section', 'colours: red\n', /colours: not a known setting/],
    ['a password', 'destination:\n  to: h\n  password: hunter2\n', /destination\.password: secrets are not allowed in the config file/],
    ['a token anywhere', 'output:\n  pushgatewayToken: abc\n', /output\.pushgatewayToken: secrets are not allowed/],
    ['a bad enum', 'transfer:\n  via: rsync\n', /transfer\.via: expected oci or skopeo/],
    ['a list that is not one', 'selection:\n  include: team/**\n', /selection\.include: expected a list of strings/],
    ['not YAML', 'selection: [unclosed\n', /not valid YAML/],
    ['a version range that is not one', 'selection:\n  semver: ">=1.0 <<<"\n', /selection\.semver: ">=1\.0 <<<" is not a version range/],
    ['a date that is not one', 'selection:\n  pushedAfter: yesterday\n', /selection\.pushedAfter: "yesterday" is neither a date/],
    ['a rate that is not one', 'transfer:\n  limitRate: fast\n', /transfer\.limitRate: "fast" is not a rate of at least 1KiB\/s/],
    ['a request budget below its floor', 'transfer:\n  maxRequests: 1\n', /transfer\.maxRequests: 1 is not a whole number from 2 to 1024/],
    ['an output format there is not', 'output:\n  output: xml\n', /output\.output: "xml" is not table, json, csv or html/],
    ['a glob that cannot be read', 'selection:\n  include: ["team/**", "a{b"]\n', /selection\.include: "a\{b" is not a valid glob/],
  ])('refuses %s, naming its path in the file (exit 2, before any work)', async (_, content, message) => {
    const file = path.join(tempDir(), 'bad.yaml');
    writeFileSync(file, content);
    const check = await runCli(['config', 'check', file]);
    expect(check.exitCode).toBe(2);
    expect(check.stderr).toMatch(message);
    expect(check.stderr).not.toMatch(/hunter2/);
    const push = await runCli(['push', '/nonexistent', '--to', '127.0.0.1:9', '--config', file]);
    expect(push.exitCode).toBe(2);
    expect(push.stderr).toMatch(message);
  });

  it('several mistakes are reported together; a missing file is named', async () => {
    const file = path.join(tempDir(), 'bad.yaml');
    writeFileSync(file, 'selection:\n  keepLatest: -1\n  semver: 3\nsync:\n  maxDelete: lots\n');
    const check = await runCli(['config', 'check', file]);
    expect(check.stderr).toMatch(/3 problems:\n/);
    for (const line of ['selection.keepLatest: expected a whole number', 'selection.semver: expected a string', 'sync.maxDelete: expected a whole number']) expect(check.stderr).toContain(`\n  ${line}`);
    const missing = await runCli(['config', 'check', path.join(tempDir(), 'nope.yaml')]);
    expect(missing.exitCode).toBe(2);
    // Named as given: the file is config check's argument, not a --config flag.
    expect(missing.stderr).toMatch(/^regmigrate: \/\S+\/nope\.yaml: cannot be read \(ENOENT\)$/m);
  });

  it('a wrong type does not hide the value problems of other settings', async () => {
    const file = path.join(tempDir(), 'bad.yaml');
    writeFileSync(file, 'selection:\n  keepLatest: two\n  semver: ">=1.0 <<<"\ntransfer:\n  limitRate: fast\n');
    const check = await runCli(['config', 'check', file]);
    expect(check.exitCode).toBe(2);
    expect(check.stderr).toMatch(/3 problems:\n/);
    for (const line of ['selection.keepLatest: expected a whole number', 'selection.semver: ">=1.0 <<<" is not a version range', 'transfer.limitRate: "fast" is not a rate']) expect(check.stderr).toContain(`\n  ${line}`);
  });

  it('an output file in a directory that does not exist: config check warns (the machine, not the file), the run refuses, both name it by its path in the file', async () => {
    const dir = tempDir();
    const gone = path.join(dir, 'no-such-dir');
    const file = path.join(dir, 'regmigrate.yaml');
    writeFileSync(file, [`source: ${DEMO_STORAGE}`, 'destination:', '  to: 127.0.0.1:9', 'output:', `  report: ${gone}/report.json`, 'sync:', `  state: ${gone}/state.json`].join('\n'));
    const check = await runCli(['config', 'check', file]);
    expect(check.exitCode).toBe(0);
    expect(check.stderr).toMatch(/^regmigrate: warning: on this machine, a run would refuse these 2 files:\n/);
    expect(check.stderr).toContain(`\n  output.report: "${gone}/report.json": its directory ${gone} does not exist`);
    expect(check.stderr).toContain(`\n  sync.state: "${gone}/state.json": its directory ${gone} does not exist`);
    // push takes output.report from the file (not sync.state): the error names the setting, not --report.
    const push = await runCli(['push', '--config', file]);
    expect(push.exitCode).toBe(2);
    expect(push.stderr.split('\n')[0]).toBe(`regmigrate: --config ${file}: output.report: "${gone}/report.json": its directory ${gone} does not exist`);
    // A flag given on the command line is the flag's to check, and named so.
    const flag = await runCli(['push', '--config', file, '--report', path.join(gone, 'flag.json')]);
    expect(flag.exitCode).toBe(2);
    expect(flag.stderr).toMatch(/^regmigrate: --report .*flag\.json: its directory .* does not exist$/m);
  });

  it('an empty file holds no settings: a warning, not "valid (0 settings)"; a YAML error ends without a dangling colon', async () => {
    const dir = tempDir();
    const empty = path.join(dir, 'empty.yaml');
    writeFileSync(empty, '');
    const check = await runCli(['config', 'check', empty]);
    expect(check.exitCode).toBe(0);
    expect(check.stderr).toBe(`regmigrate: warning: ${empty} holds no settings`);
    expect(check.stdout).toBe('');
    const broken = path.join(dir, 'broken.yaml');
    writeFileSync(broken, 'a: b: c\n');
    const yaml = await runCli(['config', 'check', broken]);
    expect(yaml.exitCode).toBe(2);
    expect(yaml.stderr.split('\n')[0]).toMatch(/^regmigrate: \/\S*broken\.yaml: not valid YAML: .*line 1, column \d+$/);
  });
});

describe('whole-number settings: one range for the flag and for the config key', () => {
  // The documented ranges: [setting (its key in the file), section, least, most].
  const RANGES = [
    ['timeout', 'destination', 1, 3600],
    ['retries', 'destination', 1, 100],
    ['keepLatest', 'selection', 1, 1_000_000],
    ['shards', 'selection', 1, 10_000],
    ['concurrency', 'transfer', 1, 256],
    ['maxRequests', 'transfer', 2, 1024],
    ['waitLock', 'sync', 0, 86_400],
    ['lockStale', 'sync', 1, 86_400],
    ['maxDelete', 'sync', 1, 10_000_000],
  ] as const;
  type Range = (typeof RANGES)[number];
  const flagOf = (setting: string): string => `--${setting.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  /** A config file setting each to `value(range)`. */
  function configWith(value: (r: Range) => number): string {
    const file = path.join(tempDir(), 'regmigrate.yaml');
    const sections = [...new Set(RANGES.map((r) => r[1]))];
    writeFileSync(file, sections.map((s) => `${s}:\n${RANGES.filter((r) => r[1] === s).map((r) => `  ${r[0]}: ${value(r)}\n`).join('')}`).join(''));
    return file;
  }
  // A sync (with --delete-extra and a journal, which --max-delete goes with, told which shard it is) whose report
  // would go to a directory that does not exist: every option is checked before that, and that before any work,
  // so a run whose values are all accepted ends at this error, and one with a refused value before it.
  const sync = (extra: string[]) =>
    runCli(['sync', '/nonexistent', '--to', '127.0.0.1:9', '--delete-extra', '--state', path.join(tempDir(), 'state.json'), '--report', '/nonexistent-dir/report.json', ...extra], {
      env: { JOB_COMPLETION_INDEX: '0' },
    });
  const notThere = 'regmigrate: --report /nonexistent-dir/report.json: its directory /nonexistent-dir does not exist';

  it.each([
    ['the most', (r: Range) => r[3]],
    ['the least', (r: Range) => r[2]],
  ])('%s of each range is accepted, as a flag and in the file', async (_, value) => {
    const flags = await sync(RANGES.flatMap((r) => [flagOf(r[0]), String(value(r))]));
    expect(flags.exitCode).toBe(2);
    expect(flags.stderr.split('\n')[0]).toBe(notThere);
    const file = configWith(value);
    const check = await runCli(['config', 'check', file]);
    expect(check.exitCode, check.stderr).toBe(0);
    expect(check.stdout).toContain(`valid (${RANGES.length} settings)`);
    const fromFile = await sync(['--config', file]);
    expect(fromFile.stderr.split('\n')[0]).toBe(notThere);
  });

  it.each([
    ['one more than the most', (r: Range) => r[3] + 1],
    ['one less than the least', (r: Range) => r[2] - 1],
  ])('%s is refused, each setting named, as a flag and in the file', async (_, value) => {
    const flags = await sync(RANGES.flatMap((r) => [flagOf(r[0]), String(value(r))]));
    expect(flags.exitCode).toBe(2);
    for (const r of RANGES) expect(flags.stderr).toContain(`${flagOf(r[0])} must be a whole number from ${r[2]} to ${r[3]}, not "${value(r)}"`);
    // In the file, a negative number is the schema's to refuse (not a whole number of anything), the rest the range's.
    const lines = RANGES.map((r) => `${r[1]}.${r[0]}: ${value(r) < 0 ? 'expected a whole number' : `${value(r)} is not a whole number from ${r[2]} to ${r[3]}`}`);
    const file = configWith(value);
    const check = await runCli(['config', 'check', file]);
    expect(check.exitCode).toBe(2);
    expect(check.stderr).toContain(`${RANGES.length} problems:`);
    for (const line of lines) expect(check.stderr).toContain(`\n  ${line}`);
    const fromFile = await sync(['--config', file]);
    expect(fromFile.exitCode).toBe(2);
    for (const line of lines) expect(fromFile.stderr).toContain(`\n  ${line}`);
  });

  it('--final-rounds (a flag only) has its range too', async () => {
    for (const [value, ok] of [['100', true], ['101', false], ['0', false]] as const) {
      const run = await sync(['--final', '--final-rounds', value]);
      expect(run.stderr.split('\n')[0], value).toBe(ok ? notThere : `regmigrate: --final-rounds must be a whole number from 1 to 100, not "${value}"`);
    }
  });
});

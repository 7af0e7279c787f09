import path from 'node:path';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { addCollidingBusybox, buildDemoStorage, buildFaultyStorage, type BuiltTree } from '../fixtures/trees.js';
import { SCAN_CSV_HEADER } from '../src/inventory/render.js';
import { DEMO_STORAGE, PROJECT, runCli } from './helpers/cli.js';
import { startRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

interface ScanJson {
  schemaVersion: number;
  kind: string;
  tags: Array<{
    repository: string;
    tag: string;
    digest: string | null;
    mediaType: string | null;
    platforms: string[];
    size: number;
    blobCount: number;
    status: string;
    blobs: Array<{ digest: string; size: number }>;
    faults: Array<{ kind: string; digest: string | null; message: string }>;
  }>;
  summary: { tags: number; faultyTags: number; uniqueBlobs: number; faults: Record<string, number> };
}

describe('regmigrate scan (built CLI)', () => {
  let faulty: BuiltTree;
  beforeAll(() => {
    faulty = buildFaultyStorage(path.join(tempDir(), 'registry'));
  });

  it('prints a table of the demo storage and exits 0', async () => {
    const result = await runCli(['scan', DEMO_STORAGE]);
    expect(result.exitCode).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toMatch(/^REPOSITORY\s+TAG\s+DIGEST\s+TYPE\s+PLATFORMS\s+SIZE\s+PUSHED \(UTC\)\s+STATUS$/);
    expect(lines.find((l) => l.startsWith('infra/tools/kubectl '))).toMatch(/1\.29\s+[0-9a-f]{12}\s+docker-list\s+linux\/amd64,linux\/arm64\/v8\s+[\d.]+ KiB\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+ok/);
    expect(result.stdout).toContain('5 repositories, 7 tags (0 faulty)');
  });

  it.each(['json', 'csv'])('--output %s is written a batch of repositories at a time: the same document as the whole scan', async (output) => {
    // --verify makes the scan whole (each blob hashed once across the registry); without it, it streams.
    const healthyWhole = await runCli(['scan', DEMO_STORAGE, '--output', output, '--verify']);
    const healthyBatched = await runCli(['scan', DEMO_STORAGE, '--output', output], { env: { REGMIGRATE_BATCH_TAGS: '1' } });
    expect(healthyBatched).toEqual(healthyWhole);
    const whole = await runCli(['scan', faulty.root, '--output', output, '--verify']);
    const batched = await runCli(['scan', faulty.root, '--output', output], { env: { REGMIGRATE_BATCH_TAGS: '1' } });
    expect(batched.exitCode).toBe(whole.exitCode);
    // A corrupt blob is found by hashing (--verify only): leave those tags out; every other byte is the same.
    const corrupt = (output === 'json' ? (JSON.parse(whole.stdout) as ScanJson).tags.filter((t) => t.faults.some((f) => f.kind === 'corrupt-blob')).map((t) => `${t.repository},${t.tag},`) : whole.stdout.split('\n').filter((l) => l.includes(',corrupt-blob,')).map((l) => l.split(',').slice(0, 2).join(',') + ','));
    expect(corrupt.length).toBeGreaterThan(0);
    const withoutHashing = (text: string): unknown => {
      if (output === 'csv') return text.split('\n').filter((l) => !corrupt.some((c) => l.startsWith(c)));
      const doc = JSON.parse(text) as ScanJson;
      return { ...doc, summary: null, tags: doc.tags.filter((t) => !corrupt.includes(`${t.repository},${t.tag},`)) };
    };
    expect(withoutHashing(batched.stdout)).toEqual(withoutHashing(whole.stdout));
    expect(batched.stdout.split('\n').length).toBeGreaterThan(faulty.tags.length);
  });

  it('writes only JSON to stdout with --output json, exits 1 on faults, and names every fault', async () => {
    const result = await runCli(['scan', faulty.root, '--output', 'json', '--verify']);
    expect(result.exitCode).toBe(1);
    const doc = JSON.parse(result.stdout) as ScanJson;
    expect(doc.schemaVersion).toBe(1);
    expect(doc.kind).toBe('regmigrate.scan');
    expect(doc.tags).toHaveLength(faulty.tags.length);
    for (const expected of faulty.tags) {
      const tag = doc.tags.find((t) => t.repository === expected.repository && t.tag === expected.tag)!;
      expect(tag.digest).toBe(expected.digest ?? null);
      if (expected.fault) {
        expect(tag.status).toBe('faulty');
        expect(tag.faults.map((f) => f.kind)).toContain(expected.fault.kind);
      } else {
        expect(tag.status).toBe('ok');
        expect(tag.blobCount).toBe(tag.blobs.length);
      }
    }
    expect(doc.summary.faultyTags).toBe(faulty.tags.filter((t) => t.fault).length);
    // The summary line goes to stderr, never mixed into the data.
    expect(result.stderr).toContain('faulty');
  });

  it('writes one CSV row per tag', async () => {
    const result = await runCli(['scan', faulty.root, '--output', 'csv']);
    expect(result.exitCode).toBe(1);
    const rows = result.stdout.trimEnd().split('\n');
    expect(rows[0]).toBe(SCAN_CSV_HEADER.join(','));
    expect(rows).toHaveLength(faulty.tags.length + 1);
    expect(rows.find((r) => r.startsWith('broken/layer,v1,'))).toContain('missing-blob');
    expect(rows.find((r) => r.startsWith('busybox,1.36,'))).toMatch(/,ok,,\d{4}-\d\d-\d\dT[\d:.]+Z$/);
    // The documented column list is the header users script against.
    expect(readFileSync(path.join(PROJECT, 'docs/commands/scan.md'), 'utf8')).toContain(`one row per tag: \`${SCAN_CSV_HEADER.join(',')}\``);
  });

  it('lists faults in the table with repository, tag and digest on one line each', async () => {
    const result = await runCli(['scan', faulty.root]);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/^ {2}broken\/layer:v1: missing-blob: layer blob sha256:[0-9a-f]{64} is missing/m);
    expect(result.stdout).toMatch(/^ {2}broken\/link:v1: invalid-link: tag link .*current\/link holds "sha256:12"/m);
  });

  it.each([
    [['scan', '/nonexistent/storage'], /\/nonexistent\/storage: no such file or directory/],
    [['scan', DEMO_STORAGE, '--output', 'xml'], /--output must be table, json, csv or html, not "xml"/],
    [['scan', DEMO_STORAGE, '--output', 'xml', '--concurrency', 'lots'], /not "xml".*--concurrency must be a whole number/],
    [['scan'], /scan: give the registry storage root, or "source:" in --config/],
    [['scan', DEMO_STORAGE, '--bogus'], /^regmigrate: unknown option '--bogus'$/m],
    // diff uploads nothing: the upload options are not its own.
    [['diff', DEMO_STORAGE, '--to', '127.0.0.1:9', '--limit-rate', '1MiB/s'], /^regmigrate: unknown option '--limit-rate'$/m],
    [['diff', DEMO_STORAGE, '--to', '127.0.0.1:9', '--chunk-size', '16MiB'], /^regmigrate: unknown option '--chunk-size'$/m],
    [['scan', path.join(DEMO_STORAGE, 'docker', 'registry', 'v2', 'repositories')], /not a registry storage .*\nhint: it is inside one: give its root, \/.*demo-storage$/m],
  ])('exits 2 with a one-line message for %j', async (args, message) => {
    const result = await runCli(args);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe('');
  });

  it('exits 2 when the path is not a registry storage', async () => {
    const result = await runCli(['scan', path.join(DEMO_STORAGE, '..')]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/not a registry storage/);
  });
});

describe('scan counts untagged manifests', () => {
  it('in the summary line and the JSON summary', async () => {
    const root = path.join(tempDir(), 'registry');
    const { buildDemoStorage } = await import('../fixtures/trees.js');
    buildDemoStorage(root);
    // team/api:1.0 was overwritten in the demo: its old manifest is still in revisions, untagged.
    const result = await runCli(['scan', root, '--output', 'json']);
    expect((JSON.parse(result.stdout) as { summary: { untaggedManifests: number } }).summary.untaggedManifests).toBe(1);
    expect(result.stderr).toMatch(/, 1 untagged manifest$/m);
  });
});

describe('scan finds what push would refuse', () => {
  it.each([
    ['table', ['--output', 'table']],
    ['json, streamed', ['--output', 'json']],
    ['json with a tag selection', ['--output', 'json', '--tag-include', '*']],
  ])('two sources meeting at one destination name are a name-collision fault, as in push --dry-run (%s)', async (_, args) => {
    const root = path.join(tempDir(), 'registry');
    buildDemoStorage(root);
    addCollidingBusybox(root);
    const registry = await startRegistry();
    const plan = JSON.parse((await runCli(['push', root, '--to', registry.host, '--dry-run', '--output', 'json'])).stdout) as { rejected: Array<{ source: string; reason: string }> };
    const collisions = plan.rejected.filter((r) => r.reason.startsWith('name-collision:'));
    expect(collisions.map((r) => r.source)).toEqual(['library/busybox:1.36']);
    const scan = await runCli(['scan', root, ...args]);
    expect(scan.exitCode).toBe(1);
    const summary = args.includes('json') ? (JSON.parse(scan.stdout) as ScanJson).summary : undefined;
    if (summary) {
      expect(summary.faults['name-collision']).toBe(1);
      const tag = (JSON.parse(scan.stdout) as ScanJson).tags.find((t) => `${t.repository}:${t.tag}` === 'library/busybox:1.36')!;
      expect(tag.faults.map((f) => `${f.kind}: ${f.message}`)).toEqual([collisions[0]!.reason]);
    } else {
      expect(scan.stdout).toContain(`  library/busybox:1.36: ${collisions[0]!.reason}`);
    }
  });

  it('a tag selection that keeps nothing says so, and how many tags it left out', async () => {
    const result = await runCli(['scan', DEMO_STORAGE, '--tag-include', 'no-such-tag-*']);
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toMatch(/warning: the selection kept none of the 7 tags in /);
    expect(result.stderr).not.toMatch(/no tags found/);
  });
});

describe('a selection that keeps nothing: one warning on stderr in every command, the exit status unchanged', () => {
  const v2 = path.join(DEMO_STORAGE, 'docker', 'registry', 'v2');
  const warning = `regmigrate: warning: the selection kept none of the 7 tags in ${v2}`;
  /** stderr's lines that are exactly `line` (the CLI's last newline is not in `stderr`). */
  const linesOf = (stderr: string, line: string): number => stderr.split('\n').filter((l) => l === line).length;

  it.each([
    ['table', []],
    ['json (streamed)', ['--output', 'json']],
  ])('scan --include matching no repository (%s)', async (_, output) => {
    const result = await runCli(['scan', DEMO_STORAGE, '--include', 'nosuch/**', ...output]);
    expect(result.exitCode).toBe(0);
    expect(linesOf(result.stderr, warning)).toBe(1);
    expect(result.stderr).not.toMatch(/no tags found/);
  });

  it('scan of a tar: the archive is named by its path alone', async () => {
    const { execa } = await import('execa');
    const tar = path.join(tempDir(), 'demo.tar');
    await execa('tar', ['-cf', tar, '-C', DEMO_STORAGE, 'docker']);
    const result = await runCli(['scan', tar, '--tag-include', 'no-such-tag-*']);
    expect(result.exitCode).toBe(0);
    expect(linesOf(result.stderr, `regmigrate: warning: the selection kept none of the 7 tags in ${tar}`)).toBe(1);
  });

  it('push, push --dry-run, diff, sync and export', async () => {
    const registry = await startRegistry();
    const none = ['--include', 'nosuch/**'];
    const runs = {
      push: await runCli(['push', DEMO_STORAGE, '--to', registry.host, ...none]),
      'push --dry-run': await runCli(['push', DEMO_STORAGE, '--to', registry.host, '--dry-run', ...none]),
      diff: await runCli(['diff', DEMO_STORAGE, '--to', registry.host, ...none]),
      sync: await runCli(['sync', DEMO_STORAGE, '--to', registry.host, '--state', path.join(tempDir(), 'state.json'), ...none]),
      export: await runCli(['export', DEMO_STORAGE, '--out', path.join(tempDir(), 'out'), ...none]),
    };
    for (const [command, result] of Object.entries(runs)) {
      expect(result.exitCode, `${command}: ${result.stderr}`).toBe(0);
      expect(linesOf(result.stderr, warning), `${command}: ${result.stderr}`).toBe(1);
    }
    // With --log-format json the warning is a record like every other line.
    const json = await runCli(['push', DEMO_STORAGE, '--to', registry.host, '--log-format', 'json', ...none]);
    const records = json.stderr.trim().split('\n').map((l) => JSON.parse(l) as { level: string; event: string; message?: string });
    expect(records).toContainEqual(expect.objectContaining({ level: 'warn', event: 'notice', message: `the selection kept none of the 7 tags in ${v2}` }));
  });
});

/**
 * A run the event loop drains under (work left, nothing left to wake it) is not done: the CLI says so in one line,
 * writes the report so far and exits 70, never 0 with nothing said. The stall is made by the test-only
 * REGMIGRATE_TEST_HANG=batch:N (cli/watch-transfer.ts): when batch N is planned, the destination's request budget hands out
 * no more slots, as a lost wake-up does, so the run waits on promises nobody settles.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addImage, makeLayer, StorageBuilder } from '../fixtures/builder.js';
import { describeWaiting } from '../src/cli/watch-transfer.js';
import { DestinationBudget } from '../src/destination/budget.js';
import { runCli } from './helpers/cli.js';
import { startRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

/** Three repositories of two small tags each: with two tags a batch, three batches. */
function buildCorpus(extra?: (builder: StorageBuilder) => void): string {
  const root = path.join(tempDir('regmigrate-stall-'), 'registry');
  const builder = new StorageBuilder(root);
  for (const repo of ['team/a', 'team/b', 'team/c']) {
    for (const tag of ['v1', 'v2']) {
      builder.tag(repo, tag, addImage(builder, repo, { format: 'oci', layers: [makeLayer(`${repo}-${tag}`, `${repo}:${tag}`)], label: `${repo}:${tag}` }).digest);
    }
  }
  extra?.(builder);
  return root;
}

const BATCHES = { REGMIGRATE_BATCH_TAGS: '2' };

interface ReportJson {
  images: Array<{ source: string; status: string }>;
}

describe('a run that stops making progress', () => {
  it('push: one line naming what it waited for, the report so far written, exit 70', async () => {
    const registry = await startRegistry();
    const dir = tempDir('regmigrate-stall-out-');
    const report = path.join(dir, 'report.json');
    const metrics = path.join(dir, 'regmigrate.prom');
    const result = await runCli(['push', buildCorpus(), '--to', registry.host, '--report', report, '--metrics-file', metrics, '--quiet'], { env: { ...BATCHES, REGMIGRATE_TEST_HANG: 'batch:2' } });

    expect(result.exitCode, result.stderr).toBe(70);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trim().split('\n');
    expect(lines, result.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^regmigrate: internal error: push stopped before it was done: nothing was left that could wake what it waited for \(batch 2 of 3: 0 of 2 images done; at the destination 0 requests in flight \(budget \d+\), 0 uploads \(budget \d+\), \d+ requests and 0 uploads waiting for a slot\); metrics written to .*regmigrate\.prom; the report so far is in .*report\.json; exit 70: this is a bug, please report it$/);
    // The first batch landed and was verified before the stall; nothing of the second is claimed.
    const images = (JSON.parse(readFileSync(report, 'utf8')) as ReportJson).images;
    expect(images.map((i) => `${i.source} ${i.status}`)).toEqual(['team/a:v1 verified', 'team/a:v2 verified']);
    // Monitoring hears of it: the run did not succeed.
    expect(readFileSync(metrics, 'utf8')).toMatch(/^regmigrate_last_run_exit_code{command="push"} 70$/m);
    expect(readFileSync(metrics, 'utf8')).toMatch(/^regmigrate_last_run_success{command="push"} 0$/m);
  });

  it('sync --log-format json: the line is a JSON error record, the lock is released, exit 70', async () => {
    const registry = await startRegistry();
    const dir = tempDir('regmigrate-stall-out-');
    const state = path.join(dir, 'state.json');
    const report = path.join(dir, 'report.csv');
    const result = await runCli(['sync', buildCorpus(), '--to', registry.host, '--state', state, '--report', report, '--log-format', 'json'], { env: { ...BATCHES, REGMIGRATE_TEST_HANG: 'batch:3' } });

    expect(result.exitCode, result.stderr).toBe(70);
    const last = JSON.parse(result.stderr.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(last).toMatchObject({ level: 'error', event: 'error', code: 'INTERNAL', exitCode: 70 });
    expect(String(last.message)).toMatch(/^sync stopped before it was done: .*\(batch 3 of 3: 0 of 2 images done; at the destination .*\); the report so far is in .*report\.csv; exit 70/);
    expect(readFileSync(report, 'utf8').trim().split('\n').slice(1).map((l) => l.split(',').slice(0, 6).join(' '))).toEqual([
      expect.stringMatching(/^team\/a:v1 team\/a:v1 sha256:\S+ \S+ \d+ verified$/),
      expect.stringMatching(/^team\/a:v2 team\/a:v2 sha256:\S+ \S+ \d+ verified$/),
      expect.stringMatching(/^team\/b:v1 team\/b:v1 sha256:\S+ \S+ \d+ verified$/),
      expect.stringMatching(/^team\/b:v2 team\/b:v2 sha256:\S+ \S+ \d+ verified$/),
    ]);
    expect(existsSync(`${state}.lock`)).toBe(false);
  });

  it.each([
    ['every image verified: exit 0', undefined, 0],
    ['a tag whose manifest is missing: exit 1', (b: StorageBuilder) => b.tag('team/broken', 'v1', `sha256:${'0'.repeat(64)}`), 1],
  ])('a run that ends as before: %s, nothing said of a stall', async (_, extra, exitCode) => {
    const registry = await startRegistry();
    const report = path.join(tempDir('regmigrate-stall-out-'), 'report.json');
    const result = await runCli(['push', buildCorpus(extra), '--to', registry.host, '--report', report, '--quiet'], { env: BATCHES });

    expect(result.exitCode, result.stderr).toBe(exitCode);
    expect(result.stderr).not.toMatch(/stopped before it was done/);
    expect((JSON.parse(readFileSync(report, 'utf8')) as ReportJson).images.filter((i) => i.status === 'verified')).toHaveLength(6);
  });
});

describe('what the line says waits at the destination', () => {
  it('requests in flight and queued, retries waiting for room and asleep, and a Retry-After hold', async () => {
    // A clock that stands still and whose timers never fire: the hold stays on while the test looks.
    const budget = new DestinationBudget({ requests: { initial: 4, floor: 2, cap: 4 }, uploads: { initial: 1, floor: 1, cap: 1 } }, { now: () => 0, later: () => undefined });
    const never = new Promise<never>(() => undefined);
    const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    // Four requests in flight, then answered: one is refused (Retry-After: 1, the budget halves) and waits for the
    // hold and room; one more is refused and sleeps before its retry; two hang. Three more wait for a slot.
    let answer: () => void = () => undefined;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    const refused = async (sleep: (ms: number) => Promise<void>): Promise<void> => {
      const sent = budget.onSend();
      await answered;
      budget.onResponse(429, 1000, sent);
      await budget.pauseForRetry(1000, sleep);
    };
    void budget.requests.run(() => refused(async () => undefined));
    void budget.requests.run(() => refused(() => never));
    for (let i = 0; i < 5; i++) void budget.requests.run(() => never);
    await settle();
    answer();
    await settle();

    expect(describeWaiting(budget)).toBe(
      '4 requests in flight (budget 2), 0 uploads (budget 1), 3 requests and 0 uploads waiting for a slot, 1 retry waiting in its slot for room, 1 step asleep before a retry, new work held back 1.0 s more (Retry-After)',
    );
  });
});

/**
 * Numbers people read: sizes and rates at a sensible precision, plurals, and the rate and ETA of progress output
 * (plain lines and JSON records), driven by a clock the test moves.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PLAN_VERSION, type Plan, type PlannedImage } from '../src/plan/plan.js';
import { createJsonLog } from '../src/report/log.js';
import { createProgress, describeRate } from '../src/report/progress.js';
import { RateMeter } from '../src/report/rate.js';
import type { PushEvent, PushResult } from '../src/push/push.js';
import { DestinationBudget } from '../src/destination/budget.js';
import { count, formatBytes, formatDuration, formatRate } from '../src/util/format.js';
import { VERSION } from '../src/version.js';
import { PROJECT } from './helpers/cli.js';

const MiB = 1024 * 1024;

describe('formatting', () => {
  it.each([
    [0, '0 B'],
    [761.9604729870889, '762 B'],
    [1023.4, '1023 B'],
    [1536, '1.5 KiB'],
    [100.26 * 1024, '100 KiB'],
    [3.14159 * MiB, '3.1 MiB'],
    [5 * 1024 ** 4, '5.0 TiB'],
    // The precision and the unit follow the rounded value.
    [1023.6, '1.0 KiB'],
    [102375, '100 KiB'],
    [1048575, '1.0 MiB'],
  ])('formatBytes(%d) = %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it.each([
    [761.9604729870889, '762 B/s'],
    [12.345 * MiB, '12.3 MiB/s'],
    [Number.NaN, '0 B/s'],
  ])('formatRate(%d) = %s', (rate, text) => {
    expect(formatRate(rate)).toBe(text);
  });

  it.each([
    [450, '450 ms'],
    [61_234, '61.2 s'],
    [754_000, '12 min 34 s'],
    [3 * 3600_000 + 25 * 60_000 + 10_000, '3 h 25 min'],
    [999.6, '1.0 s'],
    [119_960, '2 min 0 s'],
  ])('formatDuration(%d) = %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it.each([
    [0, 'image', undefined, '0 images'],
    [1, 'image', undefined, '1 image'],
    [2, 'image', undefined, '2 images'],
    [1, 'repository', 'repositories', '1 repository'],
    [3, 'repository', 'repositories', '3 repositories'],
  ])('count(%d, %s)', (n, singular, plural, text) => {
    expect(count(n, singular, plural)).toBe(text);
  });

  it("the version reports name is package.json's", () => {
    expect(VERSION).toBe((JSON.parse(readFileSync(path.join(PROJECT, 'package.json'), 'utf8')) as { version: string }).version);
  });
});

describe('RateMeter', () => {
  it('a steady rate: current, smoothed and ETA agree', () => {
    let now = 1_000_000;
    const meter = new RateMeter(() => now);
    for (let s = 0; s < 300; s++) {
      for (let i = 0; i < 4; i++) {
        meter.add(MiB / 4);
        now += 250;
      }
    }
    const rate = meter.snapshot(600 * MiB);
    expect(rate.current).toBeCloseTo(MiB, -3);
    expect(rate.smoothed).toBeCloseTo(MiB, -3);
    expect(rate.etaSeconds).toBeCloseTo(600, 0);
  });

  it('a stall: the current rate drops to 0 at once, the smoothed one gradually, the ETA grows', () => {
    let now = 0;
    const meter = new RateMeter(() => now);
    for (let s = 0; s < 120; s++) {
      now += 1000;
      meter.add(2 * MiB);
    }
    const before = meter.snapshot(100 * MiB);
    now += 30_000;
    const stalled = meter.snapshot(100 * MiB);
    expect(stalled.current).toBe(0);
    expect(stalled.smoothed).toBeLessThan(before.smoothed);
    expect(stalled.smoothed).toBeGreaterThan(0);
    expect(stalled.etaSeconds!).toBeGreaterThan(before.etaSeconds!);
  });

  it('under --limit-rate, a burst at the start does not lift the smoothed rate or the ETA above the cap', () => {
    let now = 0;
    const cap = 400 * 1024;
    const meter = new RateMeter(() => now, cap);
    meter.add(2.3 * MiB);
    now += 1000;
    meter.add(cap);
    now += 1000;
    const rate = meter.snapshot(14 * MiB);
    expect(rate.smoothed).toBe(cap);
    expect(rate.etaSeconds).toBeCloseTo((14 * MiB) / cap, 6);
  });

  it('before any byte: rate 0 and no ETA', () => {
    let now = 0;
    const meter = new RateMeter(() => now);
    now += 5000;
    expect(meter.snapshot(MiB)).toEqual({ current: 0, smoothed: 0, etaSeconds: undefined });
  });
});

/** A plan of one image and one 100 MiB blob: what progress needs of a `planned` event. */
function plannedEvent(): PushEvent {
  const image: PlannedImage = {
    source: 'team/api:1.0',
    sourceRepository: 'team/api',
    tag: '1.0',
    repository: 'team/api',
    project: 'team',
    digest: `sha256:${'a'.repeat(64)}`,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    size: 100 * MiB,
    manifests: [],
    blobs: [`sha256:${'b'.repeat(64)}`],
  };
  const plan: Plan = { schemaVersion: PLAN_VERSION, kind: 'regmigrate.plan', projectsToCreate: [], images: [image], existing: [], skipped: [], immutable: [], blobs: [{ digest: image.blobs[0]!, size: 100 * MiB, home: 'team/api', mounts: [] }], rejected: [], quotas: [], access: [] };
  return { type: 'planned', plan, batch: 0, batches: 1 };
}

function collect(stream: PassThrough): () => string {
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return () => text;
}

describe('describeRate', () => {
  it.each([
    [0.956, 'ETA <1 s'],
    [0, 'ETA <1 s'],
    [1.4, 'ETA 1.4 s'],
    [undefined, 'ETA unknown'],
  ])('ETA of %s seconds reads %s', (etaSeconds, text) => {
    expect(describeRate({ current: MiB, smoothed: MiB, etaSeconds })).toBe(`1.0 MiB/s now, 1.0 MiB/s smoothed, ${text}`);
  });
});

describe('progress output carries the rate and the time left', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** 1 MiB a second for `seconds`, in quarter-second steps. */
  function send(onEvent: (e: PushEvent) => void, seconds: number): void {
    for (let i = 0; i < seconds * 4; i++) {
      onEvent({ type: 'bytes', bytes: MiB / 4 });
      vi.advanceTimersByTime(250);
    }
  }

  it('plain lines (not a terminal): current rate, smoothed rate and ETA', () => {
    const stream = new PassThrough();
    const output = collect(stream);
    const progress = createProgress({ stream, isTTY: false, quiet: false, intervalSeconds: 30 });
    progress.onEvent(plannedEvent());
    send(progress.onEvent, 40);
    progress.stop();
    expect(output()).toMatch(/^plan: 1 image to push, 0 already there, up to 100 MiB to upload$/m);
    // At 30 s: 30 MiB of 100 uploaded at 1 MiB/s, 70 s left.
    expect(output()).toMatch(/^pushed 0\/1 image \(0 failed\), uploaded 30\.0 MiB of up to 100 MiB; 1\.0 MiB\/s now, 1\.0 MiB\/s smoothed, ETA 70\.0 s$/m);
  });

  it('--log-format json: a progress record with bytes per second (current and smoothed) and the seconds left', () => {
    const stream = new PassThrough();
    const output = collect(stream);
    const log = createJsonLog(stream, { intervalSeconds: 30 });
    log.onEvent(plannedEvent());
    send(log.onEvent, 40);
    log.stop();
    const records = output().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const progress = records.filter((r) => r.event === 'progress');
    expect(progress).toHaveLength(1);
    expect(progress[0]).toMatchObject({ level: 'info', images: 1, imagesDone: 0, failed: 0, bytes: 30 * MiB, bytesTotal: 100 * MiB, bytesPerSecond: MiB, bytesPerSecondSmoothed: MiB, etaSeconds: 70 });
  });

  it('--log-format json: an image a stop left unfinished is interrupted, in its record and in the progress counts, not failed', () => {
    const stream = new PassThrough();
    const output = collect(stream);
    const log = createJsonLog(stream, { intervalSeconds: 30 });
    const planned = plannedEvent();
    log.onEvent(planned);
    const image = (planned as Extract<PushEvent, { type: 'planned' }>).plan.images[0]!;
    log.onEvent({ type: 'image-done', image, ok: false, reason: 'interrupted', interrupted: true });
    log.onEvent({ type: 'image-done', image: { ...image, tag: '1.1', source: 'team/api:1.1' }, ok: false, reason: 'corrupt-blob: …' });
    vi.advanceTimersByTime(30_000);
    log.stop();
    const records = output().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.filter((r) => r.event === 'image-interrupted')).toEqual([expect.objectContaining({ level: 'warn', repo: 'team/api', tag: '1.0' })]);
    expect(records.filter((r) => r.event === 'image-failed')).toEqual([expect.objectContaining({ level: 'error', tag: '1.1' })]);
    expect(records.find((r) => r.event === 'progress')).toMatchObject({ imagesDone: 2, failed: 1, interrupted: 1 });
  });

  /** A destination budget with `n` requests and one upload in flight (never finished: the test ends first). */
  function busyBudget(n: number): DestinationBudget {
    const budget = new DestinationBudget({ requests: { initial: 24, floor: 2, cap: 64 }, uploads: { initial: 8, floor: 1, cap: 8 } });
    for (let i = 0; i < n; i++) void budget.requests.run(() => new Promise<void>(() => undefined));
    void budget.uploads.run(() => new Promise<void>(() => undefined));
    return budget;
  }

  it('plain lines show the requests in flight against the budget', () => {
    const stream = new PassThrough();
    const output = collect(stream);
    const progress = createProgress({ stream, isTTY: false, quiet: false, intervalSeconds: 30, budget: busyBudget(16) });
    progress.onEvent(plannedEvent());
    send(progress.onEvent, 31);
    progress.stop();
    expect(output()).toMatch(/ETA 70\.0 s; 16 requests in flight \(budget 24\), 1 upload \(budget 8\)$/m);
  });

  it('--log-format json: the budget in each progress record and at the end, and a budget record when it halves', () => {
    const stream = new PassThrough();
    const output = collect(stream);
    const budget = busyBudget(16);
    const log = createJsonLog(stream, { intervalSeconds: 30, budget });
    log.onEvent(plannedEvent());
    send(log.onEvent, 31);
    budget.onResponse(429, undefined, budget.onSend());
    log.finished({ reports: [], stats: { bytesUploaded: 0 }, durationMs: 1 } as unknown as PushResult);
    const records = output().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.find((r) => r.event === 'progress')).toMatchObject({ requestsInFlight: 16, requestBudget: 24, uploadsInFlight: 1, uploadBudget: 8 });
    expect(records.filter((r) => r.event === 'budget')).toEqual([
      expect.objectContaining({ level: 'warn', budget: 'requests', from: 24, to: 12, reason: 'HTTP 429' }),
      expect.objectContaining({ level: 'warn', budget: 'uploads', from: 8, to: 4, reason: 'HTTP 429' }),
    ]);
    expect(records.find((r) => r.event === 'run-finished')).toMatchObject({ requestBudget: 12, uploadBudget: 4 });
  });

  it('bars on a terminal: the images bar shows the requests in flight against the budget', () => {
    const stream = Object.assign(new PassThrough(), { isTTY: true, columns: 200, cursorTo: () => true, clearLine: () => true, moveCursor: () => true });
    const output = collect(stream);
    const progress = createProgress({ stream, isTTY: true, quiet: false, budget: busyBudget(5) });
    progress.onEvent(plannedEvent());
    vi.advanceTimersByTime(1000);
    progress.stop();
    expect(output()).toMatch(/0\/1 image; 5 requests in flight \(budget 24\), 1 upload \(budget 8\)/);
  });

  it('bars on a terminal: the bytes bar shows the rates and the ETA', () => {
    const stream = Object.assign(new PassThrough(), { isTTY: true, columns: 200, cursorTo: () => true, clearLine: () => true, moveCursor: () => true });
    const output = collect(stream);
    const progress = createProgress({ stream, isTTY: true, quiet: false });
    progress.onEvent(plannedEvent());
    send(progress.onEvent, 20);
    vi.advanceTimersByTime(1000);
    progress.stop();
    expect(output()).toMatch(/20\.0 MiB of 100 MiB · 1\.0 MiB\/s now, 1\.0 MiB\/s smoothed, ETA 80\.0 s/);
  });
});

/**
 * Watching it run: Prometheus metrics (checked by promtool, served by a real Pushgateway), JSON logs that parse
 * line by line, and HTML reports rendered by headless Chromium with the network off.
 */
import { execa } from 'execa';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDemoStorage, buildFaultyStorage } from '../fixtures/trees.js';
import { PROJECT, runCli } from './helpers/cli.js';
import { measureLayout, pageRequests, printToPdf, renderHtml, screenshot } from './helpers/chromium.js';
import { startProxy } from './helpers/proxy.js';
import { startPushgateway } from './helpers/pushgateway.js';
import { startRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

const demo = () => buildDemoStorage(path.join(tempDir('regmigrate-src-'), 'registry'));

async function promtoolAccepts(file: string): Promise<void> {
  const check = await execa('promtool', ['check', 'metrics'], { input: readFileSync(file), reject: false });
  expect(check.exitCode, String(check.stdout) + String(check.stderr)).toBe(0);
}

function sample(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`) || l.startsWith(`${name}{${labels},`));
  expect(line, `${name}{${labels}} in\n${text}`).toBeDefined();
  return Number(line!.split(' ').at(-1));
}

describe('Prometheus metrics', () => {
  it('push and sync write a textfile-collector file promtool accepts, with the run in it', async () => {
    const registry = await startRegistry();
    const tree = demo();
    const dir = tempDir();
    const push = path.join(dir, 'push.prom');
    expect((await runCli(['push', tree.root, '--to', registry.host, '--metrics-file', push])).exitCode).toBe(0);
    await promtoolAccepts(push);
    const text = readFileSync(push, 'utf8');
    expect(sample(text, 'regmigrate_tags_total', 'command="push",outcome="verified"')).toBe(7);
    expect(sample(text, 'regmigrate_last_run_success', 'command="push"')).toBe(1);
    expect(sample(text, 'regmigrate_last_run_exit_code', 'command="push"')).toBe(0);
    expect(sample(text, 'regmigrate_blob_bytes_total', 'command="push",outcome="uploaded"')).toBeGreaterThan(50_000);
    expect(sample(text, 'regmigrate_blobs_total', 'command="push",outcome="mounted"')).toBeGreaterThan(0);
    expect(sample(text, 'regmigrate_requests_total', 'command="push"')).toBeGreaterThan(7);
    const started = sample(text, 'regmigrate_last_run_start_timestamp_seconds', 'command="push"');
    expect(sample(text, 'regmigrate_last_run_end_timestamp_seconds', 'command="push"')).toBeGreaterThanOrEqual(started);

    const sync = path.join(dir, 'sync.prom');
    const state = path.join(dir, 'state.json');
    expect((await runCli(['sync', tree.root, '--to', registry.host, '--state', state, '--metrics-file', sync])).exitCode).toBe(0);
    await promtoolAccepts(sync);
    const s = readFileSync(sync, 'utf8');
    expect(sample(s, 'regmigrate_tags_total', 'command="sync",outcome="unchanged"')).toBe(7);
    expect(sample(s, 'regmigrate_destination_behind_tags', 'command="sync"')).toBe(0);
    const succeeded = sample(s, 'regmigrate_last_success_timestamp_seconds', 'command="sync"');

    // A failing run (Harbor gone): success 0, its exit code, the faults it saw, and the last success kept.
    const faulty = buildFaultyStorage(path.join(tempDir('regmigrate-src-'), 'registry'));
    const failed = await runCli(['sync', faulty.root, '--to', '127.0.0.1:9', '--retries', '1', '--state', state, '--metrics-file', sync]);
    expect(failed.exitCode).toBe(3);
    await promtoolAccepts(sync);
    const f = readFileSync(sync, 'utf8');
    expect(sample(f, 'regmigrate_last_run_success', 'command="sync"')).toBe(0);
    expect(sample(f, 'regmigrate_last_run_exit_code', 'command="sync"')).toBe(3);
    expect(sample(f, 'regmigrate_last_success_timestamp_seconds', 'command="sync"')).toBe(succeeded);
  });

  it('faults by kind are counted', async () => {
    const registry = await startRegistry();
    const faulty = buildFaultyStorage(path.join(tempDir('regmigrate-src-'), 'registry'));
    const file = path.join(tempDir(), 'm.prom');
    expect((await runCli(['push', faulty.root, '--to', registry.host, '--metrics-file', file])).exitCode).toBe(1);
    await promtoolAccepts(file);
    const text = readFileSync(file, 'utf8');
    const expectedKinds = new Set(faulty.tags.filter((t) => t.fault).map((t) => t.fault!.kind));
    for (const kind of expectedKinds) expect(sample(text, 'regmigrate_faults_total', `command="push",kind="${kind}"`), kind).toBeGreaterThan(0);
    expect(sample(text, 'regmigrate_tags_total', 'command="push",outcome="failed"')).toBe(faulty.tags.filter((t) => t.fault).length);
  });

  it('--pushgateway: the Pushgateway serves the run, one group per shard', async () => {
    const registry = await startRegistry();
    const gateway = await startPushgateway();
    const tree = demo();
    for (const shard of ['0/2', '1/2']) {
      const result = await runCli(['push', tree.root, '--to', registry.host, '--pushgateway', gateway.url, '--metrics-job', 'migration', '--shard', shard]);
      expect(result.exitCode, result.stderr).toBe(0);
    }
    const scraped = await gateway.scrape();
    const counts = ['0', '1'].map((k) => sample(scraped, 'regmigrate_tags_total', `command="push",instance="",job="migration",outcome="verified",shard="${k}"`));
    expect(counts[0]! + counts[1]!).toBe(7);
    expect(sample(scraped, 'regmigrate_last_run_success', 'command="push",instance="",job="migration",shard="0"')).toBe(1);
  });
  it('a sync that leaves tags behind: the gauge counts them, in seconds-true timings, and fires the shipped alert', async () => {
    const registry = await startRegistry();
    const gateway = await startPushgateway();
    const faulty = buildFaultyStorage(path.join(tempDir('regmigrate-src-'), 'registry'));
    const dir = tempDir();
    const file = path.join(dir, 'sync.prom');
    const report = path.join(dir, 'report.json');
    const result = await runCli(['sync', faulty.root, '--to', registry.host, '--state', path.join(dir, 'state.json'), '--metrics-file', file, '--pushgateway', gateway.url, '--report', report]);
    expect(result.exitCode).toBe(1);
    await promtoolAccepts(file);
    const text = readFileSync(file, 'utf8');
    const failed = (JSON.parse(readFileSync(report, 'utf8')) as { images: Array<{ status: string }> }).images.filter((i) => i.status === 'failed').length;
    expect(failed).toBe(faulty.tags.filter((t) => t.fault).length);
    expect(failed).toBeGreaterThan(0);
    expect(sample(text, 'regmigrate_destination_behind_tags', 'command="sync"')).toBe(failed);
    // Seconds, as the name says: the duration is the distance between the two timestamps (Unix seconds).
    const started = sample(text, 'regmigrate_last_run_start_timestamp_seconds', 'command="sync"');
    const ended = sample(text, 'regmigrate_last_run_end_timestamp_seconds', 'command="sync"');
    expect(sample(text, 'regmigrate_last_run_duration_seconds', 'command="sync"')).toBeCloseTo(ended - started, 2);

    // What Prometheus scrapes from the Pushgateway, fed as it is to the alert shipped in deploy/: it fires.
    const scraped = await gateway.scrape();
    const series = scraped.split('\n').find((l) => l.startsWith('regmigrate_destination_behind_tags{'))!;
    expect(series, scraped).toBeDefined();
    const [labels, value] = series.split(' ');
    expect(Number(value)).toBe(failed);
    const rules = path.join(dir, 'rules');
    mkdirSync(rules);
    copyFileSync(path.join(PROJECT, 'deploy/prometheus/regmigrate-alerts.yaml'), path.join(rules, 'regmigrate-alerts.yaml'));
    const test = {
      rule_files: ['regmigrate-alerts.yaml'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [{ series: labels, values: `${value}x60` }],
          alert_rule_test: [
            { eval_time: '20m', alertname: 'RegmigrateDestinationBehind', exp_alerts: [] },
            {
              eval_time: '45m',
              alertname: 'RegmigrateDestinationBehind',
              exp_alerts: [{ exp_labels: { severity: 'warning', command: 'sync', job: 'regmigrate' }, exp_annotations: { summary: `Harbor is ${failed} tags behind the old registry` } }],
            },
          ],
        },
      ],
    };
    writeFileSync(path.join(rules, 'behind.test.yaml'), JSON.stringify(test));
    const promtool = await execa('promtool', ['test', 'rules', 'behind.test.yaml'], { cwd: rules, reject: false });
    expect(promtool.exitCode, String(promtool.stdout) + String(promtool.stderr)).toBe(0);
  });
});

describe('structured logs', () => {
  it('--log-format json: one JSON object per line on stderr, with time, level, event and what it is about', async () => {
    const registry = await startRegistry();
    const result = await runCli(['push', demo().root, '--to', registry.host, '--log-format', 'json']);
    expect(result.exitCode).toBe(0);
    const records = result.stderr.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const r of records) {
      expect(typeof r.time).toBe('string');
      expect(['debug', 'info', 'warn', 'error']).toContain(r.level);
      expect(typeof r.event).toBe('string');
    }
    expect(records.filter((r) => r.event === 'image-pushed')).toHaveLength(7);
    const verified = records.filter((r) => r.event === 'tag-verified');
    expect(verified).toHaveLength(7);
    expect(verified.find((r) => r.source === 'busybox:1.36')).toMatchObject({ repo: 'library/busybox', tag: '1.36', digest: expect.stringMatching(/^sha256:/) });
    expect(records.some((r) => r.event === 'blob-uploaded' && typeof r.bytes === 'number')).toBe(true);
    expect(records.at(-1)).toMatchObject({ event: 'run-finished', verified: 7, failed: 0 });
    // Nothing but JSON: no progress bars or plain lines.
    expect(result.stderr).not.toMatch(/\u001b\[/);
  });

  it('failures and errors before any work are JSON records too', async () => {
    const registry = await startRegistry();
    const faulty = buildFaultyStorage(path.join(tempDir('regmigrate-src-'), 'registry'));
    const result = await runCli(['sync', faulty.root, '--to', registry.host, '--log-format', 'json']);
    expect(result.exitCode).toBe(1);
    const records = result.stderr.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records.some((r) => r.event === 'tag-failed' && r.level === 'error' && typeof r.reason === 'string')).toBe(true);
    // A faulty image's record names its destination repository and tag.
    expect(records.find((r) => r.event === 'tag-failed' && r.source === 'broken/layer:v1')).toMatchObject({ repo: 'broken/layer', tag: 'v1', reason: expect.stringMatching(/^missing-blob: /) });
    const down = await runCli(['push', faulty.root, '--to', '127.0.0.1:9', '--retries', '1', '--log-format', 'json']);
    expect(down.exitCode).toBe(3);
    expect(JSON.parse(down.stderr.trim())).toMatchObject({ level: 'error', event: 'error', code: 'DESTINATION_UNREACHABLE', exitCode: 3 });
  });
});

describe('HTML reports', () => {
  it('scan --output html: one self-contained page that renders its charts in Chromium with no request leaving the file', async () => {
    const faulty = buildFaultyStorage(path.join(tempDir('regmigrate-src-'), 'registry'));
    const dir = tempDir();
    const html = path.join(dir, 'inventory.html');
    const result = await runCli(['scan', faulty.root, '--output', 'html']);
    expect(result.exitCode).toBe(1); // the storage has faults, and the page shows them
    writeFileSync(html, result.stdout);
    // Self-contained: no reference to anything outside the file.
    expect(result.stdout).not.toMatch(/\b(src|href)=|https?:\/\/|@import|url\(/);
    const rendered = await renderHtml(html);
    expect(pageRequests(rendered)).toEqual([]);
    const bars = (id: string) => (new RegExp(`<svg id="${id}"[\\s\\S]*?</svg>`).exec(rendered.dom)?.[0].match(/<rect class="bar"/g) ?? []).length;
    expect(bars('space-by-project')).toBeGreaterThanOrEqual(3);
    expect(bars('tags-by-age')).toBeGreaterThanOrEqual(1);
    const faultKinds = new Set(faulty.tags.filter((t) => t.fault).map((t) => t.fault!.kind));
    expect(bars('faults-by-kind')).toBe(faultKinds.size);
    expect((rendered.dom.match(/<tr>/g) ?? []).length).toBeGreaterThan(10);
    // Media types by name, the raw type kept in the cell's title (named here independently of the tool).
    const names: Record<string, string> = {
      'application/vnd.oci.image.index.v1+json': 'OCI index',
      'application/vnd.oci.image.manifest.v1+json': 'OCI image',
      'application/vnd.docker.distribution.manifest.list.v2+json': 'Docker manifest list',
      'application/vnd.docker.distribution.manifest.v2+json': 'Docker v2 image',
    };
    const largest = /<table id="largest">[\s\S]*?<\/table>/.exec(rendered.dom)![0];
    const types = [...largest.matchAll(/<tr><td><code>[^<]*<\/code><\/td><td(?: title="([^"]*)")?>([^<]*)<\/td>/g)].map((m) => [m[1], m[2]]);
    expect(types.length).toBeGreaterThan(5);
    expect(new Set(types.map(([raw]) => raw).filter((raw) => raw !== undefined))).toEqual(new Set(Object.keys(names)));
    // A manifest that cannot be read has no type: a dash.
    for (const [raw, shown] of types) expect(shown).toBe(raw === undefined ? '–' : names[raw]);
    expect(largest).not.toMatch(/>application\//);
    // Printable, and a picture of it.
    await printToPdf(html, path.join(dir, 'inventory.pdf'));
    expect(readFileSync(path.join(dir, 'inventory.pdf')).subarray(0, 5).toString()).toBe('%PDF-');
    const png = path.join(dir, 'inventory.png');
    await screenshot(html, png);
    expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
    // `REGMIGRATE_UPDATE_SCREENSHOT=1 npx vitest run test/observability.test.ts` refreshes the README's picture.
    if (process.env.REGMIGRATE_UPDATE_SCREENSHOT) {
      mkdirSync(path.join(PROJECT, 'docs'), { recursive: true });
      copyFileSync(png, path.join(PROJECT, 'docs', 'inventory.png'));
    }
    expect(existsSync(path.join(PROJECT, 'docs', 'inventory.png'))).toBe(true);
  });

  it('report html: the push report as a page, with what was verified, skipped and failed', async () => {
    const registry = await startRegistry();
    const faulty = buildFaultyStorage(path.join(tempDir('regmigrate-src-'), 'registry'));
    const dir = tempDir();
    const report = path.join(dir, 'push.json');
    expect((await runCli(['push', faulty.root, '--to', registry.host, '--report', report])).exitCode).toBe(1);
    const page = await runCli(['report', 'html', report]);
    expect(page.exitCode, page.stderr).toBe(0);
    const html = path.join(dir, 'push.html');
    writeFileSync(html, page.stdout);
    const rendered = await renderHtml(html);
    expect(pageRequests(rendered)).toEqual([]);
    const doc = JSON.parse(readFileSync(report, 'utf8')) as { summary: { verified: number; failed: number } };
    const rows = (id: string) => ((new RegExp(`<table id="${id}">[\\s\\S]*?</table>`).exec(rendered.dom)?.[0] ?? '').match(/<tr>/g) ?? []).length - 1;
    expect(rows('failed')).toBe(doc.summary.failed);
    expect(rows('done')).toBe(doc.summary.verified);
    expect(rendered.dom).toMatch(/<svg id="outcome"[\s\S]*?<rect class="bar"/);
    const bad = await runCli(['report', 'html', path.join(dir, 'nope.json')]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/nope\.json: cannot be read \(ENOENT\)$/m);
  });

  it('report html: failure reasons escaped (markup in an error text), byte figures right, long reasons wrapped at 1000 px; a sync report says so', async () => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    // A filtering proxy in front of the registry refuses team/api's manifest PUTs with a text that quotes markup (an
    // HTML page would be reported by its title alone: registry/errors.ts parseErrorBody).
    const token = 'f'.repeat(150);
    const body = `refused <script>alert(1)</script> ${token}`;
    proxy.script = (req) => (req.method === 'PUT' && req.url.pathname.includes('/team/api/manifests/') ? { kind: 'respond', status: 400, headers: { 'content-type': 'text/plain' }, body } : { kind: 'forward' });
    const tree = demo();
    const dir = tempDir();
    const report = path.join(dir, 'push.json');
    expect((await runCli(['push', tree.root, '--to', proxy.host, '--report', report])).exitCode).toBe(1);
    const doc = JSON.parse(readFileSync(report, 'utf8')) as { summary: { bytesUploaded: number; bytesMounted: number; bytesSkipped: number }; images: Array<{ source: string; status: string; size: number; reason: string | null }> };
    const failed = doc.images.filter((i) => i.status === 'failed');
    expect(failed.map((i) => i.source).sort()).toEqual(['team/api:1.0', 'team/api:1.1']);
    expect(failed[0]!.reason).toContain('<script>alert(1)</script>');
    const page = await runCli(['report', 'html', report]);
    expect(page.exitCode, page.stderr).toBe(0);
    const html = path.join(dir, 'push.html');
    writeFileSync(html, page.stdout);
    const rendered = await renderHtml(html);
    // Escaped: the body shows as text, no element of it reaches the page.
    expect(rendered.dom).not.toMatch(/<script/i);
    expect(rendered.dom).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(rendered.dom).toContain(token);
    // The byte figures, formatted here independently of the tool: 1024-based units, 3 significant digits.
    const human = (n: number): string => {
      if (n < 1024) return `${n} B`;
      const k = n / 1024;
      if (k < 1024) return `${k.toFixed(k >= 100 ? 0 : 1)} KiB`;
      const m = k / 1024;
      return `${m.toFixed(m >= 100 ? 0 : 1)} MiB`;
    };
    const cardValue = (label: string) => new RegExp(`<b>([^<]*)</b><span>${label}</span>`).exec(rendered.dom)?.[1];
    expect(doc.summary.bytesUploaded).toBeGreaterThan(0);
    expect(cardValue('uploaded')).toBe(human(doc.summary.bytesUploaded));
    expect(cardValue('mounted')).toBe(human(doc.summary.bytesMounted));
    expect(cardValue('already there')).toBe(human(doc.summary.bytesSkipped));
    const doneTable = /<table id="done">[\s\S]*?<\/table>/.exec(rendered.dom)![0];
    for (const image of doc.images.filter((i) => i.status !== 'failed')) {
      const row = new RegExp(`<tr><td><code>${image.source.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}</code></td>.*?<td class="num">([^<]*)</td>`).exec(doneTable);
      expect(row?.[1], image.source).toBe(human(image.size));
    }
    // The run: title, source and destination, start and end, version.
    expect(rendered.dom).toContain('<h1>Push report</h1>');
    expect(rendered.dom).toMatch(new RegExp(`<p class="sub">${tree.root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} → ${proxy.host} · \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC – \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC · regmigrate \\d+\\.\\d+\\.\\d+</p>`));
    // A long reason wraps: at a 1000 px viewport nothing is wider than the window.
    const layout = await measureLayout(html, 1000);
    expect(layout.widestCell).toBeGreaterThan(0);
    expect(layout.widestCell).toBeLessThanOrEqual(1000);
    expect(layout.scrollWidth).toBeLessThanOrEqual(1000);

    const syncReport = path.join(dir, 'sync.json');
    expect((await runCli(['sync', tree.root, '--to', registry.host, '--report', syncReport])).exitCode).toBe(0);
    const syncPage = await runCli(['report', 'html', syncReport]);
    expect(syncPage.stdout).toContain('<title>Sync report</title>');
    expect(syncPage.stdout).not.toContain('Push report');
  });
});

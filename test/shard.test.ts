import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { CronJob, Job } from 'kubernetes-models/batch/v1';
import { ConfigMap } from 'kubernetes-models/v1';
import { inShard, parseShard, shardOf } from '../src/plan/shard.js';
import { BIN, DEMO_STORAGE, PROJECT, runCli } from './helpers/cli.js';
import { startProxy } from './helpers/proxy.js';
import { startPushgateway } from './helpers/pushgateway.js';
import { startRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

const NAMES = Array.from({ length: 600 }, (_, i) => `project${i % 37}/group${i % 5}/service-${i}`);

describe('shard partition', () => {
  it.each([1, 2, 3, 4, 7, 16])('n=%i: disjoint and complete (every repository in exactly one shard)', (n) => {
    for (const name of NAMES) {
      const owners = Array.from({ length: n }, (_, k) => k).filter((k) => inShard(name, { index: k, count: n, by: 'repository' }));
      expect(owners).toHaveLength(1);
    }
  });

  it.each([2, 4, 8])('n=%i: spreads repositories evenly enough (no shard under half its share)', (n) => {
    const sizes = Array.from({ length: n }, (_, k) => NAMES.filter((name) => shardOf(name, n, 'repository') === k).length);
    for (const size of sizes) expect(size).toBeGreaterThan(NAMES.length / n / 2);
  });

  it.each([
    ['library/alpine', 4, 0],
    ['library/alpine', 7, 2],
    ['team/api', 4, 1],
    ['team/api', 7, 4],
    ['infra/tools/kubectl', 4, 3],
    ['infra/tools/kubectl', 7, 6],
  ])('is stable across runs and machines: %s in %i shards is shard %i (first 4 bytes of sha256)', (name, n, expected) => {
    expect(shardOf(name, n, 'repository')).toBe(expected);
  });

  it('--shard-by project keeps every repository of a project in one shard', () => {
    for (const name of NAMES) {
      const project = name.split('/')[0]!;
      expect(shardOf(name, 5, 'project')).toBe(shardOf(`${project}/other`, 5, 'project'));
    }
  });

  it.each([
    ['0/4', { index: 0, count: 4 }],
    ['3/4', { index: 3, count: 4 }],
    ['4/4', /k counts from 0, so it must be below n \(0 to 3\)/],
    ['1/0', /n must be from 1/],
    ['a/b', /is not k\/n/],
  ])('parses --shard %s', (text, expected) => {
    const shard = parseShard(text, 'repository');
    if (expected instanceof RegExp) expect(shard).toMatch(expected);
    else expect(shard).toMatchObject(expected);
  });
});

describe('the Indexed Job', () => {
  const doc = parse(readFileSync(path.join(PROJECT, 'deploy/kubernetes/indexed-job.yaml'), 'utf8')) as {
    spec: { completions: number; parallelism: number; completionMode: string; backoffLimitPerIndex: number; template: { spec: { containers: Array<{ args: string[] }>; volumes: unknown[] } } };
  };

  it('is a valid Kubernetes Job (and the CronJob a valid CronJob), per the Kubernetes schemas', () => {
    expect(() => new Job(doc as never).validate()).not.toThrow();
    const docs = parseAllDocuments(readFileSync(path.join(PROJECT, 'deploy/kubernetes/cronjob.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string });
    const cron = docs.find((d) => d.kind === 'CronJob');
    expect(() => new CronJob(cron as never).validate()).not.toThrow();
    const configMap = docs.find((d) => d.kind === 'ConfigMap');
    expect(() => new ConfigMap(configMap as never).validate()).not.toThrow();
    expect(doc.spec.completionMode).toBe('Indexed');
    expect(doc.spec.completions).toBe(doc.spec.parallelism);
    expect(doc.spec.backoffLimitPerIndex).toBeGreaterThan(0);
    // The validator does catch mistakes:
    expect(() => new Job({ ...doc, spec: { ...doc.spec, completions: 'four' } } as never).validate()).toThrow();
  });

  it("runs its container's command 3× in parallel: disjoint shards whose union is every tag, none pushed twice", async () => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    const reports = tempDir('regmigrate-reports-');
    const pushgateway = await startPushgateway();
    const args = doc.spec.template.spec.containers[0]!.args.map((a) =>
      a
        .replace('/var/lib/registry', DEMO_STORAGE)
        .replace('harbor.example.com', proxy.host)
        .replace('/reports/', `${reports}/`)
        .replace('http://prometheus-pushgateway.monitoring:9091', pushgateway.url)
        .replace(/^4$/, '3'),
    );
    const runs = await Promise.all(
      [0, 1, 2].map((index) =>
        // Kubernetes expands $(VAR) in args from the container's environment.
        execa(BIN, args.map((a) => a.replace('$(JOB_COMPLETION_INDEX)', String(index))), { reject: false, env: { JOB_COMPLETION_INDEX: String(index) } }),
      ),
    );
    for (const run of runs) expect(run.exitCode, String(run.stderr)).toBe(0);
    const merged = await runCli(['report', 'merge', ...[0, 1, 2].map((i) => path.join(reports, `shard-${i}.json`))]);
    expect(merged.exitCode, merged.stderr).toBe(0);
    const doc2 = JSON.parse(merged.stdout) as { summary: { verified: number }; images: Array<{ source: string; status: string }> };
    expect(doc2.summary.verified).toBe(7);
    // Each tag was put exactly once, by exactly one shard.
    const tagPuts = proxy.log.filter((r) => r.method === 'PUT' && r.path.includes('/manifests/') && !r.path.includes('/manifests/sha256:')).map((r) => r.path);
    expect(tagPuts.sort()).toEqual([...new Set(tagPuts)].sort());
    expect(tagPuts).toHaveLength(7);
    // Every shard reported only its own part.
    const parts = [0, 1, 2].map((i) => (JSON.parse(readFileSync(path.join(reports, `shard-${i}.json`), 'utf8')) as { images: unknown[] }).images.length);
    expect(parts.reduce((a, b) => a + b, 0)).toBe(7);
    // Each shard pushed its own metrics group (the shard a grouping label); together they count every tag.
    const scraped = await pushgateway.scrape();
    const verified = [0, 1, 2].map((i) => Number(new RegExp(`^regmigrate_tags_total\\{command="push",instance="",job="regmigrate-migration",outcome="verified",shard="${i}"\\} (\\d+)$`, 'm').exec(scraped)?.[1]));
    expect(verified).toEqual(parts);
  });

  it('report merge refuses reports that disagree', async () => {
    const dir = tempDir();
    const a = { schemaVersion: 1, kind: 'regmigrate.push', destination: 'h:1', summary: {}, images: [{ source: 'x:1', destination: 'p/x:1', digest: 'sha256:a', mediaType: null, size: 1, status: 'verified', reason: null }] };
    const b = { ...a, images: [{ ...a.images[0], digest: 'sha256:b' }] };
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path.join(dir, 'a.json'), JSON.stringify(a));
    writeFileSync(path.join(dir, 'b.json'), JSON.stringify(b));
    writeFileSync(path.join(dir, 'bad.json'), '{"kind":"other"}');
    const conflict = await runCli(['report', 'merge', path.join(dir, 'a.json'), path.join(dir, 'b.json')]);
    expect(conflict.exitCode).toBe(1);
    const [fileA, fileB] = [path.join(dir, 'a.json'), path.join(dir, 'b.json')];
    expect(conflict.stderr).toContain(`conflict: p/x:1: sha256:a in ${fileA}, sha256:b in ${fileB}`);
    // The tag's digest depends on which shard pushed last: it is not counted as verified.
    const merged = JSON.parse(conflict.stdout) as { summary: { verified: number; failed: number }; images: Array<{ source: string; status: string; reason: string | null }> };
    expect(merged.summary).toMatchObject({ verified: 0, failed: 1 });
    expect(merged.images).toEqual([expect.objectContaining({ source: 'x:1', status: 'failed', reason: `conflict: p/x:1: sha256:a in ${fileA}, sha256:b in ${fileB}` })]);
    expect(conflict.stderr).toMatch(/^2 reports: 0 verified, 0 already there or skipped, 1 failed$/m);
    const bad = await runCli(['report', 'merge', path.join(dir, 'bad.json')]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/bad\.json: not a regmigrate push report/);
  });

  it('scan, export and diff take --shard too, and --shards reads JOB_COMPLETION_INDEX', async () => {
    const all = JSON.parse((await runCli(['scan', DEMO_STORAGE, '-o', 'json'])).stdout) as { tags: Array<{ repository: string; tag: string }> };
    const parts = await Promise.all([0, 1].map((k) => runCli(['scan', DEMO_STORAGE, '-o', 'json', '--shards', '2'], { env: { JOB_COMPLETION_INDEX: String(k) } })));
    const union = parts.flatMap((p) => (JSON.parse(p.stdout) as typeof all).tags.map((t) => `${t.repository}:${t.tag}`));
    expect(union.sort()).toEqual(all.tags.map((t) => `${t.repository}:${t.tag}`).sort());
    const missing = await runCli(['scan', DEMO_STORAGE, '--shards', '2']);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/--shards needs JOB_COMPLETION_INDEX/);
  });
});

describe('the Dockerfile', () => {
  it('builds on node:20-slim, installs production dependencies only, and runs as a non-root user', () => {
    const text = readFileSync(path.join(PROJECT, 'Dockerfile'), 'utf8');
    const stages = text.split('\n').filter((l) => l.startsWith('FROM '));
    expect(stages.every((l) => l.startsWith('FROM node:20-slim'))).toBe(true);
    expect(text).toMatch(/^RUN npm ci --omit=dev/m);
    expect(text).toMatch(/^USER 10001:10001$/m);
    expect(text).toMatch(/^ENTRYPOINT \["regmigrate"\]$/m);
  });
});

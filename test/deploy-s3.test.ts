/**
 * deploy/kubernetes/indexed-job-s3.yaml: valid per the Kubernetes schemas, and its container's command, run as the
 * Job's pods would run it (three indexes at once, each with the bucket's credentials in its environment as the
 * Secret gives them), reads the bucket directly and together they push every tag exactly once.
 */
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { Job } from 'kubernetes-models/batch/v1';
import { ServiceAccount } from 'kubernetes-models/v1';
import { BIN, DEMO_STORAGE, PROJECT, runCli } from './helpers/cli.js';
import { startProxy } from './helpers/proxy.js';
import { startRegistry } from './helpers/registry.js';
import { startRgw } from './helpers/rgw.js';
import { s3Writer } from './helpers/s3-writer.js';
import { tempDir } from './helpers/tmp.js';

interface Container {
  args: string[];
  env: Array<{ name: string; valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } } }>;
  volumeMounts: Array<{ name: string; mountPath: string }>;
}
const docs = parseAllDocuments(readFileSync(path.join(PROJECT, 'deploy/kubernetes/indexed-job-s3.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; metadata: { name: string; annotations?: Record<string, string> }; spec: any });
const job = docs.find((d) => d.kind === 'Job')!;
const account = docs.find((d) => d.kind === 'ServiceAccount')!;
const container = job.spec.template.spec.containers[0] as Container;

describe('the Indexed Job that reads S3', () => {
  it('is a valid Job with a valid service account, and mounts no registry volume', () => {
    expect(() => new Job(job as never).validate()).not.toThrow();
    expect(() => new ServiceAccount(account as never).validate()).not.toThrow();
    expect(job.spec.completionMode).toBe('Indexed');
    expect(job.spec.template.spec.serviceAccountName).toBe(account.metadata.name);
    expect(account.metadata.annotations?.['eks.amazonaws.com/role-arn']).toMatch(/^arn:aws:iam::\d{12}:role\//);
    // The pods read the bucket: no hostPath, no registry volume.
    expect(JSON.stringify(job.spec.template.spec.volumes)).not.toContain('hostPath');
    expect(container.volumeMounts.map((m) => m.mountPath)).not.toContain('/var/lib/registry');
    // Bucket credentials only from a Secret (optional, for IRSA), never in args.
    const keys = container.env.filter((e) => e.name.startsWith('AWS_'));
    expect(keys.map((e) => e.name).sort()).toEqual(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']);
    for (const e of keys) expect(e.valueFrom?.secretKeyRef?.optional).toBe(true);
    expect(container.args.join(' ')).not.toMatch(/secret|access-key/i);
  });

  it("runs its container's command 3× in parallel against a bucket: disjoint shards, every tag pushed once", async () => {
    const rgw = await startRgw();
    const writer = s3Writer(rgw);
    await writer.createBucket('registry-bucket');
    await writer.putTree('registry-bucket', 'registry/', DEMO_STORAGE);
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    const reports = tempDir('regmigrate-reports-');
    // No Pushgateway here: drop the metrics flags (each with its value).
    const dropped = new Set(['--pushgateway', '--metrics-job']);
    const args = container.args
      .filter((a, i, all) => !dropped.has(a) && !dropped.has(all[i - 1] ?? ''))
      .map((a) => a.replace('harbor.example.com', proxy.host).replace('/reports/', `${reports}/`).replace(/^8$/, '3'));
    const region = args[args.indexOf('--s3-region') + 1]!;
    const withEndpoint = [...args, '--s3-endpoint', rgw.endpoint];
    const runs = await Promise.all(
      [0, 1, 2].map((index) =>
        execa(BIN, withEndpoint.map((a) => a.replace('$(JOB_COMPLETION_INDEX)', String(index))), {
          reject: false,
          env: { JOB_COMPLETION_INDEX: String(index), AWS_ACCESS_KEY_ID: rgw.accessKey, AWS_SECRET_ACCESS_KEY: rgw.secretKey, AWS_EC2_METADATA_DISABLED: 'true' },
        }),
      ),
    );
    expect(region).toBe('eu-west-1');
    for (const run of runs) expect(run.exitCode, String(run.stderr)).toBe(0);
    const merged = await runCli(['report', 'merge', ...[0, 1, 2].map((i) => path.join(reports, `shard-${i}.json`))]);
    expect(merged.exitCode, merged.stderr).toBe(0);
    expect((JSON.parse(merged.stdout) as { summary: { verified: number } }).summary.verified).toBe(7);
    const tagPuts = proxy.log.filter((r) => r.method === 'PUT' && r.path.includes('/manifests/') && !r.path.includes('/manifests/sha256:')).map((r) => r.path);
    expect(tagPuts).toHaveLength(7);
    expect(new Set(tagPuts).size).toBe(7);
    await rgw.stop();
  }, 300_000);
});

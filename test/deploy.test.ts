import { execa } from 'execa';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { BIN, DEMO_STORAGE, PROJECT } from './helpers/cli.js';
import { startPushgateway, type RunningPushgateway } from './helpers/pushgateway.js';
import { startRegistry, type RunningRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

const DEPLOY = path.join(PROJECT, 'deploy');

/** The examples' paths, pointed at this test's storage, registry and scratch directories. */
function localize(text: string, registry: RunningRegistry, scratch: string): string {
  return text
    .replaceAll('/usr/local/bin/regmigrate', BIN)
    .replaceAll('/var/lib/registry', DEMO_STORAGE)
    .replaceAll('harbor.example.com', registry.host)
    .replaceAll('/etc/regmigrate', path.join(scratch, 'etc'))
    .replaceAll('/var/lib/regmigrate', path.join(scratch, 'state'))
    .replaceAll('/var/log/regmigrate', path.join(scratch, 'log'))
    .replaceAll('/var/lib/prometheus/node-exporter', path.join(scratch, 'metrics'))
    .replaceAll('http://prometheus-pushgateway.monitoring:9091', pushgatewayUrl)
    .replace(/(?<![\w/.-])\/state\//g, `${path.join(scratch, 'state')}/`);
}

/** Scratch etc/, state/ and log/ with the example config file (deploy/regmigrate.yaml, or `config`) localized. */
function scratchDir(registry: RunningRegistry, config = readFileSync(path.join(DEPLOY, 'regmigrate.yaml'), 'utf8')): string {
  const dir = tempDir('regmigrate-deploy-');
  for (const sub of ['etc', 'state', 'log', 'metrics']) mkdirSync(path.join(dir, sub));
  writeFileSync(path.join(dir, 'etc', 'config.json'), JSON.stringify({ auths: {} }), { mode: 0o600 });
  writeFileSync(path.join(dir, 'etc', 'regmigrate.yaml'), localize(config, registry, dir));
  return dir;
}

let pushgatewayUrl = '';

describe('deploy examples', () => {
  let registry: RunningRegistry;
  let pushgateway: RunningPushgateway;
  beforeAll(async () => {
    registry = await startRegistry();
    pushgateway = await startPushgateway();
    pushgatewayUrl = pushgateway.url;
  });

  it('regmigrate.yaml: config check passes it on a fresh machine, and names the directories the run still needs', async () => {
    // As shipped: valid wherever it is checked (this machine may or may not have /var/lib/regmigrate).
    const shipped = await execa(BIN, ['config', 'check', path.join(DEPLOY, 'regmigrate.yaml')], { reject: false });
    expect(shipped.exitCode, String(shipped.stderr)).toBe(0);
    expect(String(shipped.stdout)).toMatch(/regmigrate\.yaml: valid \(12 settings\)$/);
    // A fresh machine: /var/lib/regmigrate (here scratch/state) not made yet. The file is valid; the directory the
    // journal and report go to is named as this machine's to make, not as a fault of the file.
    const fresh = tempDir('regmigrate-fresh-');
    const file = path.join(fresh, 'regmigrate.yaml');
    writeFileSync(file, localize(readFileSync(path.join(DEPLOY, 'regmigrate.yaml'), 'utf8'), registry, fresh));
    const state = path.join(fresh, 'state');
    const check = await execa(BIN, ['config', 'check', file], { reject: false });
    expect(check.exitCode).toBe(0);
    expect(String(check.stdout)).toBe(`${file}: valid (12 settings)`);
    expect(String(check.stderr).split('\n')).toEqual([
      'regmigrate: warning: on this machine, a run would refuse these 2 files:',
      `  sync.state: "${state}/state.json": its directory ${state} does not exist`,
      `  output.report: "${state}/last-run.json": its directory ${state} does not exist`,
      "hint: the directories must exist and be writable by the user that runs it (the systemd unit's StateDirectory= makes /var/lib/regmigrate when it starts)",
    ]);
    mkdirSync(state);
    const ready = await execa(BIN, ['config', 'check', file], { reject: false });
    expect([ready.exitCode, String(ready.stderr)]).toEqual([0, '']);
  });

  it('cron: a valid /etc/cron.d line whose command syncs and writes its journal and report', async () => {
    const lines = readFileSync(path.join(DEPLOY, 'cron', 'regmigrate'), 'utf8').split('\n');
    const jobs = lines.filter((l) => l.trim() && !l.startsWith('#') && !/^[A-Z_]+=/.test(l));
    expect(jobs).toHaveLength(1);
    const fields = jobs[0]!.split(/\s+/);
    // minute hour day-of-month month day-of-week user command…
    const cronField = /^(\*|\d+(-\d+)?)(\/\d+)?(,(\*|\d+(-\d+)?)(\/\d+)?)*$/;
    for (const field of fields.slice(0, 5)) expect(field).toMatch(cronField);
    expect(fields[5]).toBe('regmigrate');
    const command = jobs[0]!.split(/\s+/).slice(6).join(' ').replace(/^regmigrate /, `${BIN} `);
    expect(command).toMatch(/ --config \/etc\/regmigrate\/regmigrate\.yaml /);
    const scratch = scratchDir(registry);
    expect((await execa(BIN, ['config', 'check', path.join(scratch, 'etc', 'regmigrate.yaml')], { reject: false })).exitCode).toBe(0);
    const result = await execa('sh', ['-c', localize(command, registry, scratch)], { reject: false });
    expect(result.exitCode, readFileSync(path.join(scratch, 'log', 'sync.log'), 'utf8')).toBe(0);
    expect(readFileSync(path.join(scratch, 'log', 'sync.log'), 'utf8')).toMatch(/^sync: \d+ pushed, \d+ unchanged, 0 failed/m);
    expect(JSON.parse(readFileSync(path.join(scratch, 'state', 'state.json'), 'utf8')).kind).toBe('regmigrate.sync-state');
    expect(JSON.parse(readFileSync(path.join(scratch, 'state', 'last-run.json'), 'utf8')).summary.failed).toBe(0);
  });

  it('systemd: the service and timer pass systemd-analyze verify, and ExecStart syncs', async () => {
    const scratch = scratchDir(registry);
    const units = path.join(scratch, 'units');
    mkdirSync(units);
    const service = localize(readFileSync(path.join(DEPLOY, 'systemd', 'regmigrate-sync.service'), 'utf8'), registry, scratch);
    writeFileSync(path.join(units, 'regmigrate-sync.service'), service);
    writeFileSync(path.join(units, 'regmigrate-sync.timer'), readFileSync(path.join(DEPLOY, 'systemd', 'regmigrate-sync.timer')));
    const verify = await execa('systemd-analyze', ['verify', path.join(units, 'regmigrate-sync.service'), path.join(units, 'regmigrate-sync.timer')], { reject: false });
    expect(verify.exitCode, String(verify.stderr)).toBe(0);
    expect(service).toMatch(/^ReadOnlyPaths=/m);
    const exec = /^ExecStart=(.*)$/m.exec(service)![1]!;
    expect(exec).toMatch(/ sync --config /);
    const result = await execa('sh', ['-c', exec], { reject: false });
    expect(result.exitCode, String(result.stderr)).toBe(0);
    expect(String(result.stdout)).toMatch(/^sync: /m);
    // The textfile collector's file: valid for promtool, and saying the run succeeded.
    const prom = path.join(scratch, 'metrics', 'regmigrate.prom');
    expect((await execa('promtool', ['check', 'metrics'], { input: readFileSync(prom), reject: false })).exitCode).toBe(0);
    expect(readFileSync(prom, 'utf8')).toMatch(/^regmigrate_last_run_success\{command="sync"\} 1$/m);
  });

  it('kubernetes: a CronJob that never overlaps, mounts the registry read-only, takes credentials from a Secret, and whose args sync', async () => {
    const docs = parseAllDocuments(readFileSync(path.join(DEPLOY, 'kubernetes', 'cronjob.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string });
    const configMap = docs.find((d) => d.kind === 'ConfigMap') as unknown as { metadata: { name: string }; data: Record<string, string> };
    const doc = docs.find((d) => d.kind === 'CronJob') as unknown as {
      apiVersion: string;
      kind: string;
      spec: {
        schedule: string;
        concurrencyPolicy: string;
        jobTemplate: { spec: { template: { spec: { containers: Array<{ args: string[]; env: Array<{ name: string; valueFrom?: { secretKeyRef?: { name: string } } }>; volumeMounts: Array<{ name: string; readOnly?: boolean; mountPath: string }> }>; volumes: Array<{ name: string; persistentVolumeClaim?: { readOnly?: boolean }; configMap?: { name: string } }> } } } };
      };
    };
    expect(doc.apiVersion).toBe('batch/v1');
    expect(doc.kind).toBe('CronJob');
    expect(doc.spec.concurrencyPolicy).toBe('Forbid');
    expect(doc.spec.schedule.split(' ')).toHaveLength(5);
    const pod = doc.spec.jobTemplate.spec.template.spec;
    const container = pod.containers[0]!;
    const registryMount = container.volumeMounts.find((m) => m.mountPath === '/var/lib/registry')!;
    expect(registryMount.readOnly).toBe(true);
    expect(pod.volumes.find((v) => v.name === registryMount.name)!.persistentVolumeClaim!.readOnly).toBe(true);
    for (const name of ['REGMIGRATE_USERNAME', 'REGMIGRATE_PASSWORD']) {
      expect(container.env.find((e) => e.name === name)!.valueFrom!.secretKeyRef!.name).toBe('regmigrate-harbor');
    }
    // The ConfigMap is mounted at /etc/regmigrate and the args name the file in it.
    const configMount = container.volumeMounts.find((m) => m.mountPath === '/etc/regmigrate')!;
    expect(pod.volumes.find((v) => v.name === configMount.name)!.configMap!.name).toBe(configMap.metadata.name);
    const scratch = scratchDir(registry, configMap.data['regmigrate.yaml']);
    const args = container.args.map((a) => localize(a, registry, scratch));
    expect(args).toEqual(['sync', '--config', path.join(scratch, 'etc', 'regmigrate.yaml')]);
    const result = await execa(BIN, args, { reject: false, env: { REGMIGRATE_USERNAME: 'robot$migrate', REGMIGRATE_PASSWORD: 'unused-by-an-open-registry' } });
    expect(result.exitCode, String(result.stderr)).toBe(0);
    expect(JSON.parse(readFileSync(path.join(scratch, 'state', 'state.json'), 'utf8')).kind).toBe('regmigrate.sync-state');
    // It pushed its metrics to the Pushgateway, which serves them to Prometheus; its logs are JSON lines.
    expect(await pushgateway.scrape()).toMatch(/^regmigrate_last_run_success\{command="sync",instance="",job="regmigrate-sync"\} 1$/m);
    for (const line of String(result.stderr).trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
  });

  it('prometheus: the alert rules load and their unit tests pass (promtool)', async () => {
    const rules = path.join(DEPLOY, 'prometheus');
    expect((await execa('promtool', ['check', 'rules', path.join(rules, 'regmigrate-alerts.yaml')], { reject: false })).exitCode).toBe(0);
    const test = await execa('promtool', ['test', 'rules', 'regmigrate-alerts.test.yaml'], { cwd: rules, reject: false });
    expect(test.exitCode, String(test.stdout) + String(test.stderr)).toBe(0);
  });
});

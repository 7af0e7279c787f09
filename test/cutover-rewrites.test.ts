import { execa } from 'execa';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { addImage, makeLayer, StorageBuilder } from '../fixtures/builder.js';
import { buildDemoStorage } from '../fixtures/trees.js';
import { runCli } from './helpers/cli.js';
import { startHarborDouble, type HarborDouble } from './helpers/harbor-double.js';
import { buildLegacyTree } from './helpers/legacy-tree.js';
import { startRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

const ADMIN_PASSWORD = 'Adm1n-s3cret-Rw4';
/** The name clients still use: it resolves nowhere, so a pull that works went through the rewrite. */
const OLD_HOST = 'old-registry.invalid:5000';

interface RewritesJson {
  kind: string;
  oldHost: string;
  newHost: string;
  references: Array<{ old: string; new: string | null; digest: string | null; sourceDigest: string | null; status: string }>;
}

describe('report rewrites: registries.conf rules podman follows to the new names', () => {
  let harbor: HarborDouble;
  let report: string;
  beforeAll(async () => {
    harbor = await startHarborDouble({ users: { admin: { password: ADMIN_PASSWORD, admin: true } }, projects: [] });
    const tree = buildDemoStorage(path.join(tempDir(), 'registry'));
    report = path.join(tempDir(), 'report.json');
    // busybox moves into library/, team/ is renamed platform/, the rest keep their names.
    const push = await runCli(['push', tree.root, '--to', harbor.host, '--username', 'admin', '--password-stdin', '--map', 'team=platform', '--report', report], { input: `${ADMIN_PASSWORD}\n` });
    expect(push.exitCode, push.stderr).toBe(0);
  });

  it('writes one entry per renamed prefix and one per single-level name, and podman pulls by the old names', async () => {
    const result = await runCli(['report', 'rewrites', report, '--old-host', OLD_HOST, '--insecure']);
    expect(result.exitCode, result.stderr).toBe(0);
    const conf = result.stdout;
    const entries = [...conf.matchAll(/^prefix = "([^"]+)"\nlocation = "([^"]+)"\ninsecure = true$/gm)].map((m) => [m[1], m[2]]);
    expect(entries).toEqual([
      [`${OLD_HOST}/busybox`, `${harbor.host}/library/busybox`],
      [`${OLD_HOST}/infra`, `${harbor.host}/infra`],
      [`${OLD_HOST}/library`, `${harbor.host}/library`],
      [`${OLD_HOST}/team`, `${harbor.host}/platform`],
    ]);
    expect(conf.match(/\[\[registry\]\]/g)).toHaveLength(4);

    const dir = tempDir('regmigrate-podman-');
    const confFile = path.join(dir, 'registries.conf');
    writeFileSync(confFile, conf);
    // Credentials are looked up by the host the rule sends the pull to.
    const authfile = path.join(dir, 'auth.json');
    writeFileSync(authfile, JSON.stringify({ auths: { [harbor.host]: { auth: Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64') } } }));
    for (const [old, moved] of [
      ['busybox:1.36', 'library/busybox'],
      ['team/api:1.0', 'platform/api'],
      ['infra/tools/kubectl:1.29', 'infra/tools/kubectl'],
    ] as const) {
      const pull = await execa(
        'podman',
        ['--storage-driver', 'vfs', '--root', path.join(dir, 'root'), '--runroot', path.join(dir, 'run'), 'pull', '--tls-verify=false', '--authfile', authfile, `${OLD_HOST}/${old}`],
        { reject: false, env: { CONTAINERS_REGISTRIES_CONF: confFile } },
      );
      expect(pull.exitCode, String(pull.stderr)).toBe(0);
      expect(harbor.log.some((r) => r.method === 'GET' && r.path.startsWith(`/v2/${moved}/manifests/`))).toBe(true);
    }
  });

  it('--format json and csv: the reference map, old reference to new reference with the digest', async () => {
    const pushed = JSON.parse(readFileSync(report, 'utf8')) as { images: Array<{ source: string; digest: string }> };
    const busybox = pushed.images.find((i) => i.source === 'busybox:1.36')!;
    const json = await runCli(['report', 'rewrites', report, '--old-host', OLD_HOST, '--new-host', 'harbor.example.com', '--format', 'json']);
    expect(json.exitCode, json.stderr).toBe(0);
    const doc = JSON.parse(json.stdout) as RewritesJson;
    expect(doc).toMatchObject({ kind: 'regmigrate.rewrites', oldHost: OLD_HOST, newHost: 'harbor.example.com' });
    expect(doc.references).toHaveLength(pushed.images.length);
    expect(doc.references).toContainEqual(expect.objectContaining({ old: `${OLD_HOST}/busybox:1.36`, new: 'harbor.example.com/library/busybox:1.36', digest: busybox.digest, status: 'migrated' }));
    expect(doc.references).toContainEqual(expect.objectContaining({ old: `${OLD_HOST}/team/api:1.1`, new: 'harbor.example.com/platform/api:1.1', status: 'migrated' }));
    const csv = await runCli(['report', 'rewrites', report, '--old-host', OLD_HOST, '--format', 'csv']);
    expect(csv.stdout.split('\n')[0]).toBe('old_reference,new_reference,digest,source_digest,status,reason');
    expect(csv.stdout).toContain(`${OLD_HOST}/busybox:1.36,${harbor.host}/library/busybox:1.36,${busybox.digest},${busybox.digest},migrated,`);
  });

  it('a destination reached over plain HTTP: each rule says insecure = true without being asked, and stderr says why', async () => {
    const rule = /^prefix = "[^"]+"\nlocation = "[^"]+"\ninsecure = true$/gm;
    const plain = await runCli(['report', 'rewrites', report, '--old-host', OLD_HOST]);
    expect(plain.exitCode, plain.stderr).toBe(0);
    expect(plain.stdout.match(rule)).toHaveLength(4);
    expect(plain.stderr).toBe(`regmigrate: ${harbor.host} was reached over plain HTTP: each rule says insecure = true, which registries.conf needs for it`);
    // The nodes reach the registry by another name, maybe over HTTPS: a hint, not a guess.
    const renamed = await runCli(['report', 'rewrites', report, '--old-host', OLD_HOST, '--new-host', 'harbor.example.com']);
    expect(renamed.stdout).not.toMatch(/insecure/);
    expect(renamed.stderr).toBe(`regmigrate: the run reached ${harbor.host} over plain HTTP; if the nodes reach harbor.example.com over plain HTTP too, give --insecure (registries.conf needs insecure = true for it)`);
    // The sync journal records it too.
    const registry = await startRegistry();
    const state = path.join(tempDir(), 'state.json');
    expect((await runCli(['sync', buildDemoStorage(path.join(tempDir(), 'registry')).root, '--to', registry.host, '--state', state])).exitCode).toBe(0);
    const fromJournal = await runCli(['report', 'rewrites', state, '--old-host', OLD_HOST]);
    expect(fromJournal.stdout.match(rule)?.length).toBeGreaterThan(0);
    expect(fromJournal.stdout).not.toMatch(/^location = .*\n(?!insecure = true)/m);
  });

  it('names what is wrong with the options and the input file, one line each', async () => {
    const noHost = await runCli(['report', 'rewrites', report]);
    expect(noHost.exitCode).toBe(2);
    expect(noHost.stderr).toContain('--old-host is required');
    const url = await runCli(['report', 'rewrites', report, '--old-host', 'https://old:5000']);
    expect(url.exitCode).toBe(2);
    expect(url.stderr).toContain('--old-host takes a host as image references name it (like old-registry:5000), not a URL: "https://old:5000"');
    const notReport = path.join(tempDir(), 'scan.json');
    writeFileSync(notReport, JSON.stringify({ kind: 'regmigrate.scan', tags: [] }));
    const wrong = await runCli(['report', 'rewrites', notReport, '--old-host', OLD_HOST]);
    expect(wrong.exitCode).toBe(2);
    expect(wrong.stderr).toContain(`${notReport}: neither a push/sync report nor a sync journal (it is a regmigrate.scan document)`);
  });
});

/** The `[[registry]]` entries of a registries.conf, as [prefix, location] pairs. */
function rules(conf: string): string[][] {
  return [...conf.matchAll(/^prefix = "([^"]+)"\nlocation = "([^"]+)"$/gm)].map((m) => [m[1]!, m[2]!]);
}

describe('report rewrites of what did not go as named', () => {
  it('a repository that failed entirely under a renamed prefix keeps the prefix from becoming one rule', async () => {
    // team/api migrates to platform/api; team/web, under the same renamed prefix, fails (a layer's data is gone).
    // A rule for the whole prefix would send pulls of team/web to platform/web, which does not exist.
    const tree = buildDemoStorage(path.join(tempDir(), 'registry'));
    const b = new StorageBuilder(tree.root);
    const lost = makeLayer('srv/web', 'web\n', 1024);
    b.tag('team/web', 'v1', addImage(b, 'team/web', { format: 'oci', layers: [lost], label: 'web' }).digest);
    rmSync(path.dirname(b.blobPath(lost.digest)), { recursive: true });
    const registry = await startRegistry();
    const report = path.join(tempDir(), 'report.json');
    const push = await runCli(['push', tree.root, '--to', registry.host, '--map', 'team=platform', '--report', report]);
    expect(push.exitCode).toBe(1);
    const pushed = JSON.parse(readFileSync(report, 'utf8')) as { images: Array<{ source: string; destination: string | null; status: string }> };
    expect(pushed.images.find((i) => i.source === 'team/web:v1')).toMatchObject({ destination: 'platform/web:v1', status: 'failed' });

    const result = await runCli(['report', 'rewrites', report, '--old-host', OLD_HOST, '--new-host', 'harbor.example.com']);
    expect(result.exitCode, result.stderr).toBe(0);
    const entries = rules(result.stdout);
    expect(entries).toContainEqual([`${OLD_HOST}/team/api`, 'harbor.example.com/platform/api']);
    expect(entries.filter(([prefix]) => prefix === `${OLD_HOST}/team` || prefix!.startsWith(`${OLD_HOST}/team/web`))).toEqual([]);
  });

  it('a converted schema1 image: the new reference resolves to its conversion, the source digest is kept beside it, from a report and from a journal', async () => {
    const tree = await buildLegacyTree();
    const registry = await startRegistry();
    const dir = tempDir();
    const [report, state] = [path.join(dir, 'report.json'), path.join(dir, 'state.json')];
    const sync = await runCli(['sync', tree.root, '--to', registry.host, '--include', 'legacy/**', '--schema1', 'convert', '--report', report, '--state', state]);
    expect(sync.exitCode, sync.stdout + sync.stderr).toBe(0);
    const images = (JSON.parse(readFileSync(report, 'utf8')) as { images: Array<{ source: string; digest: string; convertedTo: string | null }> }).images;
    const refs = Object.keys(tree.schema1);
    expect(refs.length).toBeGreaterThan(0);
    for (const file of [report, state]) {
      const json = await runCli(['report', 'rewrites', file, '--old-host', OLD_HOST, '--format', 'json']);
      expect(json.exitCode, json.stderr).toBe(0);
      const doc = JSON.parse(json.stdout) as RewritesJson;
      const csv = await runCli(['report', 'rewrites', file, '--old-host', OLD_HOST, '--format', 'csv']);
      for (const ref of refs) {
        const convertedTo = images.find((i) => i.source === ref)!.convertedTo!;
        expect(convertedTo).toMatch(/^sha256:[0-9a-f]{64}$/);
        expect(convertedTo).not.toBe(tree.schema1[ref]);
        expect(doc.references.find((r) => r.old === `${OLD_HOST}/${ref}`), file).toMatchObject({ new: `${registry.host}/${ref}`, digest: convertedTo, sourceDigest: tree.schema1[ref], status: 'migrated' });
        expect(csv.stdout).toContain(`${OLD_HOST}/${ref},${registry.host}/${ref},${convertedTo},${tree.schema1[ref]},migrated,`);
      }
    }
  });
});

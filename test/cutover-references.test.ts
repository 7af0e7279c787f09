import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildDemoStorage } from '../fixtures/trees.js';
import { runCli } from './helpers/cli.js';
import { startRegistry, type RunningRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

const OLD = 'old-registry:5000';

interface ReferencesJson {
  references: Array<{ file: string; line: number; old: string; new: string | null; status: string; reason: string | null }>;
}

/** A checkout of deployment files as a team has it: manifests, Helm values, a Dockerfile, a compose file, noise. */
function buildTree(): { dir: string; outside: string; files: Record<string, string> } {
  const base = tempDir('regmigrate-refs-');
  const dir = path.join(base, 'deploy');
  const files: Record<string, string> = {
    'k8s/app.yaml': `apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          image: ${OLD}/team/api:1.0\n        - name: sidecar\n          image: ${OLD}/busybox:1.36\n        - name: gone\n          image: ${OLD}/team/api:9.9\n`,
    'chart/values.yaml': `kubectl:\n  image: "${OLD}/infra/tools/kubectl:1.29"\nbroken:\n  image: ${OLD}/team/api:1.1\n`,
    'Dockerfile': `FROM ${OLD}/library/alpine:3.19\nRUN echo hi\n`,
    'compose.yaml': `services:\n  api:\n    image: ${OLD}/team/api:1.0\n  other:\n    image: my-${OLD}/busybox:1.36\n`,
    'README.md': 'no registry named here\n',
  };
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  // A binary file naming the old registry: refused, never written.
  writeFileSync(path.join(dir, 'image.bin'), Buffer.concat([Buffer.from(`${OLD}/busybox:1.36`), Buffer.from([0, 1, 2, 0xff])]));
  // A file outside the directory, reachable through a symbolic link inside it: never followed, never written.
  const outside = path.join(base, 'outside.yaml');
  writeFileSync(outside, `image: ${OLD}/busybox:1.36\n`);
  symlinkSync(outside, path.join(dir, 'link.yaml'));
  return { dir, outside, files };
}

describe('report references: every reference to the old registry in a directory', () => {
  let registry: RunningRegistry;
  let report: string;
  beforeAll(async () => {
    registry = await startRegistry();
    const tree = buildDemoStorage(path.join(tempDir(), 'registry'));
    report = path.join(tempDir(), 'report.json');
    const push = await runCli(['push', tree.root, '--to', registry.host, '--map', 'team=platform', '--report', report]);
    expect(push.exitCode, push.stderr).toBe(0);
    // One image that did not make it, as a run with a failure reports it.
    const doc = JSON.parse(readFileSync(report, 'utf8')) as { images: Array<{ source: string; status: string; reason: string | null }> };
    const failed = doc.images.find((i) => i.source === 'team/api:1.1')!;
    failed.status = 'failed';
    failed.reason = 'blob upload refused (500)';
    writeFileSync(report, JSON.stringify(doc));
  });

  it('lists file, line, new reference and status; flags unknown and failed tags (exit 1)', async () => {
    const { dir } = buildTree();
    const result = await runCli(['report', 'references', dir, '--from', report, '--old-host', OLD, '--new-host', 'harbor.example.com', '--output', 'json']);
    expect(result.exitCode).toBe(1);
    const refs = (JSON.parse(result.stdout) as ReferencesJson).references.map((r) => [`${r.file}:${r.line}`, r.old, r.new, r.status]);
    expect(refs).toEqual([
      ['Dockerfile:1', `${OLD}/library/alpine:3.19`, 'harbor.example.com/library/alpine:3.19', 'migrated'],
      ['chart/values.yaml:2', `${OLD}/infra/tools/kubectl:1.29`, 'harbor.example.com/infra/tools/kubectl:1.29', 'migrated'],
      ['chart/values.yaml:4', `${OLD}/team/api:1.1`, null, 'failed'],
      ['compose.yaml:3', `${OLD}/team/api:1.0`, 'harbor.example.com/platform/api:1.0', 'migrated'],
      ['k8s/app.yaml:8', `${OLD}/team/api:1.0`, 'harbor.example.com/platform/api:1.0', 'migrated'],
      ['k8s/app.yaml:10', `${OLD}/busybox:1.36`, 'harbor.example.com/library/busybox:1.36', 'migrated'],
      ['k8s/app.yaml:12', `${OLD}/team/api:9.9`, null, 'unknown'],
    ]);
    expect(result.stderr).toContain(`regmigrate: image.bin: names ${OLD} but is not UTF-8 text (binary): not read, not rewritten`);
    expect(result.stderr).toContain(`7 references to ${OLD} in 4 files`);
  });

  it('--write rewrites the migrated references in place, prints the diff, and touches nothing else', async () => {
    const { dir, outside, files } = buildTree();
    const past = new Date('2020-01-01T00:00:00Z');
    const untouched = ['README.md', 'image.bin'];
    for (const name of untouched) utimesSync(path.join(dir, name), past, past);
    const before = Object.fromEntries(untouched.map((name) => [name, readFileSync(path.join(dir, name))]));
    const outsideBefore = readFileSync(outside);

    const result = await runCli(['report', 'references', dir, '--from', report, '--old-host', OLD, '--new-host', 'harbor.example.com', '--write']);
    expect(result.exitCode).toBe(1); // the failed and the unknown tag are left
    expect(result.stdout).toContain(`--- a/Dockerfile\n+++ b/Dockerfile\n@@ -1 +1 @@\n-FROM ${OLD}/library/alpine:3.19\n+FROM harbor.example.com/library/alpine:3.19\n`);
    expect(result.stderr).toContain(`regmigrate: k8s/app.yaml:12: ${OLD}/team/api:9.9 left as it is: tag team/api:9.9 is not in the report`);
    expect(result.stderr).toContain(`regmigrate: chart/values.yaml:4: ${OLD}/team/api:1.1 left as it is: team/api:1.1 was not migrated: blob upload refused (500)`);
    expect(result.stderr).toContain('5 references rewritten in 4 files; 2 left (failed or unknown tags)');

    const read = (name: string): string => readFileSync(path.join(dir, name), 'utf8');
    expect(read('k8s/app.yaml')).toBe(files['k8s/app.yaml']!.replace(`${OLD}/team/api:1.0`, 'harbor.example.com/platform/api:1.0').replace(`${OLD}/busybox:1.36`, 'harbor.example.com/library/busybox:1.36'));
    expect(read('chart/values.yaml')).toBe(files['chart/values.yaml']!.replace(`${OLD}/infra/tools/kubectl:1.29`, 'harbor.example.com/infra/tools/kubectl:1.29'));
    expect(read('compose.yaml')).toBe(files['compose.yaml']!.replace(`image: ${OLD}/team/api:1.0`, 'image: harbor.example.com/platform/api:1.0'));
    // `my-old-registry:5000` is another registry.
    expect(read('compose.yaml')).toContain(`my-${OLD}/busybox:1.36`);
    for (const name of untouched) {
      expect(readFileSync(path.join(dir, name))).toEqual(before[name]);
      expect(statSync(path.join(dir, name)).mtime).toEqual(past);
    }
    expect(readFileSync(outside)).toEqual(outsideBefore);
    // Written aside and renamed: no temp file left behind.
    expect(readdirSync(path.join(dir, 'k8s'))).toEqual(['app.yaml']);

    // A second run finds only what could not be rewritten.
    const again = await runCli(['report', 'references', dir, '--from', report, '--old-host', OLD, '--output', 'json']);
    expect((JSON.parse(again.stdout) as ReferencesJson).references.map((r) => r.status)).toEqual(['failed', 'unknown']);
  });

  it('Helm values: `repository:` with a `tag:` beside it is one reference; --write changes only the repository', async () => {
    const dir = tempDir('regmigrate-helm-');
    const values = [
      'api:', //                                             1
      '  image:',
      `    repository: ${OLD}/team/api`, //                  3: migrated, tag below
      '    tag: "1.0"',
      '    pullPolicy: IfNotPresent',
      'worker:',
      '  image:',
      '    pullPolicy: Always',
      '    tag: 1.1   # pinned', //                           9
      `    repository: "${OLD}/team/api"`, //                10: failed, tag above
      'tools:',
      '  image:',
      `    repository: ${OLD}/infra/tools/kubectl`, //       13: empty tag, the chart's appVersion
      '    tag: ""',
      'sidecars:',
      "  - tag: '1.36'", //                                  16
      `    repository: ${OLD}/busybox`, //                   17: migrated, the list item's first key is its tag
      `  - repository: ${OLD}/busybox`, //                  18: not migrated at that tag
      '    tag: 0.0-missing',
      'plain:',
      '  image:',
      `    repository: ${OLD}/team/api`, //                  22: no tag beside it (the nested one is not)
      '    resources:',
      '      tag: "1.0"',
      '',
    ].join('\n');
    writeFileSync(path.join(dir, 'values.yaml'), values);
    const list = await runCli(['report', 'references', dir, '--from', report, '--old-host', OLD, '--new-host', 'harbor.example.com', '--output', 'json']);
    expect(list.exitCode).toBe(1);
    const refs = (JSON.parse(list.stdout) as { references: Array<{ line: number; old: string; tag: string | null; new: string | null; status: string; reason: string | null }> }).references;
    expect(refs.map((r) => [r.line, r.tag, r.new, r.status])).toEqual([
      [3, '1.0', 'harbor.example.com/platform/api', 'migrated'],
      [10, '1.1', null, 'failed'],
      [13, '', null, 'unknown'],
      [17, '1.36', 'harbor.example.com/library/busybox', 'migrated'],
      [18, '0.0-missing', null, 'unknown'],
      [22, null, null, 'unknown'],
    ]);
    expect(refs.find((r) => r.line === 13)!.reason).toBe("the tag: beside it on line 14 is empty (the chart's appVersion): which tag of infra/tools/kubectl is not known here");
    expect(refs.find((r) => r.line === 18)!.reason).toBe('tag busybox:0.0-missing is not in the report');
    expect(refs.find((r) => r.line === 22)!.reason).toBe('tag team/api:latest is not in the report');
    const table = await runCli(['report', 'references', dir, '--from', report, '--old-host', OLD, '--new-host', 'harbor.example.com']);
    expect(table.stdout).toMatch(new RegExp(`^values\\.yaml:3 +${OLD}/team/api \\(tag: 1\\.0\\) +harbor\\.example\\.com/platform/api +migrated`, 'm'));

    const write = await runCli(['report', 'references', dir, '--from', report, '--old-host', OLD, '--new-host', 'harbor.example.com', '--write']);
    expect(write.exitCode).toBe(1);
    expect(readFileSync(path.join(dir, 'values.yaml'), 'utf8')).toBe(
      values.replace(`    repository: ${OLD}/team/api\n`, '    repository: harbor.example.com/platform/api\n').replace(`    repository: ${OLD}/busybox\n`, '    repository: harbor.example.com/library/busybox\n'),
    );
    expect(write.stderr).toContain('2 references rewritten in 1 file; 4 left (failed or unknown tags)');
  });
});

import { execa } from 'execa';
import { mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildFaultyStorage, type BuiltTree } from '../fixtures/trees.js';
import { BIN, DEMO_STORAGE, runCli } from './helpers/cli.js';
import { startHarborDouble } from './helpers/harbor-double.js';
import { startRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

interface Report {
  via: string;
  images: Array<{ source: string; destination: string | null; digest: string | null; status: string; reason: string | null }>;
}

/** Every command line seen in /proc while `job` runs: what `ps` would have shown anyone on the machine. */
async function watchProcessList<T>(job: () => Promise<T>): Promise<{ result: T; cmdlines: Set<string> }> {
  const cmdlines = new Set<string>();
  let running = true;
  const poll = (async () => {
    while (running) {
      for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
        try {
          const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
          if (cmd) cmdlines.add(cmd);
        } catch {
          // gone already
        }
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  try {
    return { result: await job(), cmdlines };
  } finally {
    running = false;
    await poll;
  }
}

describe('push --via skopeo', () => {
  let tree: BuiltTree;
  beforeAll(() => {
    tree = buildFaultyStorage(path.join(tempDir(), 'registry'));
  });

  it('pushes every healthy tag byte-identical into a docker-registry, reports the faulty ones, cleans its work dir', async () => {
    const registry = await startRegistry();
    const work = tempDir('regmigrate-work-');
    const report = path.join(tempDir(), 'report.json');
    const result = await runCli(['push', tree.root, '--to', registry.host, '--via', 'skopeo', '--work-dir', work, '--report', report]);
    expect(result.exitCode).toBe(1);
    const doc = JSON.parse(readFileSync(report, 'utf8')) as Report;
    expect(doc.via).toBe('skopeo');
    for (const t of tree.tags) {
      const row = doc.images.find((i) => i.source === `${t.repository}:${t.tag}`)!;
      if (t.fault) {
        expect(row.status).toBe('failed');
        expect(row.reason).toContain(t.fault.kind);
      } else {
        expect(row.status, row.reason ?? '').toBe('verified');
        expect(row.digest).toBe(t.digest);
      }
    }
    expect(result.stderr).toMatch(/transferred by skopeo copy/);
    expect(readdirSync(work)).toEqual([]);
  });

  it('creates Harbor projects first and keeps the password out of the process list', async () => {
    const password = 'Sk0peo-pass-Qz4';
    const harbor = await startHarborDouble({ users: { admin: { password, admin: true } }, projects: [] });
    const { result, cmdlines } = await watchProcessList(() =>
      runCli(['push', DEMO_STORAGE, '--to', harbor.host, '--via', 'skopeo', '--username', 'admin', '--password-stdin'], { input: `${password}\n` }),
    );
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout.match(/verified/g)).toHaveLength(7);
    expect([...harbor.projects.keys()].sort()).toEqual(['infra', 'library', 'team']);
    const firstUpload = harbor.events.indexOf('first-blob-upload');
    expect(harbor.events.slice(0, firstUpload).filter((e) => e.startsWith('project-created'))).toHaveLength(3);
    // This run's copies: other tests on the machine run skopeo too (building fixtures, without an authfile).
    const skopeoRuns = [...cmdlines].filter((c) => c.includes('skopeo copy') && c.includes(`docker://${harbor.host}/`));
    expect(skopeoRuns.length).toBeGreaterThan(0);
    expect(skopeoRuns.every((c) => c.includes('--dest-authfile'))).toBe(true);
    for (const cmd of cmdlines) {
      expect(cmd).not.toContain(password);
      expect(cmd).not.toContain(Buffer.from(`admin:${password}`).toString('base64'));
    }
  });

  it('explains a missing skopeo, with the install hint', async () => {
    const bin = tempDir('regmigrate-path-');
    mkdirSync(path.join(bin, 'only-node'));
    symlinkSync(process.execPath, path.join(bin, 'only-node', 'node'));
    const result = await execa(BIN, ['push', DEMO_STORAGE, '--to', '127.0.0.1:9', '--via', 'skopeo'], { reject: false, env: { PATH: path.join(bin, 'only-node') }, extendEnv: false });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/--via skopeo: skopeo is not installed/);
    expect(result.stderr).toMatch(/hint: install it: apt-get install skopeo/);
  });
});

describe('push --via skopeo --keep-work-dir', () => {
  it('keeps the layouts but never the credentials', async () => {
    const harbor = await startHarborDouble({ users: { admin: { password: 'Keep-pass-7', admin: true } }, projects: [] });
    const work = tempDir('regmigrate-work-');
    const result = await runCli(['push', DEMO_STORAGE, '--to', harbor.host, '--via', 'skopeo', '--work-dir', work, '--keep-work-dir', '--username', 'admin', '--password-stdin'], {
      input: 'Keep-pass-7\n',
    });
    expect(result.exitCode, result.stderr).toBe(0);
    const [kept] = readdirSync(work);
    expect(result.stderr).toContain(`work directory kept: ${path.join(work, kept!)}`);
    expect(readdirSync(path.join(work, kept!)).sort()).toEqual(['images']);
    await execa('skopeo', ['inspect', `dir:${path.join(work, kept!, 'images', 'infra/tools/kubectl:1.29')}`]);
  });
});

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildDemoStorage, type BuiltTree } from '../fixtures/trees.js';
import { runCli } from './helpers/cli.js';
import { startHarborDouble, type HarborDouble } from './helpers/harbor-double.js';
import { tempDir } from './helpers/tmp.js';

const ADMIN_PASSWORD = 'Adm1n-s3cret-Zq7';
const ROBOT_PASSWORD = 'R0bot-s3cret-Xw9';

const USERS = {
  admin: { password: ADMIN_PASSWORD, admin: true },
  'robot$ci': { password: ROBOT_PASSWORD, robot: 'system' as const },
};

interface Report {
  images: Array<{ source: string; destination: string | null; digest: string | null; status: string; reason: string | null }>;
  summary: { verified: number; failed: number; projectsCreated: string[] };
}

function push(harbor: HarborDouble, root: string, user: string, password: string, extra: string[] = []) {
  return runCli(['push', root, '--to', harbor.host, '--username', user, '--password-stdin', ...extra], { input: `${password}\n` });
}

describe('push into Harbor (test double over a real docker-registry with token auth)', () => {
  let harbor: HarborDouble;
  let tree: BuiltTree;
  beforeAll(async () => {
    harbor = await startHarborDouble({ users: USERS, projects: [] });
    tree = buildDemoStorage(path.join(tempDir(), 'registry'));
  });

  it('creates the projects first, then pushes every image byte-identical', async () => {
    const report = path.join(tempDir(), 'report.json');
    const result = await push(harbor, tree.root, 'admin', ADMIN_PASSWORD, ['--report', report]);
    expect(result.stderr).toContain('Harbor v2.15.0-double');
    expect(result.exitCode, result.stderr).toBe(0);
    expect([...harbor.projects.keys()].sort()).toEqual(['infra', 'library', 'team']);
    // Every project exists before the first blob is uploaded.
    const firstUpload = harbor.events.indexOf('first-blob-upload');
    expect(firstUpload).toBeGreaterThan(0);
    expect(harbor.events.slice(0, firstUpload).sort()).toEqual(['project-created:infra', 'project-created:library', 'project-created:team']);
    const doc = JSON.parse(readFileSync(report, 'utf8')) as Report;
    expect(doc.summary.projectsCreated.sort()).toEqual(['infra', 'library', 'team']);
    for (const expected of tree.tags) {
      const row = doc.images.find((i) => i.source === `${expected.repository}:${expected.tag}`)!;
      expect(row.status).toBe('verified');
      expect(row.digest).toBe(expected.digest);
    }
    // Private by default; `metadata.public` was sent as the string Harbor expects (the double refuses booleans).
    expect(harbor.projects.get('team')!.public).toBe(false);
  });

  it('never shows the password in output or report', async () => {
    const report = path.join(tempDir(), 'report.csv');
    const result = await push(harbor, tree.root, 'admin', ADMIN_PASSWORD, ['--report', report]);
    expect(result.exitCode).toBe(0);
    for (const text of [result.stdout, result.stderr, readFileSync(report, 'utf8')]) {
      expect(text).not.toContain(ADMIN_PASSWORD);
      expect(text).not.toContain(Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64'));
    }
  });

  it('fails cleanly, before any upload, when the account cannot create the projects it needs', async () => {
    const robotHarbor = await startHarborDouble({ users: USERS, projects: [] });
    const result = await push(robotHarbor, tree.root, 'robot$ci', ROBOT_PASSWORD);
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toMatch(/cannot create project "infra": Harbor refused \(403/);
    expect(result.stderr).toMatch(/create project "infra" in Harbor first/);
    expect(robotHarbor.log.filter((r) => r.method === 'PUT' || r.method === 'PATCH')).toEqual([]);
    expect(result.stderr).not.toContain(ROBOT_PASSWORD);
  });

  it('lets a robot push into projects that exist', async () => {
    const robotHarbor = await startHarborDouble({ users: USERS, projects: ['library', 'team', 'infra'] });
    const result = await push(robotHarbor, tree.root, 'robot$ci', ROBOT_PASSWORD, ['--output', 'json']);
    expect(result.exitCode, result.stderr).toBe(0);
    const doc = JSON.parse(result.stdout) as Report;
    expect(doc.summary.verified).toBe(7);
  });

  it('exits 3 with a clear message when the password is wrong', async () => {
    const result = await push(harbor, tree.root, 'admin', 'wrong-password');
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toMatch(/refused the credentials/);
  });

  it('survives tokens that expire every two seconds during a longer push', async () => {
    // Every registry request takes 150 ms and one upload runs at a time: the push lasts several token lifetimes
    // (with a blob's check folded into its upload's POST, there are fewer requests to stretch it than there were).
    const shortLived = await startHarborDouble({ users: USERS, projects: [], tokenLifetime: 2, registryDelayMs: 150 });
    const result = await push(shortLived, tree.root, 'admin', ADMIN_PASSWORD, ['--concurrency', '1']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout.match(/verified/g)).toHaveLength(7);
    // Tokens were renewed as they aged (several scopes, several lifetimes), not once per request.
    expect(shortLived.tokenRequests).toBeGreaterThan(4);
    const pushed = shortLived.log.filter((r) => r.path.startsWith('/v2/') && r.path !== '/v2/');
    expect(shortLived.tokenRequests).toBeLessThan(pushed.length);
    // Renewed before expiry, not on refusal: a 401 comes only to a request that was in flight (150 ms here, more
    // on a loaded machine) when its token's exact expiry passed, and it is renewed and sent again (exit 0 above).
    // A client that renewed only on refusal would meet one per scope per lifetime, several times this share.
    expect(pushed.filter((r) => r.status === 401).length, `${pushed.length} requests`).toBeLessThan(Math.max(5, pushed.length / 10));
  });
});

/**
 * Harbor's policies met before the first byte, through the built CLI against the Harbor double: storage quotas,
 * proxy-cache projects, immutable tags, the account's permissions, the old push order (retention), and untagged
 * images kept through garbage collection.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addImage, makeLayer, StorageBuilder, type BuiltImage } from '../fixtures/builder.js';
import { runCli } from './helpers/cli.js';
import { startHarborDouble, type HarborDouble, type HarborUser } from './helpers/harbor-double.js';
import { tempDir } from './helpers/tmp.js';

const PASSWORD = 'P0licy-harbor-Zr8';
const USERS: Record<string, HarborUser> = {
  admin: { password: PASSWORD, admin: true },
  'robot$sync': { password: PASSWORD, robot: 'system' },
};

interface ReportImage {
  source: string;
  destination: string | null;
  digest: string | null;
  status: string;
  reason: string | null;
}
interface Report {
  images: ReportImage[];
}

async function push(harbor: HarborDouble, root: string, user: string, extra: string[] = [], env: Record<string, string> = {}): Promise<{ exitCode: number; stdout: string; stderr: string; report: Report }> {
  const file = path.join(tempDir(), 'report.json');
  const result = await runCli(['push', root, '--to', harbor.host, '--username', user, '--password-stdin', '--report', file, '--retries', '2', ...extra], { input: `${PASSWORD}\n`, env });
  let report: Report = { images: [] };
  try {
    report = JSON.parse(readFileSync(file, 'utf8')) as Report;
  } catch {
    // no report (a dry run, or a run stopped before any work)
  }
  return { ...result, report };
}

/** One image of `layerBytes` (incompressible) in `repo`, tagged `tag`. */
function image(builder: StorageBuilder, repo: string, tag: string, layerBytes: number, label = `${repo}:${tag}`): BuiltImage {
  const built = addImage(builder, repo, { format: 'oci', layers: [makeLayer(`${label}.bin`, label, layerBytes)], label });
  builder.tag(repo, tag, built.digest);
  return built;
}

/** Requests that write blobs or manifests into a project (uploads, mounts, manifest PUTs). */
const writesTo = (harbor: HarborDouble, project: string) => harbor.log.filter((r) => r.path.startsWith(`/v2/${project}/`) && (r.method === 'POST' || r.method === 'PUT' || r.method === 'PATCH'));

describe('Harbor storage quotas, known before the first byte', () => {
  it('refuses a project whose quota is too small before any upload, says so once with the numbers, and pushes the others', async () => {
    const root = path.join(tempDir(), 'registry');
    const builder = new StorageBuilder(root);
    image(builder, 'big/app', 'v1', 150_000);
    image(builder, 'big/app', 'v2', 150_000);
    image(builder, 'fits/app', 'v1', 50_000);
    image(builder, 'open/app', 'v1', 50_000);
    const harbor = await startHarborDouble({
      users: USERS,
      projects: [
        { name: 'big', storageLimit: 200_000 },
        { name: 'fits', storageLimit: 1_000_000, storageUsed: 100_000 },
        { name: 'open' },
      ],
    });

    const dry = await push(harbor, root, 'admin', ['--dry-run']);
    // The dry run shows each project's charge beside its quota; the over-quota project's images cannot go.
    expect(dry.stdout).toMatch(/Storage quota/);
    expect(dry.stdout).toMatch(/big\s+29\d KiB\s+195 KiB\s+0 B\s+195 KiB\s+refused: over quota/);
    expect(dry.stdout).toMatch(/fits\s+49\.\d KiB\s+977 KiB\s+97\.7 KiB\s+879 KiB\s+fits/);
    expect(dry.stdout).toMatch(/open\s+49\.\d KiB\s+unlimited/);
    expect(dry.stdout).toMatch(/big\/app:v1 .*fail: quota-exceeded: project "big" needs/);
    expect(dry.exitCode).toBe(1);
    const plan = JSON.parse((await push(harbor, root, 'admin', ['--dry-run', '--output', 'json'])).stdout) as { quotas: Array<{ project: string; charge: number }> };
    const planned = Object.fromEntries(plan.quotas.filter((q) => q.project !== 'big').map((q) => [q.project, q.charge]));

    const result = await push(harbor, root, 'admin');
    expect(result.exitCode, result.stderr).toBe(1);
    // One line for the project: its name, what it needs, what is left, and what to do.
    const lines = result.stderr.split('\n').filter((l) => l.includes('project "big" needs'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/project "big" needs 29\d KiB more storage and its quota has 195 KiB left \(limit 195 KiB, 0 B used\); raise the project's quota in Harbor .* or leave its repositories out \(--exclude\)/);
    // Not one blob or manifest request went to the refused project.
    expect(writesTo(harbor, 'big')).toEqual([]);
    const byDestination = new Map(result.report.images.map((i) => [i.destination, i]));
    expect(byDestination.get('big/app:v1')).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^quota-exceeded: project "big" needs/) });
    expect(byDestination.get('big/app:v2')?.status).toBe('failed');
    expect(byDestination.get('fits/app:v1')?.status).toBe('verified');
    expect(byDestination.get('open/app:v1')?.status).toBe('verified');
    // What Harbor charged is what the dry run said the run would add, to the byte.
    const charged = { fits: harbor.projects.get('fits')!.storageUsed - 100_000, open: harbor.projects.get('open')!.storageUsed };
    expect(planned).toEqual(charged);
  });

  it('names a quota refusal that still comes (the quota not readable beforehand) by Harbor\'s error code, and does not retry it', async () => {
    const root = path.join(tempDir(), 'registry');
    const builder = new StorageBuilder(root);
    const built = image(builder, 'tight/app', 'v1', 20_000);
    const layer = JSON.parse(built.manifest.toString('utf8')) as { config: { size: number }; layers: Array<{ size: number }> };
    // Room for the blobs, not for the manifest: the refusal comes on the manifest PUT.
    const blobs = layer.config.size + layer.layers[0]!.size;
    const harbor = await startHarborDouble({ users: USERS, projects: [{ name: 'tight', storageLimit: blobs + built.manifest.length - 1 }] });
    // A system robot may not read quotas: nothing to check before, Harbor refuses during the push.
    const result = await push(harbor, root, 'robot$sync');
    expect(result.exitCode).toBe(1);
    const row = result.report.images.find((i) => i.destination === 'tight/app:v1')!;
    expect(row).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^quota-exceeded: PUT .*403 DENIED/) });
    expect(harbor.log.filter((r) => r.method === 'PUT' && r.path.includes('/manifests/'))).toHaveLength(1);
  });
});

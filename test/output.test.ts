/**
 * Standard output that cannot be written. A reader that goes away (`| head`) ends the output quietly; a write that
 * fails (a full disk under a cron job's redirection, here /dev/full) is one line and exit 5, and the run still
 * finishes: its report is written and its lock released (cli/output.ts).
 */
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, DEMO_STORAGE, PROJECT } from './helpers/cli.js';
import { startRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

/** The CLI from a shell, its standard output redirected by `redirect`; its status and standard error. */
async function shell(args: string[], redirect: string): Promise<{ exitCode: number; stderr: string }> {
  const quoted = [BIN, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  const result = await execa('bash', ['-c', `${quoted} ${redirect}; exit \${PIPESTATUS[0]}`], { reject: false, cwd: PROJECT, env: { REGMIGRATE_NO_PROGRESS: '1' }, timeout: 120_000 });
  return { exitCode: result.exitCode ?? -1, stderr: String(result.stderr) };
}

/** Standard output into /dev/full, as the file itself (not through a pipe): every write fails with ENOSPC. */
const intoFullDisk = (args: string[]) => shell(args, '> /dev/full');

/** Standard output piped into `true`, which exits at once: every write meets a closed pipe (EPIPE). */
const intoClosedPipe = (args: string[]) => shell(args, '| true');

describe('standard output that fails', () => {
  for (const format of ['table', 'json', 'csv', 'html']) {
    it(`scan -o ${format} into a full disk: one line naming standard output and ENOSPC, exit 5, no stack trace`, async () => {
      const { exitCode, stderr } = await intoFullDisk(['scan', DEMO_STORAGE, '-o', format]);
      expect(exitCode, stderr).toBe(5);
      const lines = stderr.split('\n').filter((l) => l.startsWith('regmigrate:'));
      expect(lines).toEqual([expect.stringMatching(/^regmigrate: cannot write standard output: ENOSPC.*; the output is incomplete$/)]);
      expect(stderr).not.toMatch(/internal error|Unhandled|node:events|at /);
    });
  }

  it('sync --state into a full disk: exit 5, and the images are pushed, the journal and report written, the lock released', async () => {
    const registry = await startRegistry();
    const dir = tempDir('regmigrate-output-');
    const state = path.join(dir, 'state.json');
    const report = path.join(dir, 'report.json');
    const { exitCode, stderr } = await intoFullDisk(['sync', DEMO_STORAGE, '--to', registry.host, '--state', state, '--report', report]);
    expect(exitCode, stderr).toBe(5);
    expect(stderr).toMatch(/cannot write standard output: ENOSPC/);
    expect(stderr).not.toMatch(/internal error|Unhandled/);
    expect(existsSync(`${state}.lock`), 'lock left behind').toBe(false);
    const images = (JSON.parse(readFileSync(report, 'utf8')) as { images: Array<{ status: string }> }).images;
    expect(images.length).toBeGreaterThan(0);
    expect(images.every((i) => i.status === 'verified')).toBe(true);
    expect(existsSync(state)).toBe(true);
  });
});

describe('a reader that goes away', () => {
  for (const format of ['table', 'json', 'csv']) {
    it(`scan -o ${format} into a pipe already closed: quiet, with the scan's own status (0 for a healthy storage)`, async () => {
      const { exitCode, stderr } = await intoClosedPipe(['scan', DEMO_STORAGE, '-o', format]);
      expect(stderr).not.toMatch(/internal error|EPIPE|Unhandled/);
      expect(exitCode, stderr).toBe(0);
    });
  }
});

/** Credentials and tokens never reach stdout, stderr, reports, the journal, error messages or the process list. */
import { execa } from 'execa';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, DEMO_STORAGE } from '../helpers/cli.js';
import { startHarborDouble } from '../helpers/harbor-double.js';
import { tempDir } from '../helpers/tmp.js';

const PASSWORD = 'Zx9-very-SECRET-pass-Qq';
const WRONG = 'Wr0ng-SECRET-guess-Kk';

async function watched(args: string[], input: string): Promise<{ stdout: string; stderr: string; exitCode: number; cmdlines: string[] }> {
  const cmdlines: string[] = [];
  const child = execa(BIN, args, { input, reject: false, env: { REGMIGRATE_NO_PROGRESS: '1' } });
  let running = true;
  const poll = (async () => {
    while (running) {
      for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
        try {
          cmdlines.push(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '));
        } catch {
          // gone
        }
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const result = await child;
  running = false;
  await poll;
  return { stdout: String(result.stdout), stderr: String(result.stderr), exitCode: result.exitCode ?? -1, cmdlines };
}

describe('secrets', () => {
  it('never show anywhere, whatever the command and however it ends', async () => {
    const harbor = await startHarborDouble({ users: { 'robot$migrate': { password: PASSWORD, admin: true } }, projects: [], tokenLifetime: 5 });
    const dir = tempDir('regmigrate-secrets-');
    const report = path.join(dir, 'report.json');
    const csv = path.join(dir, 'report.csv');
    const state = path.join(dir, 'state.json');
    const auth = ['--username', 'robot$migrate', '--password-stdin'];
    const runs = [
      await watched(['push', DEMO_STORAGE, '--to', harbor.host, ...auth, '--include', 'team/**', '--report', report], `${PASSWORD}\n`),
      await watched(['push', DEMO_STORAGE, '--to', harbor.host, ...auth, '--via', 'skopeo', '--report', csv], `${PASSWORD}\n`),
      await watched(['sync', DEMO_STORAGE, '--to', harbor.host, ...auth, '--state', state], `${PASSWORD}\n`),
      await watched(['diff', DEMO_STORAGE, '--to', harbor.host, ...auth, '--output', 'json'], `${PASSWORD}\n`),
      await watched(['push', DEMO_STORAGE, '--to', harbor.host, ...auth], `${WRONG}\n`),
      await watched(['sync', DEMO_STORAGE, '--to', harbor.host, '--username', 'robot$migrate', '--password-stdin', '--state', state], `${WRONG}\n`),
    ];
    expect(runs.slice(0, 4).map((r) => r.exitCode)).toEqual([0, 0, 0, 0]);
    expect(runs[4]!.exitCode).toBe(3);
    expect(runs[4]!.stderr).toMatch(/refused the credentials from --username\/--password-stdin/);
    expect(harbor.issuedTokens.length).toBeGreaterThan(3);
    const secrets = [PASSWORD, WRONG, Buffer.from(`robot$migrate:${PASSWORD}`).toString('base64'), Buffer.from(`robot$migrate:${WRONG}`).toString('base64'), ...harbor.issuedTokens];
    const texts = [...runs.flatMap((r) => [r.stdout, r.stderr, ...r.cmdlines]), readFileSync(report, 'utf8'), readFileSync(csv, 'utf8'), readFileSync(state, 'utf8')];
    for (const text of texts) for (const secret of secrets) expect(text.includes(secret), `a secret appeared in: ${text.slice(0, 200)}`).toBe(false);
    expect(runs.some((r) => r.cmdlines.some((c) => c.includes('skopeo copy')))).toBe(true);
  }, 300_000); // six commands, each a whole run: minutes on a loaded machine

  it('warns when the docker config holding the password is readable by others', async () => {
    const harbor = await startHarborDouble({ users: { admin: { password: PASSWORD, admin: true } }, projects: [] });
    const dir = tempDir('regmigrate-cfg-');
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ auths: { [harbor.host]: { auth: Buffer.from(`admin:${PASSWORD}`).toString('base64') } } }), { mode: 0o644 });
    const result = await watched(['push', DEMO_STORAGE, '--to', harbor.host, '--docker-config', dir], '');
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toMatch(/warning: .*config\.json is readable by other users \(mode 0644\); chmod 600 it/);
    expect(result.stderr).not.toContain(PASSWORD);
  });
});

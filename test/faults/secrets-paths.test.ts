/**
 * Secrets on every way out, and checks that can really fail: every failing-credential path keeps the password out
 * of stdout, stderr and reports; children get a scrubbed environment; a second signal still cleans up; a destination
 * that serves other bytes than were pushed is caught.
 */
import { execa, execaSync } from 'execa';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDemoStorage, type BuiltTree } from '../../fixtures/trees.js';
import { BIN, runCli } from '../helpers/cli.js';
import { startHarborDouble } from '../helpers/harbor-double.js';
import { waitFor } from '../helpers/observe.js';
import { startProxy } from '../helpers/proxy.js';
import { startRegistry } from '../helpers/registry.js';
import { atEnd } from '../helpers/teardown.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'Zq8-very-secret-Pw';

function demo(): BuiltTree {
  return buildDemoStorage(path.join(tempDir('regmigrate-src-'), 'registry'));
}

/** The password, and the base64 forms a Basic header or an authfile would carry, in none of these texts. */
function expectNoSecret(texts: string[], user = 'alice'): void {
  for (const text of texts) {
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(Buffer.from(`${user}:${SECRET}`).toString('base64'));
  }
}

function readIf(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

describe('failing credentials never show the password', () => {
  it('Basic auth (htpasswd registry), token auth (Harbor double) and a credential helper', async () => {
    const dir = tempDir();
    const htpasswd = path.join(dir, 'htpasswd');
    writeFileSync(htpasswd, (await execa('htpasswd', ['-Bbn', 'alice', 'the-right-one'])).stdout + '\n');
    const basic = await startRegistry({ htpasswd });
    const harbor = await startHarborDouble({ users: { alice: { password: 'the-right-one', admin: true } }, projects: [] });
    const tree = demo();
    for (const host of [basic.host, harbor.host]) {
      const report = path.join(tempDir(), 'r.json');
      const result = await runCli(['push', tree.root, '--to', host, '--username', 'alice', '--password-stdin', '--report', report], { input: `${SECRET}\n` });
      expect(result.exitCode).toBe(3);
      expect(result.stderr).toMatch(/refused/);
      expectNoSecret([result.stdout, result.stderr, readIf(report)]);
    }
    // A credential helper that hands out the wrong password.
    const helpers = tempDir('regmigrate-helper-');
    writeFileSync(path.join(helpers, 'docker-credential-wrong'), `#!/bin/sh\ncat >/dev/null\necho '{"Username":"alice","Secret":"${SECRET}"}'\n`);
    chmodSync(path.join(helpers, 'docker-credential-wrong'), 0o755);
    const config = tempDir();
    writeFileSync(path.join(config, 'config.json'), JSON.stringify({ credHelpers: { [basic.host]: 'wrong' } }));
    const report = path.join(tempDir(), 'r.json');
    const viaHelper = await runCli(['push', tree.root, '--to', basic.host, '--report', report], { env: { DOCKER_CONFIG: config, PATH: `${helpers}:${process.env.PATH}` } });
    expect(viaHelper.exitCode).toBe(3);
    expectNoSecret([viaHelper.stdout, viaHelper.stderr, readIf(report)]);
  });

  it('credentials in --to are refused without being echoed', async () => {
    const result = await runCli(['push', demo().root, '--to', `https://alice:${SECRET}@harbor.example.com`]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/--to "https:\/\/<credentials removed>@harbor\.example\.com": credentials are not accepted/);
    expectNoSecret([result.stdout, result.stderr]);
  });

  it('Basic credentials never go to an http:// token realm on another host', async () => {
    // A registry that sends clients to a token service in clear on another host (127.0.0.2 is never contacted).
    const server = http.createServer((req, res) => {
      res.writeHead(401, { 'www-authenticate': 'Bearer realm="http://127.0.0.2:9/token",service="reg"', 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    atEnd(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const host = `127.0.0.1:${(server.address() as { port: number }).port}`;
    const result = await runCli(['push', demo().root, '--to', host, '--username', 'alice', '--password-stdin'], { input: `${SECRET}\n` });
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toMatch(/token service http:\/\/127\.0\.0\.2:9, over plain http on another host: credentials are not sent there/);
    expectNoSecret([result.stdout, result.stderr]);
  });
});

describe('children and signals', () => {
  /** A `skopeo` first on PATH that records its environment, sleeps before a copy, then runs the real one. */
  function shadowSkopeo(sleepSeconds: number): { dir: string; envLog: string } {
    const dir = tempDir('regmigrate-shadow-');
    const envLog = path.join(dir, 'env.log');
    const real = execaSync('sh', ['-c', 'command -v skopeo']).stdout.trim();
    writeFileSync(path.join(dir, 'skopeo'), `#!/bin/sh\nenv >> ${envLog}\nif [ "$1" = copy ]; then sleep ${sleepSeconds}; fi\nexec ${real} "$@"\n`);
    chmodSync(path.join(dir, 'skopeo'), 0o755);
    return { dir, envLog };
  }

  it('skopeo gets no REGMIGRATE_ variable and no password in its environment', async () => {
    const registry = await startRegistry();
    const { dir, envLog } = shadowSkopeo(0);
    const result = await runCli(['push', demo().root, '--to', registry.host, '--via', 'skopeo', '--include', 'team/**'], {
      env: { PATH: `${dir}:${process.env.PATH}`, REGMIGRATE_USERNAME: 'alice', REGMIGRATE_PASSWORD: SECRET, SOME_API_TOKEN: SECRET },
    });
    expect(result.exitCode, result.stderr).toBe(0);
    const env = readFileSync(envLog, 'utf8');
    expect(env).toMatch(/^PATH=/m);
    expect(env).not.toMatch(/REGMIGRATE_/);
    expectNoSecret([env]);
  });

  it('a second SIGINT still removes the authfile and the work directory', async () => {
    const registry = await startRegistry();
    const { dir } = shadowSkopeo(30);
    const work = tempDir('regmigrate-work-');
    const child = execa(BIN, ['push', demo().root, '--to', registry.host, '--via', 'skopeo', '--work-dir', work, '--username', 'alice', '--password-stdin'], {
      reject: false,
      input: `${SECRET}\n`,
      env: { PATH: `${dir}:${process.env.PATH}`, REGMIGRATE_NO_PROGRESS: '1' },
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const authfiles = (): string[] => readdirSync(work).flatMap((d) => (existsSync(path.join(work, d, 'auth.json')) ? [path.join(work, d, 'auth.json')] : []));
    await waitFor(() => authfiles().length > 0, 20_000);
    child.kill('SIGINT');
    await waitFor(() => stderr.includes('SIGINT: starting no new uploads'), 10_000);
    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode).toBe(130);
    expect(String(result.stderr)).toMatch(/SIGINT again: cleaning up and stopping now/);
    expect(readdirSync(work)).toEqual([]);
  });

  it('the default work directory is beside the registry root, even when <root> is given as …/docker/registry/v2', async () => {
    const registry = await startRegistry();
    const tree = demo();
    const result = await runCli(['push', tree.v2, '--to', registry.host, '--via', 'skopeo', '--keep-work-dir', '--include', 'team/**']);
    expect(result.exitCode, result.stderr).toBe(0);
    const kept = /work directory kept: (\S+)/.exec(result.stderr)![1]!;
    atEnd(() => execa('rm', ['-rf', kept]));
    expect(path.relative(tree.root, kept).startsWith('..')).toBe(true);
    expect(path.dirname(kept)).toBe(path.dirname(tree.root));
  });
});

describe('verification can fail', () => {
  it('a destination that serves other bytes than were pushed makes the image failed, exit 1', async () => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    // A middlebox that re-indents manifests on the way out: same JSON, other bytes, other digest.
    proxy.script = (req) =>
      req.method === 'GET' && req.url.pathname === '/v2/team/api/manifests/1.1'
        ? { kind: 'forward', rewriteResponse: (body, headers) => ({ body: Buffer.from(JSON.stringify(JSON.parse(body.toString('utf8')), null, 2)), headers }) }
        : { kind: 'forward' };
    const result = await runCli(['push', demo().root, '--to', proxy.host, '--output', 'json']);
    expect(result.exitCode).toBe(1);
    const doc = JSON.parse(result.stdout) as { images: Array<{ source: string; status: string; reason: string | null }> };
    expect(doc.images.find((i) => i.source === 'team/api:1.1')).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^verification: the destination serves digest sha256:/) });
    expect(doc.images.filter((i) => i.status === 'verified')).toHaveLength(6);
  });

  it('a manifest PUT answered with another digest fails the image, exit 1', async () => {
    const registry = await startRegistry();
    const proxy = await startProxy(registry.host);
    proxy.script = (req) =>
      req.method === 'PUT' && req.url.pathname === '/v2/library/busybox/manifests/1.36'
        ? { kind: 'forward', rewriteResponse: (body, headers) => ({ body, headers: { ...headers, 'docker-content-digest': `sha256:${'e'.repeat(64)}` } }) }
        : { kind: 'forward' };
    const result = await runCli(['push', demo().root, '--to', proxy.host, '--output', 'json']);
    expect(result.exitCode).toBe(1);
    const doc = JSON.parse(result.stdout) as { images: Array<{ source: string; status: string; reason: string | null }> };
    expect(doc.images.find((i) => i.source === 'busybox:1.36')).toMatchObject({ status: 'failed', reason: expect.stringMatching(/computed digest sha256:e{64}/) });
  });
});

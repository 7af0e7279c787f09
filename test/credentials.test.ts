import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveCredentials } from '../src/destination/credentials.js';
import { DEMO_STORAGE, runCli } from './helpers/cli.js';
import { startHarborDouble, type HarborDouble } from './helpers/harbor-double.js';
import { tempDir } from './helpers/tmp.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

function dockerConfig(content: object): string {
  const dir = tempDir('regmigrate-docker-');
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(content), { mode: 0o600 });
  return dir;
}

/** A docker-credential-<name> helper, as docker runs them: server on stdin, JSON on stdout. */
function helperDir(name: string, server: string, user: string, secret: string): string {
  const dir = tempDir('regmigrate-helper-');
  const file = path.join(dir, `docker-credential-${name}`);
  writeFileSync(
    file,
    `#!/bin/sh\nread server\nif [ "$1" = get ] && [ "$server" = "${server}" ]; then printf '{"ServerURL":"%s","Username":"${user}","Secret":"${secret}"}' "$server"; exit 0; fi\necho "credentials not found in native keychain"; exit 1\n`,
  );
  chmodSync(file, 0o755);
  return dir;
}

describe('resolveCredentials', () => {
  const none = { username: undefined, password: undefined, env: {} as NodeJS.ProcessEnv, dockerConfig: undefined };

  it('prefers --username/--password-stdin, then the environment', async () => {
    expect(await resolveCredentials('h:1', { ...none, username: 'u', password: 'p', env: { REGMIGRATE_USERNAME: 'e', REGMIGRATE_PASSWORD: 'x' } })).toMatchObject({ username: 'u', password: 'p' });
    expect(await resolveCredentials('h:1', { ...none, env: { REGMIGRATE_USERNAME: 'e', REGMIGRATE_PASSWORD: 'x' } })).toMatchObject({ username: 'e', password: 'x' });
  });

  it.each([
    ['host key', { auths: { 'h:1': { auth: b64('alice:pw:with:colons') } } }, { username: 'alice', password: 'pw:with:colons' }],
    ['https:// key with a path', { auths: { 'https://h:1/v2/': { auth: b64('bob:pw') } } }, { username: 'bob', password: 'pw' }],
    ['username/password fields', { auths: { 'h:1': { username: 'carol', password: 'pw3' } } }, { username: 'carol', password: 'pw3' }],
  ])('reads docker config auths (%s)', async (_label, config, expected) => {
    expect(await resolveCredentials('h:1', { ...none, dockerConfig: dockerConfig(config) })).toMatchObject(expected);
  });

  it('returns undefined (anonymous) when nothing matches the host', async () => {
    expect(await resolveCredentials('other:2', { ...none, dockerConfig: dockerConfig({ auths: { 'h:1': { auth: b64('a:b') } } }) })).toBeUndefined();
  });

  it('runs the credential helper named in credHelpers, then credsStore', async () => {
    const dir = helperDir('fake', 'h:1', 'helper-user', 'helper-secret');
    const env = { PATH: `${dir}:${process.env.PATH}` };
    const oldPath = process.env.PATH;
    process.env.PATH = env.PATH;
    try {
      expect(await resolveCredentials('h:1', { ...none, dockerConfig: dockerConfig({ credHelpers: { 'h:1': 'fake' } }) })).toMatchObject({ username: 'helper-user', password: 'helper-secret' });
      expect(await resolveCredentials('h:1', { ...none, dockerConfig: dockerConfig({ credsStore: 'fake' }) })).toMatchObject({ username: 'helper-user' });
    } finally {
      process.env.PATH = oldPath;
    }
  });

  it.each([
    [{ auths: { 'h:1': { auth: b64('no-colon') } } }, /auths\["h:1"\]\.auth is not base64 of user:password/],
    [{ credHelpers: { 'h:1': 'absent-helper' } }, /credential helper docker-credential-absent-helper is not installed/],
    [{ credHelpers: { 'h:1': '../evil' } }, /invalid credential helper/],
  ])('explains a bad docker config: %j', async (config, message) => {
    await expect(resolveCredentials('h:1', { ...none, dockerConfig: dockerConfig(config) })).rejects.toThrow(message);
  });

  it('explains a config file that is not JSON', async () => {
    const dir = tempDir();
    mkdirSync(path.join(dir, 'd'));
    writeFileSync(path.join(dir, 'd', 'config.json'), '{nope');
    await expect(resolveCredentials('h:1', { ...none, dockerConfig: path.join(dir, 'd') })).rejects.toThrow(/config\.json: not valid JSON/);
  });
});

describe('push with credentials from the docker config', () => {
  let harbor: HarborDouble;
  beforeAll(async () => {
    harbor = await startHarborDouble({ users: { admin: { password: 'Cfg-pass-9x', admin: true } }, projects: [] });
  });

  it('pushes with auths from --docker-config', async () => {
    const dir = dockerConfig({ auths: { [harbor.host]: { auth: b64('admin:Cfg-pass-9x') } } });
    const result = await runCli(['push', DEMO_STORAGE, '--to', harbor.host, '--docker-config', dir, '--storage-limit', '10GiB', '--public']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(harbor.projects.get('team')).toMatchObject({ public: true, storageLimit: 10 * 1024 ** 3 });
  });

  it('pushes with a credential helper found via DOCKER_CONFIG', async () => {
    const helpers = helperDir('test', harbor.host, 'admin', 'Cfg-pass-9x');
    const dir = dockerConfig({ credHelpers: { [harbor.host]: 'test' } });
    const result = await runCli(['push', DEMO_STORAGE, '--to', harbor.host], { env: { DOCKER_CONFIG: dir, PATH: `${helpers}:${process.env.PATH}` } });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).not.toContain('Cfg-pass-9x');
  });
});

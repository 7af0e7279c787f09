import { execa } from 'execa';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEMO_STORAGE, runCli } from './helpers/cli.js';
import { startRegistry, type RunningRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

describe('TLS to the destination', () => {
  let registry: RunningRegistry;
  let certificate: string;
  let key: string;
  beforeAll(async () => {
    const dir = tempDir('regmigrate-tls-');
    certificate = path.join(dir, 'ca.crt');
    key = path.join(dir, 'ca.key');
    // A self-signed certificate for 127.0.0.1: its own CA.
    await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', certificate, '-days', '2', '-subj', '/CN=regmigrate-test', '-addext', 'subjectAltName=IP:127.0.0.1']);
    registry = await startRegistry({ tls: { certificate, key } });
  });

  it('verifies certificates by default and explains a failure, before any work (exit 3)', async () => {
    const result = await runCli(['push', DEMO_STORAGE, '--to', `https://${registry.host}`, '--retries', '1']);
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toMatch(/TLS certificate not trusted \(.*SELF_SIGNED.*\)/);
    expect(result.stderr).toMatch(/hint: give the CA that signed it with --ca-file, or --insecure/);
  });

  it('trusts the CA given with --ca-file', async () => {
    const result = await runCli(['push', DEMO_STORAGE, '--to', `https://${registry.host}`, '--ca-file', certificate]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout.match(/verified/g)).toHaveLength(7);
  });

  it.each([
    ['http://', (host: string) => `http://${host}`],
    ['a loopback host (plain HTTP by default)', (host: string) => host],
  ])('%s to a registry that speaks HTTPS says so and names the URL to use (exit 3)', async (_, to) => {
    const result = await runCli(['push', DEMO_STORAGE, '--to', to(registry.host), '--dry-run']);
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toBe(`regmigrate: http://${registry.host} speaks HTTPS, not plain HTTP\nhint: use --to https://${registry.host}`);
  });

  it('a --ca-file that holds no certificate (here the key) is refused before any contact (exit 2)', async () => {
    const empty = path.join(tempDir(), 'empty.pem');
    writeFileSync(empty, '');
    for (const file of [key, empty]) {
      const result = await runCli(['push', DEMO_STORAGE, '--to', `https://${registry.host}`, '--ca-file', file, '--dry-run']);
      expect(result.exitCode).toBe(2);
      expect(result.stderr.split('\n')[0]).toBe(`regmigrate: --ca-file ${file}: holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)`);
    }
  });

  it('skips verification with --insecure', async () => {
    const result = await runCli(['push', DEMO_STORAGE, '--to', `https://${registry.host}`, '--insecure']);
    expect(result.exitCode, result.stderr).toBe(0);
  });
});

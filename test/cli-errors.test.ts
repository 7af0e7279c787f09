/**
 * Errors a user meets first, each one clear line naming what is wrong and what to do: a real docker-registry that
 * speaks plain HTTP given as https://, a port nothing listens on, a document that is not a push report.
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEMO_STORAGE, runCli } from './helpers/cli.js';
import { startRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

/** A loopback port nothing listens on (taken, then given back). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('the destination, first contact', () => {
  it.each(['http://', 'https://', 'https:'])('--to %s names no host: exit 2, one line, before any contact', async (to) => {
    const result = await runCli(['push', DEMO_STORAGE, '--to', to, '--dry-run']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr.split('\n')[0]).toBe(`regmigrate: --to "${to}" names no host`);
  });

  it('https:// to a registry that speaks plain HTTP says so and names the URL to use', async () => {
    const registry = await startRegistry();
    const result = await runCli(['push', DEMO_STORAGE, '--to', `https://${registry.host}`, '--dry-run']);
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toBe(`regmigrate: https://${registry.host} speaks plain HTTP, not HTTPS\nhint: use --to http://${registry.host}`);
  });

  it('a refused connection: one line saying it is retrying, then one line saying it gave up', async () => {
    const port = await closedPort();
    const result = await runCli(['push', DEMO_STORAGE, '--to', `127.0.0.1:${port}`, '--retries', '2', '--dry-run']);
    expect(result.exitCode).toBe(3);
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines).toEqual([
      `regmigrate: http://127.0.0.1:${port} did not answer (GET /v2/: connect ECONNREFUSED 127.0.0.1:${port}); retrying, up to 2 attempts in all`,
      `regmigrate: http://127.0.0.1:${port} is unreachable: GET /v2/: connect ECONNREFUSED 127.0.0.1:${port}`,
      'hint: check --to, the network and that the registry runs',
    ]);
  });
});

describe('report merge', () => {
  it('names a scan document for what it is', async () => {
    const scan = await runCli(['scan', DEMO_STORAGE, '--output', 'json']);
    const file = path.join(tempDir(), 'scan.json');
    writeFileSync(file, scan.stdout);
    const result = await runCli(['report', 'merge', file]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toBe(`regmigrate: ${file}: not a regmigrate push report (it is a regmigrate.scan document)\nhint: give the --report file (.json) of a push or sync`);
  });

  it('names the field that is wrong, in our words', async () => {
    const file = path.join(tempDir(), 'bad.json');
    writeFileSync(file, JSON.stringify({ schemaVersion: 1, kind: 'regmigrate.push', destination: 'h', summary: {}, images: [{ source: 'a:1', destination: null, digest: null, mediaType: null, size: 1, status: 'done', reason: null }] }));
    const result = await runCli(['report', 'merge', file]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/bad\.json: not a regmigrate push report \(images\.0\.status: expected "verified" or "skipped-existing" or "skipped" or "failed"\)\n/);
    expect(result.stderr).not.toMatch(/Invalid input/);
  });
});

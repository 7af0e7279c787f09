/**
 * Errors a user meets first, each one clear line naming what is wrong and what to do: a real docker-registry that
 * speaks plain HTTP given as https://, a port nothing listens on, a source that is no storage, a document that is
 * not a push report.
 */
import { execa } from 'execa';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, DEMO_STORAGE, runCli } from './helpers/cli.js';
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

/** A loopback server that accepts every connection and never answers; counts the `GET /v2/` requests it is sent. */
async function silentServer(): Promise<{ port: number; pings: () => number; close: () => Promise<void> }> {
  let pings = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('data', (chunk) => {
      pings += chunk.toString('latin1').split('GET /v2/ HTTP/1.1').length - 1;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    port,
    pings: () => pings,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A loopback server that counts the connections made to it and closes each at once. */
async function countingServer(): Promise<{ host: string; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { host: `127.0.0.1:${port}`, connections: () => connections, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe('the source is checked before the destination is contacted', () => {
  it.each([
    ['push', 'a file that is not a tar', []],
    ['sync', 'a file that is not a tar', ['--state', 'STATE']],
    ['diff', 'a file that is not a tar', []],
    ['push', 'a path that does not exist', []],
  ])('%s of %s: exit 2, one line naming it, no connection to the destination', async (command, what, extra) => {
    const destination = await countingServer();
    const dir = tempDir();
    const source = path.join(dir, what.startsWith('a file') ? 'afile' : 'missing');
    if (what.startsWith('a file')) writeFileSync(source, 'hello\n');
    const args = extra.map((a) => (a === 'STATE' ? path.join(dir, 'state.json') : a));
    const result = await runCli([command, source, '--to', destination.host, ...args]);
    await destination.close();
    expect(result.exitCode).toBe(2);
    expect(result.stderr.split('\n')[0]).toBe(`regmigrate: ${source}: ${what.startsWith('a file') ? 'not a directory nor a tar archive' : 'no such file or directory'}`);
    expect(destination.connections()).toBe(0);
  });
});

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

  it('a plain web server answering 404 with an HTML page: one line saying it is not a registry, no markup', async () => {
    // What Apache answers for a path it does not have.
    const page = '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n<title>404 Not Found</title>\n</head><body>\n<h1>Not Found</h1>\n<p>The requested URL was not found on this server.</p>\n</body></html>\n';
    const web = createHttpServer((_, res) => res.writeHead(404, { 'content-type': 'text/html; charset=iso-8859-1' }).end(page));
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    const { port } = web.address() as { port: number };
    const result = await runCli(['push', DEMO_STORAGE, '--to', `127.0.0.1:${port}`, '--dry-run']);
    await new Promise<void>((resolve) => web.close(() => resolve()));
    expect(result.exitCode).toBe(3);
    expect(result.stderr.split('\n')).toEqual([
      `regmigrate: http://127.0.0.1:${port} is not a registry: GET /v2/: 404: an HTML page (404 Not Found)`,
      'hint: check --to: it must be the registry (Harbor) host, whose GET /v2/ answers 200 or 401',
    ]);
  });

  it('a refused connection: one line saying it is retrying, then one line saying it gave up', async () => {
    const port = await closedPort();
    const result = await runCli(['push', DEMO_STORAGE, '--to', `127.0.0.1:${port}`, '--retries', '2', '--dry-run']);
    expect(result.exitCode).toBe(3);
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines).toEqual([
      `regmigrate: http://127.0.0.1:${port} did not answer (GET /v2/: connect ECONNREFUSED 127.0.0.1:${port}); retrying, up to 2 attempts in all, each waiting up to 10 s for an answer`,
      `regmigrate: http://127.0.0.1:${port} is unreachable: GET /v2/: connect ECONNREFUSED 127.0.0.1:${port}`,
      'hint: check --to, the network and that the registry runs',
    ]);
  });

  it('a host that accepts the connection and never answers: each attempt waits the first-contact time (--timeout when smaller), says so at once, and gives up after --retries attempts', async () => {
    const silent = await silentServer();
    try {
      const result = await runCli(['push', DEMO_STORAGE, '--to', `127.0.0.1:${silent.port}`, '--retries', '3', '--timeout', '1', '--dry-run']);
      expect(result.exitCode).toBe(3);
      expect(result.stderr.trimEnd().split('\n')).toEqual([
        `regmigrate: http://127.0.0.1:${silent.port} did not answer (GET /v2/: no answer within 1 s (UND_ERR_HEADERS_TIMEOUT)); retrying, up to 3 attempts in all, each waiting up to 1 s for an answer`,
        `regmigrate: http://127.0.0.1:${silent.port} is unreachable: GET /v2/: no answer within 1 s (UND_ERR_HEADERS_TIMEOUT)`,
        'hint: check --to, the network and that the registry runs',
      ]);
      expect(silent.pings()).toBe(3);
    } finally {
      await silent.close();
    }
  });

  it('without --timeout, the first contact waits 10 s per attempt, not the transfer timeout of 120 s, and says so on the first failure', async () => {
    const silent = await silentServer();
    const run = execa(BIN, ['push', DEMO_STORAGE, '--to', `127.0.0.1:${silent.port}`, '--dry-run'], { reject: false, env: { REGMIGRATE_NO_PROGRESS: '1' } });
    try {
      // The notice comes after the first attempt; the run is stopped there (the rest would be four more attempts).
      const notice = await new Promise<string>((resolve, reject) => {
        let stderr = '';
        run.stderr!.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
          if (stderr.includes('\n')) resolve(stderr.split('\n')[0]!);
        });
        void run.then(() => reject(new Error(`ended before any notice: ${stderr}`)));
      });
      expect(notice).toBe(
        `regmigrate: http://127.0.0.1:${silent.port} did not answer (GET /v2/: no answer within 10 s (UND_ERR_HEADERS_TIMEOUT)); retrying, up to 5 attempts in all, each waiting up to 10 s for an answer`,
      );
    } finally {
      run.kill('SIGKILL');
      await run;
      await silent.close();
    }
  });
});

describe('outputs refused before any work', () => {
  it('export --out naming an existing file: exit 2, one line, no image tried', async () => {
    const file = path.join(tempDir(), 'out.txt');
    writeFileSync(file, 'x');
    const result = await runCli(['export', DEMO_STORAGE, '--out', file]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toBe(`regmigrate: --out ${file}: is a file, not a directory\nhint: give a directory`);
    expect(result.stdout).toBe('');
  });

  it('push --dry-run --report: says once that the report is not written, and writes none', async () => {
    const registry = await startRegistry();
    const report = path.join(tempDir(), 'report.json');
    const result = await runCli(['push', DEMO_STORAGE, '--to', registry.host, '--dry-run', '--report', report]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr.match(/--report is not written by a dry run/g)).toHaveLength(1);
    expect(existsSync(report)).toBe(false);
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
    expect(result.stderr).toMatch(/bad\.json: not a regmigrate push report \(images\.0\.status: expected "verified" or "skipped-existing" or "skipped" or "immutable" or "failed" or "interrupted"\)\n/);
    expect(result.stderr).not.toMatch(/Invalid input/);
  });

  it('reports of two destinations are refused, naming both: one verified list is of one registry (exit 2)', async () => {
    const dir = tempDir();
    const of = (destination: string, digest: string): object => ({
      schemaVersion: 1,
      kind: 'regmigrate.push',
      destination,
      summary: {},
      images: [{ source: 'x:1', destination: 'p/x:1', digest, mediaType: null, size: 1, status: 'verified', reason: null }],
    });
    const [a, b] = [path.join(dir, 'a.json'), path.join(dir, 'b.json')];
    writeFileSync(a, JSON.stringify(of('harbor-a.example.com', `sha256:${'a'.repeat(64)}`)));
    writeFileSync(b, JSON.stringify(of('harbor-b.example.com', `sha256:${'b'.repeat(64)}`)));
    for (const files of [[a, b], [b, a]]) {
      const result = await runCli(['report', 'merge', ...files]);
      expect(result.exitCode).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr.split('\n')[0]).toMatch(/^regmigrate: the reports are of different destinations: harbor-[ab]\.example\.com, harbor-[ab]\.example\.com$/);
      expect(result.stderr).toContain('harbor-a.example.com');
      expect(result.stderr).toContain('harbor-b.example.com');
    }
    // Two reports of one destination merge (the same tag at two digests is a conflict, not a refusal).
    writeFileSync(b, JSON.stringify(of('harbor-a.example.com', `sha256:${'b'.repeat(64)}`)));
    const same = await runCli(['report', 'merge', a, b]);
    expect(same.exitCode).toBe(1);
    expect(same.stderr).toMatch(/^regmigrate: conflict: p\/x:1: /m);
  });

  it('a CSV report, or a sync state file, is refused with one message and hint by merge and html alike', async () => {
    const dir = tempDir();
    const csv = path.join(dir, 'rep.csv');
    writeFileSync(csv, 'source,destination,digest,media_type,size,status,reason,converted_to\n');
    const state = path.join(dir, 'state.json');
    writeFileSync(state, JSON.stringify({ schemaVersion: 1, kind: 'regmigrate.sync-state', destination: 'h', updatedAt: '2024-05-01T10:00:00.000Z', tags: {} }));
    const hint = 'hint: give the --report file (.json) of a push or sync';
    for (const command of ['merge', 'html']) {
      const fromCsv = await runCli(['report', command, csv]);
      expect(fromCsv.exitCode).toBe(2);
      expect(fromCsv.stderr).toBe(`regmigrate: ${csv}: a CSV report; only JSON reports can be read\n${hint}`);
      const fromState = await runCli(['report', command, state]);
      expect(fromState.exitCode).toBe(2);
      expect(fromState.stderr).toBe(`regmigrate: ${state}: not a regmigrate push report (it is a regmigrate.sync-state document)\n${hint}`);
    }
    // report rewrites reads a journal too, and says of a CSV report what merge and html say.
    const rewrites = await runCli(['report', 'rewrites', csv, '--old-host', 'old.example.com']);
    expect(rewrites.exitCode).toBe(2);
    expect(rewrites.stderr).toBe(`regmigrate: ${csv}: a CSV report; only JSON reports can be read\nhint: give the --report file (.json) of a push or sync, or the sync journal (--state)`);
  });
});

describe('a source that is an empty tar', () => {
  it('is named for what it is: a tar with no entries, no storage in it (exit 2)', async () => {
    const tar = path.join(tempDir(), 'empty.tar');
    await execa('tar', ['-cf', tar, '--files-from', '/dev/null']);
    const scan = await runCli(['scan', tar]);
    expect(scan.exitCode).toBe(2);
    expect(scan.stderr).toMatch(new RegExp(`^regmigrate: ${tar.replaceAll('/', '\\/').replaceAll('.', '\\.')}: an empty tar archive \\(no entries\\): no registry storage in it$`, 'm'));
  });
});

describe('report merge of a re-run: the same tag and digest in two reports', () => {
  const digest = `sha256:${'a'.repeat(64)}`;
  /** A report of one tag, p/x:1, with the given status and run times. */
  function report(status: string, reason: string | null, times: { startedAt?: string; endedAt?: string }): object {
    return { schemaVersion: 1, kind: 'regmigrate.push', destination: 'h:1', ...times, summary: {}, images: [{ source: 'x:1', destination: 'p/x:1', digest, mediaType: null, size: 1, status, reason }] };
  }
  const early = { startedAt: '2024-05-01T10:00:00.000Z', endedAt: '2024-05-01T11:00:00.000Z' };
  const late = { startedAt: '2024-05-02T10:00:00.000Z', endedAt: '2024-05-02T11:00:00.000Z' };

  it.each([
    ['interrupted, then verified by a re-run', report('failed', 'interrupted', early), report('verified', null, late), 'verified', 0],
    ['verified, then failed verification in a re-run: verified wins', report('verified', null, early), report('failed', 'verify: timeout', late), 'verified', 0],
    ['failed, then already there in a re-run: the later run wins', report('failed', 'interrupted', early), report('skipped-existing', null, late), 'skipped-existing', 0],
    ['already there, then failed in a re-run: the later run wins', report('skipped-existing', null, early), report('failed', 'interrupted', late), 'failed', 1],
    ['already there, then interrupted in a re-run: the later run wins, and an interrupted tag is not done', report('skipped-existing', null, early), report('interrupted', 'interrupted', late), 'interrupted', 1],
    ['no end time: the start time orders them', report('failed', 'interrupted', { startedAt: early.startedAt }), report('skipped-existing', null, { startedAt: late.startedAt }), 'skipped-existing', 0],
  ])('%s, in either order of the files', async (_, first, second, status, exitCode) => {
    const dir = tempDir();
    const [a, b] = [path.join(dir, 'first.json'), path.join(dir, 'second.json')];
    writeFileSync(a, JSON.stringify(first));
    writeFileSync(b, JSON.stringify(second));
    for (const files of [[a, b], [b, a]]) {
      const result = await runCli(['report', 'merge', ...files]);
      expect(result.exitCode, result.stderr).toBe(exitCode);
      const merged = JSON.parse(result.stdout) as { images: Array<{ destination: string; status: string }> };
      expect(merged.images).toEqual([expect.objectContaining({ destination: 'p/x:1', status })]);
      expect(result.stderr).not.toMatch(/conflict/);
    }
  });

  it('without run times the later file wins', async () => {
    const dir = tempDir();
    const [failed, there] = [path.join(dir, 'failed.json'), path.join(dir, 'there.json')];
    writeFileSync(failed, JSON.stringify(report('failed', 'interrupted', {})));
    writeFileSync(there, JSON.stringify(report('skipped-existing', null, {})));
    const statusOf = async (files: string[]): Promise<string | undefined> => (JSON.parse((await runCli(['report', 'merge', ...files])).stdout) as { images: Array<{ status: string }> }).images[0]?.status;
    expect(await statusOf([failed, there])).toBe('skipped-existing');
    expect(await statusOf([there, failed])).toBe('failed');
  });
});

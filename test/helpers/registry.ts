import { execa, type ResultPromise } from 'execa';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll } from 'vitest';
import { tempDir } from './tmp.js';

export interface RegistryOptions {
  /** Serve this registry root instead of a fresh empty one. */
  readonly root?: string;
  readonly readonly?: boolean;
  /** Accept signed schema1 manifests, as Harbor's bundled registry does. */
  readonly schema1?: boolean;
  /** Token auth as Harbor runs it (PROTOCOL.md §7). */
  readonly token?: { realm: string; service: string; issuer: string; certFile: string };
}

export interface RunningRegistry {
  /** `127.0.0.1:PORT` */
  readonly host: string;
  readonly url: string;
  readonly root: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') return reject(new Error('no port'));
      server.close(() => resolve(address.port));
    });
  });
}

/** Starts Debian's docker-registry (distribution 2.8) on a free loopback port; stopped after the file's tests. */
export async function startRegistry(options: RegistryOptions = {}): Promise<RunningRegistry> {
  const dir = tempDir('regmigrate-registry-');
  const root = options.root ?? path.join(dir, 'storage');
  mkdirSync(root, { recursive: true });
  const port = await freePort();
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${root}`,
    '  delete:',
    '    enabled: true',
    ...(options.readonly ? ['  maintenance:', '    readonly:', '      enabled: true'] : []),
    'http:',
    `  addr: 127.0.0.1:${port}`,
    ...(options.schema1 ? ['compatibility:', '  schema1:', '    enabled: true'] : []),
    ...(options.token
      ? [
          'auth:',
          '  token:',
          `    realm: ${options.token.realm}`,
          `    service: ${options.token.service}`,
          `    issuer: ${options.token.issuer}`,
          `    rootcertbundle: ${options.token.certFile}`,
        ]
      : []),
  ];
  const config = path.join(dir, 'config.yml');
  writeFileSync(config, lines.join('\n') + '\n');
  const child: ResultPromise = execa('docker-registry', ['serve', config], { reject: false, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/v2/`);
      await res.arrayBuffer();
      break;
    } catch {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`docker-registry did not start: ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    child.kill('SIGTERM');
    await child;
  };
  afterAll(stop);
  return { host: `127.0.0.1:${port}`, url, root, stop };
}

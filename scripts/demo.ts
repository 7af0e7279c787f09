/**
 * `npm run demo`: the main job on the bundled demo storage. Starts Debian's docker-registry on a free loopback port
 * with an empty temp storage, pushes `fixtures/demo-storage` into it with the built CLI, and prints the verified
 * image list. Installs docker-registry first when it is missing (apt-get, as the tests do).
 */
import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const project = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(project, 'bin', 'regmigrate');
const storage = path.join(project, 'fixtures', 'demo-storage');

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

await execa('bash', [path.join(project, 'scripts', 'ensure-deps'), 'docker-registry'], { stdio: 'inherit' });
const work = mkdtempSync(path.join(tmpdir(), 'regmigrate-demo-'));
const port = await freePort();
const config = path.join(work, 'config.yml');
writeFileSync(
  config,
  [
    'version: 0.1',
    'log: {level: error, accesslog: {disabled: true}}',
    `storage: {filesystem: {rootdirectory: ${path.join(work, 'storage')}}, delete: {enabled: true}}`,
    `http: {addr: "127.0.0.1:${port}"}`,
    '',
  ].join('\n'),
);
const registry = execa('docker-registry', ['serve', config], { stdio: 'ignore', reject: false });
let exitCode = 1;
try {
  for (let i = 0; ; i++) {
    try {
      await (await fetch(`http://127.0.0.1:${port}/v2/`)).arrayBuffer();
      break;
    } catch {
      if (i > 200) throw new Error('docker-registry did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const report = path.join(work, 'report.json');
  process.stderr.write(`demo: pushing ${path.relative(process.cwd(), storage) || storage} into a docker-registry on 127.0.0.1:${port}\n`);
  const push = await execa(bin, ['push', storage, '--to', `127.0.0.1:${port}`, '--report', report], { stdio: 'inherit', reject: false });
  exitCode = push.exitCode ?? 1;
  process.stderr.write(`demo: the registry and its storage (${work}) are removed now\n`);
} finally {
  registry.kill('SIGTERM');
  await registry;
  rmSync(work, { recursive: true, force: true });
}
process.exitCode = exitCode;

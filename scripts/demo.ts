/**
 * `npm run demo`: the main job on the bundled demo storage. Starts Debian's docker-registry on a free loopback port
 * with an empty temp storage, pushes `fixtures/demo-storage` into it with the built CLI, and prints the verified
 * image list. Installs docker-registry first when it is missing (apt-get, as the tests do).
 */
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchRegistry } from '../fixtures/registry-process.js';

const project = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(project, 'bin', 'regmigrate');
const storage = path.join(project, 'fixtures', 'demo-storage');

await execa('bash', [path.join(project, 'scripts', 'ensure-deps'), 'docker-registry'], { stdio: 'inherit' });
const work = mkdtempSync(path.join(tmpdir(), 'regmigrate-demo-'));
const registry = await launchRegistry({ workDir: work });
const port = registry.port;
let exitCode = 1;
try {
  const report = path.join(work, 'report.json');
  process.stderr.write(`demo: pushing ${path.relative(process.cwd(), storage) || storage} into a docker-registry on 127.0.0.1:${port}\n`);
  const push = await execa(bin, ['push', storage, '--to', `127.0.0.1:${port}`, '--report', report], { stdio: 'inherit', reject: false });
  exitCode = push.exitCode ?? 1;
  process.stderr.write(`demo: the registry and its storage (${work}) are removed now\n`);
} finally {
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
}
process.exitCode = exitCode;

/**
 * `npm run demo`: the main job on the bundled demo storage. Scans `fixtures/demo-storage` with the built CLI.
 */
import { execa } from 'execa';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const project = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(project, 'bin', 'regmigrate');
const storage = path.join(project, 'fixtures', 'demo-storage');

const scan = await execa(bin, ['scan', storage], { stdio: 'inherit', reject: false });
process.exitCode = scan.exitCode ?? 1;

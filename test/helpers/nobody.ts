/**
 * Running the CLI as `nobody`: root reads everything, so permission problems only show for another user. The
 * checkout may sit where `nobody` cannot even look (cloned as root under root's mode-700 home), so the built
 * program — bin/, dist/, package.json and the production dependencies — is copied once per test file into a
 * temp directory everybody may read, and run from there.
 */
import { execa, execaSync } from 'execa';
import { chmodSync, cpSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { PROJECT } from './cli.js';
import { tempDir } from './tmp.js';

let installed: string | undefined;

/** Lets `nobody` into `dir` and every /tmp directory above it, and read what is inside. */
export function openUp(dir: string): void {
  for (let d = dir; d !== path.dirname(d) && d.startsWith('/tmp/'); d = path.dirname(d)) chmodSync(d, 0o755);
  execaSync('chmod', ['-R', 'a+rX', dir]);
}

function nobodyReadableBin(): string {
  if (installed) return installed;
  const root = path.join(tempDir('regmigrate-nobody-app-'), 'app');
  mkdirSync(root, { recursive: true });
  for (const part of ['bin', 'dist', 'package.json']) cpSync(path.join(PROJECT, part), path.join(root, part), { recursive: true });
  const deps = execaSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: PROJECT, reject: false }).stdout.split('\n').slice(1).filter(Boolean);
  for (const dep of deps) cpSync(dep, path.join(root, path.relative(PROJECT, dep)), { recursive: true });
  openUp(root);
  installed = path.join(root, 'bin', 'regmigrate');
  return installed;
}

/**
 * As root: `nobody`, through setpriv. As any other user: that user, who is no more privileged than nobody here
 * (permission bits bind everyone but root), so the same files are unreadable and the same tree unwritable.
 */
export async function runAsNobody(args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const asRoot = process.getuid?.() === 0;
  const command = asRoot ? 'setpriv' : process.execPath;
  const prefix = asRoot ? ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath] : [];
  const result = await execa(command, [...prefix, nobodyReadableBin(), ...args], {
    reject: false,
    env: { HOME: '/nonexistent', PATH: process.env.PATH ?? '' },
    cwd: '/',
  });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

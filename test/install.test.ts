import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { describe, expect, it } from 'vitest';
import { DEMO_STORAGE, PROJECT } from './helpers/cli.js';
import { servedDigest } from './helpers/observe.js';
import { startRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

interface LockEntry {
  readonly version?: string;
  readonly optional?: boolean;
  readonly engines?: { node?: string } | string[];
}

const manifest = JSON.parse(readFileSync(path.join(PROJECT, 'package.json'), 'utf8')) as { version: string; engines: { node: string } };

describe('installing regmigrate', () => {
  it('every locked package (tests and tools included) runs on the oldest Node the package and README state', () => {
    const oldest = semver.minVersion(manifest.engines.node)!.version;
    const lock = JSON.parse(readFileSync(path.join(PROJECT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
    const refusing: string[] = [];
    for (const [where, entry] of Object.entries(lock.packages)) {
      // Platform binaries for other systems are optional and never installed here.
      if (!where || entry.optional || Array.isArray(entry.engines) || !entry.engines?.node) continue;
      if (!semver.satisfies(oldest, entry.engines.node)) refusing.push(`${where}@${entry.version}: node ${entry.engines.node}`);
    }
    expect(refusing).toEqual([]);
    const major = semver.major(oldest), minor = semver.minor(oldest);
    expect(readFileSync(path.join(PROJECT, 'README.md'), 'utf8')).toContain(`Node ${major}.${minor}+`);
  });

  it('the tarball `npm pack` leaves in the clone (README, Installing) is ignored by git', async () => {
    const ignored = await execa('git', ['check-ignore', '--quiet', `regmigrate-${manifest.version}.tgz`], { cwd: PROJECT, reject: false });
    expect(ignored.exitCode).toBe(0);
  });

  it('npm pack + npm install -g gives a working regmigrate command with only the program in it', async () => {
    const work = tempDir('regmigrate-install-');
    const packed = await execa('npm', ['pack', '--pack-destination', work, '--json'], { cwd: PROJECT });
    const [info] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = info!.files.map((f) => f.path);
    expect(files).toContain('bin/regmigrate');
    expect(files).toContain('dist/bundle/main.js');
    expect(files).toContain('man/regmigrate.1');
    expect(files).toContain('man/regmigrate-push.1');
    expect(files.filter((f) => /^(test|bench|fixtures|scripts|src)\/|^dist\/(test|bench|fixtures|scripts|src)\//.test(f))).toEqual([]);

    const prefix = path.join(work, 'prefix');
    await execa('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', path.join(work, info!.filename)], { cwd: work });
    const installed = path.join(prefix, 'bin', 'regmigrate');
    // The bundle holds the packages it imports: only those loaded by name at run time are installed beside it.
    const beside = path.join(prefix, 'lib', 'node_modules', 'regmigrate', 'node_modules');
    for (const bundled of ['undici', 'zod', 'commander', 'fast-glob']) expect(existsSync(path.join(beside, bundled)), bundled).toBe(false);
    for (const named of ['yaml', 'semver', 'cli-progress', 'execa']) expect(existsSync(path.join(beside, named)), named).toBe(true);

    const version = await execa(installed, ['--version'], { cwd: work });
    expect(version.stdout.trim()).toBe(manifest.version);

    // npm links the package's man pages into the prefix's share/man: `man regmigrate-push` finds them there.
    for (const page of ['regmigrate', 'regmigrate-push']) {
      const manpath = { MANPATH: path.join(prefix, 'share', 'man'), MANWIDTH: '80' };
      const found = await execa('man', ['-w', page], { cwd: work, env: manpath, reject: false });
      expect(found.stdout.trim(), page).toBe(path.join(prefix, 'lib', 'node_modules', 'regmigrate', 'man', `${page}.1`));
      const shown = await execa('man', [page], { cwd: work, env: manpath, reject: false });
      expect(shown.exitCode, shown.stderr).toBe(0);
      expect(shown.stdout).toMatch(new RegExp(`^NAME\\n {7}${page} - `, 'm'));
    }

    // The installed command does the main job on its own, far from the checkout.
    const registry = await startRegistry();
    const push = await execa(installed, ['push', DEMO_STORAGE, '--to', registry.host], { cwd: work, reject: false, env: { REGMIGRATE_NO_PROGRESS: '1' } });
    expect(push.exitCode, push.stderr).toBe(0);
    expect(push.stdout).toContain('library/busybox:1.36');
    expect(await servedDigest(registry.host, 'library/busybox:1.36')).toMatch(/^sha256:[0-9a-f]{64}$/);
    // npm installs the package's dependencies from the registry: minutes on a loaded machine, so its own limit.
  }, 300_000);
});

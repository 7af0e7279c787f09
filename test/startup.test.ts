import { execa } from 'execa';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, PROJECT } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

/**
 * Every module the built CLI loads for one command line, as file URLs: a module loader hook (node:module
 * `register`) appends each URL it loads to a file.
 */
async function loadedModules(args: string[]): Promise<{ exitCode: number; modules: string[] }> {
  const dir = tempDir('regmigrate-startup-');
  const log = path.join(dir, 'modules.txt');
  writeFileSync(log, '');
  writeFileSync(
    path.join(dir, 'hooks.mjs'),
    `import { appendFileSync } from 'node:fs';\nexport async function load(url, context, next) { appendFileSync(${JSON.stringify(log)}, url + '\\n'); return next(url, context); }\n`,
  );
  writeFileSync(path.join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n`);
  const result = await execa('node', ['--import', path.join(dir, 'register.mjs'), BIN, ...args], { reject: false, cwd: PROJECT });
  return { exitCode: result.exitCode ?? -1, modules: readFileSync(log, 'utf8').split('\n').filter(Boolean) };
}

const fromPackage = (modules: string[], name: string): string[] => modules.filter((m) => m.includes(`/node_modules/${name}/`));
const ours = (modules: string[], file: string): string[] => modules.filter((m) => m.endsWith(`/dist/src/${file}`));

describe('start-up loads what the command uses', () => {
  it('--version loads no command, no HTTP client and no schema library', async () => {
    const { exitCode, modules } = await loadedModules(['--version']);
    expect(exitCode).toBe(0);
    expect(ours(modules, 'cli/main.js')).toHaveLength(1);
    for (const name of ['undici', 'zod', 'yaml']) expect(fromPackage(modules, name), name).toEqual([]);
    for (const file of ['cli/push.js', 'cli/scan.js', 'cli/report.js', 'cli/config.js']) expect(ours(modules, file), file).toEqual([]);
  });

  it('push loads its own modules, not those of report, cutover or scan', async () => {
    const { exitCode, modules } = await loadedModules(['push', '--help']);
    expect(exitCode).toBe(0);
    expect(ours(modules, 'cli/push.js')).toHaveLength(1);
    expect(fromPackage(modules, 'undici')).not.toEqual([]);
    for (const file of ['cli/report.js', 'cli/cutover.js', 'cli/scan.js', 'cli/sync.js', 'cli/diff.js', 'report/html.js']) expect(ours(modules, file), file).toEqual([]);
  });

  it('push loads the YAML parser, semver and the progress bars only for a flag or a terminal that needs them', async () => {
    const { exitCode, modules } = await loadedModules(['push', '--help']);
    expect(exitCode).toBe(0);
    for (const name of ['yaml', 'semver', 'cli-progress']) expect(fromPackage(modules, name), name).toEqual([]);
  });

  it('help still lists every command', async () => {
    const { exitCode, modules } = await loadedModules(['--help']);
    expect(exitCode).toBe(0);
    for (const file of ['cli/push.js', 'cli/scan.js', 'cli/report.js', 'cli/config.js', 'cli/sync.js', 'cli/diff.js', 'cli/export.js', 'cli/completion.js']) expect(ours(modules, file), file).toHaveLength(1);
  });
});

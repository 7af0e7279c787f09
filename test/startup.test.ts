import { execa } from 'execa';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BIN, DEMO_STORAGE, PROJECT } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

/** The source files each chunk of the bundle holds (dist/bundle/meta.json, written by scripts/bundle.ts). */
function bundleInputs(): Map<string, string[]> {
  const meta = JSON.parse(readFileSync(path.join(PROJECT, 'dist/bundle/meta.json'), 'utf8')) as { outputs: Record<string, { inputs: Record<string, unknown> }> };
  return new Map(Object.entries(meta.outputs).map(([chunk, { inputs }]) => [pathToFileURL(path.join(PROJECT, chunk)).href, Object.keys(inputs).map((i) => pathToFileURL(path.join(PROJECT, i)).href)]));
}

/**
 * Every module the built CLI loads for one command line, as file URLs of the source files: a module loader hook
 * (node:module `register`) appends each URL it loads to a file, the CommonJS modules required (by name, from
 * node_modules) are added at exit, and each chunk of the bundle stands for the source files it holds.
 */
async function loadedModules(args: string[]): Promise<{ exitCode: number; modules: string[] }> {
  const dir = tempDir('regmigrate-startup-');
  const log = path.join(dir, 'modules.txt');
  writeFileSync(log, '');
  writeFileSync(
    path.join(dir, 'hooks.mjs'),
    `import { appendFileSync } from 'node:fs';\nexport async function load(url, context, next) { appendFileSync(${JSON.stringify(log)}, url + '\\n'); return next(url, context); }\n`,
  );
  writeFileSync(
    path.join(dir, 'register.mjs'),
    [
      `import { appendFileSync } from 'node:fs';`,
      `import { createRequire, register } from 'node:module';`,
      `import { pathToFileURL } from 'node:url';`,
      `register('./hooks.mjs', import.meta.url);`,
      `const required = createRequire(import.meta.url).cache;`,
      `process.on('exit', () => appendFileSync(${JSON.stringify(log)}, Object.keys(required).map((f) => pathToFileURL(f).href + '\\n').join('')));`,
    ].join('\n'),
  );
  const result = await execa('node', ['--import', path.join(dir, 'register.mjs'), BIN, ...args], { reject: false, cwd: PROJECT });
  const chunks = bundleInputs();
  const loaded = readFileSync(log, 'utf8').split('\n').filter(Boolean);
  expect(loaded.filter((url) => chunks.has(url)), 'the bundle is what runs').not.toEqual([]);
  return { exitCode: result.exitCode ?? -1, modules: loaded.flatMap((url) => chunks.get(url) ?? [url]) };
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

  it("push loads the undici package, not Node's own built-in copy of it", async () => {
    const dir = tempDir('regmigrate-startup-builtin-');
    const log = path.join(dir, 'builtins.txt');
    writeFileSync(path.join(dir, 'watch.mjs'), `import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => writeFileSync(${JSON.stringify(log)}, process.moduleLoadList.join('\\n')));\n`);
    const result = await execa('node', ['--import', path.join(dir, 'watch.mjs'), BIN, 'push', DEMO_STORAGE, '--to', '127.0.0.1:1', '--dry-run'], { reject: false, cwd: PROJECT });
    const builtins = readFileSync(log, 'utf8').split('\n');
    // The run got as far as contacting the destination (refused: nothing listens on port 1), so its dispatcher was made.
    expect(result.stderr).toMatch(/127\.0\.0\.1:1/);
    expect(builtins).toContain('NativeModule net');
    expect(builtins.filter((m) => m.includes('deps/undici'))).toEqual([]);
    const { modules } = await loadedModules(['push', '--help']);
    expect(fromPackage(modules, 'undici')).not.toEqual([]);
  });

  it('push loads the YAML parser, semver and the progress bars only for a flag or a terminal that needs them', async () => {
    const { exitCode, modules } = await loadedModules(['push', '--help']);
    expect(exitCode).toBe(0);
    for (const name of ['yaml', 'semver', 'cli-progress']) expect(fromPackage(modules, name), name).toEqual([]);
    // The same watch sees the parser when a config file asks for it (required by name, not imported).
    const config = path.join(tempDir('regmigrate-startup-config-'), 'regmigrate.yaml');
    writeFileSync(config, 'version: 1\n');
    const withConfig = await loadedModules(['scan', DEMO_STORAGE, '--config', config]);
    expect(withConfig.exitCode).toBe(0);
    expect(fromPackage(withConfig.modules, 'yaml')).not.toEqual([]);
  });

  it('help still lists every command', async () => {
    const { exitCode, modules } = await loadedModules(['--help']);
    expect(exitCode).toBe(0);
    for (const file of ['cli/push.js', 'cli/scan.js', 'cli/report.js', 'cli/config.js', 'cli/sync.js', 'cli/diff.js', 'cli/export.js', 'cli/completion.js']) expect(ours(modules, file), file).toHaveLength(1);
  });
});

import { execa } from 'execa';
import { cpSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './tmp.js';

export const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(PROJECT, 'bin', 'regmigrate');
/** The committed demo storage: compared against, never handed to the CLI. */
export const COMMITTED_DEMO_STORAGE = path.join(PROJECT, 'fixtures', 'demo-storage');

/**
 * A copy of the committed demo storage, made once per test file: the CLI only ever runs on copies, so a bug that
 * wrote to its source would fail a test instead of changing the checked-in fixture.
 */
export const DEMO_STORAGE = copyTree(COMMITTED_DEMO_STORAGE, 'regmigrate-demo-');

function copyTree(from: string, prefix: string): string {
  const to = path.join(tempDir(prefix), path.basename(from));
  cpSync(from, to, { recursive: true, preserveTimestamps: true });
  return to;
}

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI as a user would (`npm test` builds first). */
export async function runCli(args: string[], options: { input?: string; env?: Record<string, string>; cwd?: string } = {}): Promise<CliResult> {
  const result = await execa(BIN, args, {
    reject: false,
    input: options.input ?? '',
    env: { REGMIGRATE_NO_PROGRESS: '1', ...options.env },
    cwd: options.cwd ?? PROJECT,
    timeout: 300_000,
  });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

import { execa } from 'execa';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(PROJECT, 'bin', 'regmigrate');
export const DEMO_STORAGE = path.join(PROJECT, 'fixtures', 'demo-storage');

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

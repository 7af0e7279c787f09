import type { Writable } from 'node:stream';
import type { RunWatch } from './stall.js';

/** What a command may touch of the process: its streams and its exit code. Core code gets these explicitly. */
export interface CliContext {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly stdin: NodeJS.ReadableStream;
  readonly stderrIsTTY: boolean;
  readonly stdoutIsTTY: boolean;
  readonly env: NodeJS.ProcessEnv;
  setExitCode(code: number): void;
  /** `--log-format json`: the one-line error of `main` is a JSON record too. Set by the command that parsed it. */
  logFormat?: 'human' | 'json';
  /** What the command says of itself should the event loop drain under it (cli/stall.ts); set by `main`. */
  readonly watch?: RunWatch;
}

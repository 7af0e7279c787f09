import type { Writable } from 'node:stream';

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
}

import type { Writable } from 'node:stream';
import { errorMessage } from '../errors.js';

/** What became of standard output: written, closed by its reader, or failed. */
export interface OutputWatch {
  /** Whether a write failed (a full disk), not counting a reader that went away. */
  failed(): boolean;
}

/**
 * Watches standard output for a failed write. A reader that went away (`regmigrate scan -o csv | head`) ends the
 * output quietly, like any filter's; any other failure (a full disk under a cron job's redirection) is said in one
 * line and makes the run's status 5, a result that could not be written (README, Exit codes), instead of an
 * unhandled stream error that kills the process: the command still finishes its work, writes its report and
 * releases its lock. The listener stays for the life of the process: a write's error is emitted on a later tick,
 * possibly after the command returned.
 */
export function watchOutput(out: Writable, say: (line: string) => void): OutputWatch {
  let failed = false;
  out.on('error', (err: NodeJS.ErrnoException) => {
    // EPIPE: the reader closed the pipe. ERR_STREAM_DESTROYED: a later write to the stream the first error ended.
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED' || failed) return;
    failed = true;
    say(`cannot write standard output: ${errorMessage(err)}; the output is incomplete`);
  });
  return { failed: () => failed };
}

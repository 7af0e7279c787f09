import { runCleanups } from '../util/cleanup.js';
import type { CliContext } from './context.js';

export type StopSignal = 'SIGINT' | 'SIGTERM';

/**
 * Runs a job so that the first SIGINT/SIGTERM stops new work (the job sees its signal aborted), lets work under
 * way finish and the report be written; a second signal runs the registered clean-up and ends the process.
 */
export async function withInterruption<T>(ctx: CliContext, job: (signal: AbortSignal) => Promise<T>): Promise<{ result: T; signal: StopSignal | undefined }> {
  const controller = new AbortController();
  let received: StopSignal | undefined;
  const handler = (signal: StopSignal): void => {
    if (received) {
      // Stop now, but not before the authfile and work directory are gone.
      ctx.stderr.write(`regmigrate: ${signal} again: cleaning up and stopping now\n`);
      runCleanups();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    received = signal;
    ctx.stderr.write(`regmigrate: ${signal}: finishing transfers under way, starting no new ones (again to stop now)\n`);
    controller.abort();
  };
  const onInt = (): void => handler('SIGINT');
  const onTerm = (): void => handler('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    const result = await job(controller.signal);
    return { result, signal: received };
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}

import { runCleanups } from '../util/cleanup.js';
import { Stopper, type StopSignals } from '../util/stop.js';
import type { CliContext } from './context.js';

export type StopSignal = 'SIGINT' | 'SIGTERM';

/**
 * Runs a job so that the first SIGINT/SIGTERM stops new work (`stop` fires), gives uploads under way the grace
 * and then cuts them (`abort` fires); the job then ends with what landed and its report is written. A second
 * signal cuts at once, and the report is still written; should the job not end within the grace after that (or
 * at a third signal), the registered clean-up runs and the process ends. The job includes writing the report, so a
 * signal while it is written is handled too. `say` prints one line for the operator.
 */
export async function withInterruption<T>(
  ctx: CliContext,
  stopper: Stopper,
  job: (signals: StopSignals) => Promise<T>,
  say: (message: string) => void = (message) => ctx.stderr.write(`regmigrate: ${message}\n`),
): Promise<{ result: T; signal: StopSignal | undefined }> {
  let received: StopSignal | undefined;
  let count = 0;
  let failsafe: NodeJS.Timeout | undefined;
  const grace = `${stopper.graceMs / 1000} s`;
  const exitNow = (signal: StopSignal): never => {
    // Not before the authfile and work directory are gone.
    runCleanups();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  const handler = (signal: StopSignal): void => {
    count++;
    if (count === 1) {
      received = signal;
      say(`${signal}: starting no new uploads; uploads under way get ${grace} to finish, then are cut; the report follows (${signal} again to cut them now)`);
      stopper.stop();
    } else if (count === 2) {
      say(`${signal} again: cleaning up and stopping now: transfers under way are cut, the report is still written`);
      stopper.abortNow();
      // A step that does not heed the cut must not keep the process: it ends after the grace all the same.
      failsafe = setTimeout(() => {
        ctx.stderr.write(`regmigrate: the run did not stop within ${grace} of the second ${signal}: exiting without the report\n`);
        exitNow(signal);
      }, stopper.graceMs).unref();
    } else {
      ctx.stderr.write(`regmigrate: ${signal} a third time: exiting without the report\n`);
      exitNow(signal);
    }
  };
  const onInt = (): void => handler('SIGINT');
  const onTerm = (): void => handler('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    const result = await job(stopper.signals);
    return { result, signal: received };
  } finally {
    stopper.dispose();
    if (failsafe) clearTimeout(failsafe);
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}

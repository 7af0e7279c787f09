/**
 * What a push or sync tells its RunWatch (cli/stall.ts): its stage, what waits at the destination, and the report
 * so far, written should the run stall.
 */
import type { DestinationBudget } from '../destination/budget.js';
import type { Destination } from '../destination/destination.js';
import type { PushEvent, PushOptions, PushResult } from '../push/push.js';
import { reportRun, writeReport } from '../report/push-report.js';
import { describeBudget } from '../report/progress.js';
import { count, formatDuration } from '../util/format.js';
import type { CliContext } from './context.js';

/**
 * Follows a push or sync for the watch: its stage from the run's events, what waits at the destination, and the
 * report so far, written to `report` should it stall. Returns the push engine's `onEvent` (passing events on to
 * `inner`) and `onUnderWay`.
 */
export function watchTransfer(
  ctx: Pick<CliContext, 'watch' | 'env'>,
  run: { command: 'push' | 'sync'; root: string; destination: Destination; report: string | undefined },
  inner: ((event: PushEvent) => void) | undefined,
): Pick<PushOptions, 'onEvent' | 'onUnderWay'> {
  const { watch } = ctx;
  if (!watch) return { onEvent: inner };
  const budget = run.destination.budget;
  const hang = testHang(ctx.env, budget);
  let batch = '';
  let images = 0;
  let done = 0;
  watch.stage('reading the source');
  watch.detail(() => `at the destination ${describeWaiting(budget)}`);
  const onEvent = (event: PushEvent): void => {
    if (event.type === 'scanned') watch.stage(`source read (${count(event.tags, 'tag')}), first batch being probed`);
    else if (event.type === 'planned') {
      batch = `batch ${event.batch + 1} of ${event.batches}`;
      images = event.plan.images.length;
      done = 0;
    } else if (event.type === 'image-done') done++;
    if (batch && (event.type === 'planned' || event.type === 'image-done')) watch.stage(`${batch}: ${done} of ${count(images, 'image')} done`);
    hang?.(event);
    inner?.(event);
  };
  let sofar: (() => PushResult) | undefined;
  const report = run.report;
  if (report) {
    watch.onStall(() => {
      if (!sofar) return 'no report: the source was not read yet';
      const result = sofar();
      writeReport(report, result, reportRun(run.command, result, run.root, run.destination.endpoint));
      return `the report so far is in ${report}`;
    });
  }
  return { onEvent, onUnderWay: (s) => (sofar = s) };
}

/**
 * `1 request in flight (budget 2), 0 uploads (budget 8), 35 requests and 0 uploads waiting for a slot, 1 retry
 * waiting in its slot for room, new work held back 800 ms more (Retry-After)`: what waits at the destination.
 */
export function describeWaiting(budget: DestinationBudget): string {
  const { retriesWaiting, retriesSleeping, heldMs } = budget.pending();
  const parts = [describeBudget(budget), `${count(budget.requests.waiting, 'request')} and ${count(budget.uploads.waiting, 'upload')} waiting for a slot`];
  if (retriesWaiting > 0) parts.push(`${count(retriesWaiting, 'retry', 'retries')} waiting in ${retriesWaiting === 1 ? 'its slot' : 'their slots'} for room`);
  if (retriesSleeping > 0) parts.push(`${count(retriesSleeping, 'step', 'steps')} asleep before a retry`);
  if (heldMs > 0) parts.push(`new work held back ${formatDuration(heldMs)} more (Retry-After)`);
  return parts.join(', ');
}

/**
 * Test only (test/stall.test.ts): `REGMIGRATE_TEST_HANG=batch:N` shuts the destination's request budget for good
 * when batch N is planned, as a lost wake-up would: what the run still has to do then waits for a slot nobody
 * hands out, and the event loop drains under a run that is not done. Read here and nowhere else; not for users.
 */
function testHang(env: NodeJS.ProcessEnv, budget: DestinationBudget): ((event: PushEvent) => void) | undefined {
  const batch = /^batch:(\d+)$/.exec(env.REGMIGRATE_TEST_HANG ?? '')?.[1];
  if (batch === undefined) return undefined;
  return (event) => {
    if (event.type === 'planned' && event.batch + 1 === Number(batch)) budget.requests.attach({ open: () => false, freed: () => undefined });
  };
}

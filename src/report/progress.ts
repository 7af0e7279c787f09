import type CliProgress from 'cli-progress';
import type { Writable } from 'node:stream';
import type { PushEvent } from '../push/push.js';
import { count, formatBytes, formatDuration, formatRate } from '../util/format.js';
import { destinationRef } from '../plan/plan.js';
import { RateMeter, type RateSnapshot } from './rate.js';
import { PROGRESS_LINE_INTERVAL_SECONDS } from '../tuning.js';
import { lazyPackage } from '../util/lazy-package.js';

const cliProgress = lazyPackage<typeof CliProgress>('cli-progress');

export interface ProgressOptions {
  readonly stream: Writable;
  readonly isTTY: boolean;
  readonly quiet: boolean;
  /** Seconds between plain progress lines when not on a TTY. */
  readonly intervalSeconds?: number;
  /** `--limit-rate` in bytes per second: shown with the bytes. */
  readonly limitRate?: number;
  /** The clock of the rate and ETA (tests give their own). */
  readonly now?: () => number;
  /** The destination's budget (destination/budget.ts): its size moves, so the line shows it. */
  readonly budget?: BudgetView;
}

/** What progress reads of a destination's budget. */
export interface BudgetView {
  readonly requests: { readonly active: number; readonly size: number };
  readonly uploads: { readonly active: number; readonly size: number };
}

/** `16 requests in flight (budget 24), 3 uploads (budget 8)`. */
export function describeBudget(budget: BudgetView): string {
  return `${count(budget.requests.active, 'request')} in flight (budget ${budget.requests.size}), ${count(budget.uploads.active, 'upload')} (budget ${budget.uploads.size})`;
}

/** `12.3 MiB/s now, 11.0 MiB/s smoothed, ETA 4 min 1 s`: how fast, and how long still (at the smoothed rate). */
export function describeRate(rate: RateSnapshot): string {
  // Below a second an ETA in milliseconds claims a precision the estimate does not have.
  const eta = rate.etaSeconds === undefined ? 'ETA unknown' : rate.etaSeconds < 1 ? 'ETA <1 s' : `ETA ${formatDuration(rate.etaSeconds * 1000)}`;
  return `${formatRate(rate.current)} now, ${formatRate(rate.smoothed)} smoothed, ${eta}`;
}

export interface Progress {
  readonly onEvent: (event: PushEvent) => void;
  /** A line for the operator (a signal received), kept above the bars on a terminal, never torn by them. */
  readonly log: (message: string) => void;
  stop(): void;
}

/**
 * Progress for push: bars on a terminal (bytes, images); on a pipe (CI, cron) a plain line every 30 s and one line
 * per failure as it happens. `--quiet` keeps only the failure lines.
 */
export function createProgress(options: ProgressOptions): Progress {
  const cap = options.limitRate !== undefined ? ` (capped at ${formatBytes(options.limitRate)}/s)` : '';
  const { stream } = options;
  let totalBytes = 0;
  let totalImages = 0;
  /** Bytes of blob uploads that landed, and of those under way (an upload that fails takes its bytes back). */
  let uploadedBytes = 0;
  let imagesDone = 0;
  let failures = 0;
  let multibar: CliProgress.MultiBar | undefined;
  let bytesBar: CliProgress.SingleBar | undefined;
  let imagesBar: CliProgress.SingleBar | undefined;
  let timer: NodeJS.Timeout | undefined;
  let ticker: NodeJS.Timeout | undefined;
  let meter: RateMeter | undefined;
  // Up to: blobs the destination turns out to hold are skipped, so the ETA is an upper bound.
  const rate = (): RateSnapshot => (meter ??= new RateMeter(options.now, options.limitRate)).snapshot(totalBytes - uploadedBytes);
  const inFlight = (): string => (options.budget ? `; ${describeBudget(options.budget)}` : '');
  const bytesLabel = (): string => `${formatBytes(uploadedBytes)} of ${formatBytes(totalBytes)}${cap} · ${describeRate(rate())}`;
  const imagesLabel = (): string => `${imagesDone}/${count(totalImages, 'image')}${failures ? `, ${failures} failed` : ''}${inFlight()}`;

  const line = (text: string): void => {
    if (multibar) multibar.log(text + '\n');
    else stream.write(text + '\n');
  };
  const status = (): string =>
    `pushed ${imagesDone}/${count(totalImages, 'image')} (${failures} failed), uploaded ${formatBytes(uploadedBytes)} of up to ${formatBytes(totalBytes)}${cap}; ${describeRate(rate())}${inFlight()}`;

  const onEvent = (event: PushEvent): void => {
    switch (event.type) {
      case 'project':
        if (!options.quiet && event.result === 'created') line(`created project ${event.name}`);
        break;
      case 'planned': {
        // A large registry is planned a batch at a time: the totals grow as batches come.
        const images = event.plan.images.length;
        const bytes = event.plan.blobs.reduce((s, b) => s + (b.held ? 0 : b.size), 0);
        totalImages += images;
        totalBytes += bytes;
        meter ??= new RateMeter(options.now, options.limitRate);
        if (options.quiet) break;
        const of = event.batches > 1 ? ` (batch ${event.batch + 1} of ${event.batches})` : '';
        if (multibar) {
          bytesBar?.setTotal(Math.max(1, totalBytes));
          imagesBar?.setTotal(Math.max(1, totalImages));
        } else if (options.isTTY && totalImages > 0) {
          multibar = new (cliProgress().MultiBar)(
            { stream, clearOnComplete: true, hideCursor: true, format: ' {bar} {percentage}% | {label}', barsize: 30, fps: 5 },
            cliProgress().Presets.shades_classic,
          );
          bytesBar = multibar.create(Math.max(1, totalBytes), 0, { label: bytesLabel() });
          imagesBar = multibar.create(Math.max(1, totalImages), 0, { label: imagesLabel() });
          // The rates fall while nothing moves (a stall shows), and the budget moves, so the labels are redrawn each
          // second, bytes or not.
          ticker = setInterval(() => {
            bytesBar?.update({ label: bytesLabel() });
            imagesBar?.update({ label: imagesLabel() });
          }, 1000);
          ticker.unref();
        } else if (!options.isTTY) {
          line(`plan${of}: ${count(images, 'image')} to push, ${event.plan.existing.length} already there, up to ${formatBytes(bytes)} to upload${cap}`);
          timer ??= setInterval(() => line(status()), (options.intervalSeconds ?? PROGRESS_LINE_INTERVAL_SECONDS) * 1000);
          timer.unref();
        }
        break;
      }
      case 'bytes':
        uploadedBytes += event.bytes;
        // The rate is of bytes on the wire: those of an upload that failed went out all the same.
        if (event.bytes > 0) (meter ??= new RateMeter(options.now, options.limitRate)).add(event.bytes);
        bytesBar?.update(Math.min(uploadedBytes, Math.max(1, totalBytes)), { label: bytesLabel() });
        break;
      case 'image-done':
        imagesDone++;
        if (event.interrupted) line(`interrupted: ${event.image.source} → ${destinationRef(event.image)}`);
        else if (!event.ok) {
          failures++;
          line(`failed: ${event.image.source} → ${destinationRef(event.image)}: ${event.reason ?? 'failed'}`);
        }
        imagesBar?.update(imagesDone, { label: imagesLabel() });
        break;
      default:
        break;
    }
  };

  return {
    onEvent,
    log: (message) => line(`regmigrate: ${message}`),
    stop: () => {
      if (timer) clearInterval(timer);
      if (ticker) clearInterval(ticker);
      // A last frame before the bars are cleared: a push shorter than one frame (200 ms) still draws its bars, with
      // their final figures, and lines logged since the previous frame are written, not dropped. Once only: a second
      // stop (the command's `finally`) must not draw again below the summary.
      multibar?.update();
      multibar?.stop();
      multibar = undefined; // lines after the bars are gone go straight to the stream
    },
  };
}

import cliProgress from 'cli-progress';
import type { Writable } from 'node:stream';
import type { PushEvent } from '../transfer/push.js';
import { formatBytes } from '../util/format.js';
import { destinationRef } from '../plan/plan.js';

export interface ProgressOptions {
  readonly stream: Writable;
  readonly isTTY: boolean;
  readonly quiet: boolean;
  /** Seconds between plain progress lines when not on a TTY. */
  readonly intervalSeconds?: number;
  /** `--limit-rate` in bytes per second: shown with the bytes. */
  readonly limitRate?: number;
}

export interface Progress {
  readonly onEvent: (event: PushEvent) => void;
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
  let sentBytes = 0;
  let imagesDone = 0;
  let failures = 0;
  let multibar: cliProgress.MultiBar | undefined;
  let bytesBar: cliProgress.SingleBar | undefined;
  let imagesBar: cliProgress.SingleBar | undefined;
  let timer: NodeJS.Timeout | undefined;

  const line = (text: string): void => {
    if (multibar) multibar.log(text + '\n');
    else stream.write(text + '\n');
  };
  const status = (): string =>
    `pushed ${imagesDone}/${totalImages} images (${failures} failed), sent ${formatBytes(sentBytes)} of up to ${formatBytes(totalBytes)}${cap}`;

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
        if (options.quiet) break;
        const of = event.batches > 1 ? ` (batch ${event.batch + 1} of ${event.batches})` : '';
        if (multibar) {
          bytesBar?.setTotal(Math.max(1, totalBytes));
          imagesBar?.setTotal(Math.max(1, totalImages));
        } else if (options.isTTY && totalImages > 0) {
          multibar = new cliProgress.MultiBar(
            { stream, clearOnComplete: true, hideCursor: true, format: ' {bar} {percentage}% | {label}', barsize: 30, fps: 5 },
            cliProgress.Presets.shades_classic,
          );
          bytesBar = multibar.create(Math.max(1, totalBytes), 0, { label: `0 B of ${formatBytes(totalBytes)}${cap}` });
          imagesBar = multibar.create(Math.max(1, totalImages), 0, { label: `0/${totalImages} images` });
        } else if (!options.isTTY) {
          line(`plan${of}: ${images} images to push, ${event.plan.existing.length} already there, up to ${formatBytes(bytes)} to upload${cap}`);
          timer ??= setInterval(() => line(status()), (options.intervalSeconds ?? 30) * 1000);
          timer.unref();
        }
        break;
      }
      case 'bytes':
        sentBytes += event.bytes;
        bytesBar?.update(Math.min(sentBytes, Math.max(1, totalBytes)), { label: `${formatBytes(sentBytes)} of ${formatBytes(totalBytes)}${cap}` });
        break;
      case 'image-done':
        imagesDone++;
        if (!event.ok) {
          failures++;
          line(`failed: ${event.image.source} → ${destinationRef(event.image)}: ${event.reason ?? 'failed'}`);
        }
        imagesBar?.update(imagesDone, { label: `${imagesDone}/${totalImages} images${failures ? `, ${failures} failed` : ''}` });
        break;
      default:
        break;
    }
  };

  return {
    onEvent,
    stop: () => {
      if (timer) clearInterval(timer);
      // A last frame before the bars are cleared: a push shorter than one frame (200 ms) still draws its bars, with
      // their final figures, and lines logged since the previous frame are written, not dropped. Once only: a second
      // stop (the command's `finally`) must not draw again below the summary.
      multibar?.update();
      multibar?.stop();
      multibar = undefined;
    },
  };
}

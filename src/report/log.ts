import type { Writable } from 'node:stream';
import { destinationRef } from '../plan/plan.js';
import type { PushEvent, PushResult } from '../push/push.js';
import type { BudgetView, Progress } from './progress.js';
import type { BudgetChange } from '../destination/budget.js';
import { splitRef } from '../inventory/types.js';
import { countReports, notDone } from './push-report.js';
import { RateMeter } from './rate.js';
import { PROGRESS_LINE_INTERVAL_SECONDS } from '../tuning.js';

/** `repo` and `tag` of a report's destination (`repo:tag`, `repo@sha256:…`, or a bare repository for a refused image). */
function where(destination: string | undefined): { repo?: string; tag?: string } {
  if (!destination) return {};
  if (!/[:@]/.test(destination)) return { repo: destination };
  const { repository, tag } = splitRef(destination);
  return { repo: repository, tag };
}

export type LogFormat = 'human' | 'json';

/** One event as one JSON object on one line (Loki, Elasticsearch, `jq`): time, level, event, and what it is about. */
export interface LogRecord {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly event: string;
  readonly repo?: string;
  readonly tag?: string;
  readonly digest?: string;
  readonly bytes?: number;
  readonly reason?: string;
  readonly message?: string;
  readonly [extra: string]: unknown;
}

export function writeJsonLog(stream: Writable, record: LogRecord): void {
  stream.write(JSON.stringify({ time: new Date().toISOString(), ...record }) + '\n');
}

export interface JsonLogOptions {
  /** Seconds between `progress` records (default 30, as the plain progress lines). */
  readonly intervalSeconds?: number;
  /** The clock of the rate and ETA (tests give their own). */
  readonly now?: () => number;
  /** The destination's budget: its size goes in each `progress` record, and each halving is a `budget` record. */
  readonly budget?: BudgetView & { onChange(listener: (change: BudgetChange) => void): void };
  /** `--limit-rate` in bytes per second: bounds the smoothed rate and so the ETA. */
  readonly limitRate?: number;
}

/**
 * `--log-format json`: the transfer's events as JSON lines on stderr, instead of bars or plain progress lines; every
 * 30 s a `progress` record with the current and smoothed rate (bytes per second), the seconds left and the
 * destination's budget (requests and uploads in flight, and the size each may reach now).
 */
export function createJsonLog(stream: Writable, options: JsonLogOptions = {}): Progress & { finished(result: PushResult): void } {
  const totals = { images: 0, imagesDone: 0, failed: 0, interrupted: 0, bytes: 0, bytesTotal: 0 };
  let meter: RateMeter | undefined;
  let timer: NodeJS.Timeout | undefined;
  const { budget } = options;
  const progress = (): void => {
    const rate = (meter ??= new RateMeter(options.now, options.limitRate)).snapshot(totals.bytesTotal - totals.bytes);
    writeJsonLog(stream, {
      level: 'info',
      event: 'progress',
      ...totals,
      bytesPerSecond: Math.round(rate.current),
      bytesPerSecondSmoothed: Math.round(rate.smoothed),
      etaSeconds: rate.etaSeconds === undefined ? null : Math.round(rate.etaSeconds),
      ...(budget
        ? { requestsInFlight: budget.requests.active, requestBudget: budget.requests.size, uploadsInFlight: budget.uploads.active, uploadBudget: budget.uploads.size }
        : {}),
    });
  };
  // A halving is news (the destination pushes back); growth is not: it shows in the next `progress` record.
  budget?.onChange((c) =>
    writeJsonLog(stream, { level: 'warn', event: 'budget', budget: c.budget, from: c.from, to: c.to, reason: c.reason === 'errors' ? 'errors' : `HTTP ${c.reason}`, message: `${c.budget} budget halved from ${c.from} to ${c.to} (${c.reason === 'errors' ? 'errors rose' : `the destination answered ${c.reason}`})` }),
  );
  const stop = (): void => {
    if (timer) clearInterval(timer);
    timer = undefined;
  };
  const count = (event: PushEvent): void => {
    if (event.type === 'planned') {
      totals.images += event.plan.images.length;
      totals.bytesTotal += event.plan.blobs.reduce((n, b) => n + (b.held ? 0 : b.size), 0);
      meter ??= new RateMeter(options.now, options.limitRate);
      timer ??= setInterval(progress, (options.intervalSeconds ?? PROGRESS_LINE_INTERVAL_SECONDS) * 1000);
      timer.unref();
    } else if (event.type === 'bytes') {
      totals.bytes += event.bytes;
      if (event.bytes > 0) (meter ??= new RateMeter(options.now, options.limitRate)).add(event.bytes);
    } else if (event.type === 'image-done') {
      totals.imagesDone++;
      // An image the stop left unfinished is interrupted, as in the run's summary, not failed.
      if (event.interrupted) totals.interrupted++;
      else if (!event.ok) totals.failed++;
    }
  };
  const onEvent = (event: PushEvent): void => {
    count(event);
    switch (event.type) {
      case 'scanned':
        writeJsonLog(stream, { level: 'info', event: 'scanned', tags: event.tags });
        break;
      case 'project':
        if (event.result === 'created') writeJsonLog(stream, { level: 'info', event: 'project-created', repo: event.name });
        break;
      case 'planned':
        writeJsonLog(stream, { level: 'info', event: 'planned', images: event.plan.images.length, existing: event.plan.existing.length, bytes: event.plan.blobs.reduce((n, b) => n + (b.held ? 0 : b.size), 0), ...(event.batches > 1 ? { batch: event.batch + 1, batches: event.batches } : {}) });
        break;
      case 'blob-done':
        writeJsonLog(stream, { level: 'debug', event: `blob-${event.how}`, repo: event.repository, digest: event.digest, bytes: event.size });
        break;
      case 'image-done': {
        const [repo, tag] = [event.image.repository, event.image.tag];
        if (event.ok) writeJsonLog(stream, { level: 'info', event: 'image-pushed', repo, tag, digest: event.image.digest, bytes: event.image.size });
        else if (event.interrupted) writeJsonLog(stream, { level: 'warn', event: 'image-interrupted', repo, tag, digest: event.image.digest, destination: destinationRef(event.image) });
        else writeJsonLog(stream, { level: 'error', event: 'image-failed', repo, tag, digest: event.image.digest, reason: event.reason ?? 'failed', destination: destinationRef(event.image) });
        break;
      }
      default:
        break;
    }
  };
  return {
    onEvent,
    log: (message) => writeJsonLog(stream, { level: 'warn', event: 'notice', message }),
    stop,
    finished: (result) => {
      stop();
      // Where progress ended: its bytes are the run's bytes uploaded (`run-finished`), as the summary's are.
      progress();
      for (const r of result.reports) {
        if (r.status !== 'verified' && r.status !== 'failed' && r.status !== 'interrupted' && r.status !== 'immutable') continue;
        writeJsonLog(stream, {
          level: r.status === 'failed' ? 'error' : r.status === 'interrupted' || r.status === 'immutable' ? 'warn' : 'info',
          event: `tag-${r.status}`,
          source: r.source,
          // No destination name (it could not be mapped): the tag is still the source's.
          ...(r.destination ? where(r.destination) : r.source.includes(':') ? { tag: splitRef(r.source).tag } : {}),
          ...(r.digest ? { digest: r.digest } : {}),
          ...(r.reason ? { reason: r.reason } : {}),
        });
      }
      const c = countReports(result.reports);
      writeJsonLog(stream, { level: notDone(c) > 0 ? 'error' : c.immutable > 0 ? 'warn' : 'info', event: 'run-finished', verified: c.verified, unchanged: c.skipped, ...(c.immutable ? { immutable: c.immutable } : {}), failed: c.failed, interrupted: c.interrupted, bytes: result.stats.bytesUploaded, durationMs: result.durationMs, ...(budget ? { requestBudget: budget.requests.size, uploadBudget: budget.uploads.size } : {}) });
    },
  };
}

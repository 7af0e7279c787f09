import type { Command } from 'commander';
import { ROOT_ARGUMENT } from './storage-options.js';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { countReports, imagesExitCode, notDone, reportRun, writeReport } from '../report/push-report.js';
import { openStorage } from '../storage/open.js';
import { DEFAULT_MAX_DELETE, syncStorage, type DeleteMode, type SyncResult } from '../sync/sync.js';
import { count, formatBytes, formatDuration } from '../util/format.js';
import { assertWritable } from '../util/files.js';
import { acquireLock } from '../util/lock.js';
import type { CliContext } from './context.js';
import { requireRoot } from './config.js';
import { OptionProblems, parseWholeOption } from './options.js';
import { addTransferOptions, DESTINATION_GONE_EXIT, normalizeTransfer, notice, openDestination, pushOptions, stopWhenGone, transferProgress, withMetrics, type TransferFlags, type TransferRequest } from './transfer-command.js';
import { writeJsonLog } from '../report/log.js';
import { withInterruption } from './signals.js';
import { LOCK_STALE_SECONDS, stopGraceFromEnv } from '../tuning.js';
import { Stopper } from '../util/stop.js';
import { DEFAULT_FINAL_ROUNDS, finalSync, finalVerdict } from '../cutover/final-sync.js';
import { warnIfEmptySource } from './selection.js';
import { watchTransfer } from './watch-transfer.js';

interface SyncFlags extends TransferFlags {
  state?: string;
  lock?: string;
  waitLock?: string;
  lockStale?: string;
  maxDelete?: string;
  trustState?: boolean;
  fullRead?: boolean;
  deleteExtra?: boolean;
  yes?: boolean;
  final?: boolean;
  finalRounds?: string;
}

export interface SyncRequest extends TransferRequest {
  readonly state: string | undefined;
  readonly lock: string | undefined;
  readonly waitLockSeconds: number;
  readonly lockStaleSeconds: number;
  /** `--max-delete` as given; without it the default limits apply (src/sync/sync.ts deletionLimit). */
  readonly maxDelete: number | undefined;
  readonly trustState: boolean;
  readonly fullRead: boolean;
  readonly deleteExtra: DeleteMode;
  /** `--final`: rounds until no source tag moved (at most this many), then a diff to zero; undefined without. */
  readonly finalRounds: number | undefined;
}

export function normalizeSync(root: string, flags: SyncFlags): SyncRequest {
  const problems = new OptionProblems();
  const transfer = normalizeTransfer(root, flags, problems);
  if (flags.trustState && !flags.state) problems.add('--trust-state needs --state FILE');
  if (flags.fullRead && !flags.state) problems.add('--full-read goes with --state (without a journal every image is read)');
  if (flags.trustState && flags.fullRead) problems.add('--full-read reads every image, --trust-state skips those the journal vouches for: give one of them');
  if (flags.deleteExtra && !flags.state) problems.add('--delete-extra needs --state FILE (only tags the journal says came from the source are deleted)');
  if (flags.yes && !flags.deleteExtra) problems.add('--yes goes with --delete-extra');
  const waitLockSeconds = parseWholeOption('waitLock', flags.waitLock, 0, problems);
  const maxDelete = parseWholeOption('maxDelete', flags.maxDelete, undefined, problems);
  if (flags.maxDelete !== undefined && !flags.deleteExtra) problems.add('--max-delete goes with --delete-extra');
  const lockStaleSeconds = parseWholeOption('lockStale', flags.lockStale, LOCK_STALE_SECONDS, problems);
  const finalRounds = parseWholeOption('finalRounds', flags.finalRounds, DEFAULT_FINAL_ROUNDS, problems);
  if (flags.finalRounds !== undefined && !flags.final) problems.add('--final-rounds goes with --final');
  if (flags.final && transfer.shard) problems.add('--final compares the whole storage with the destination: run it without --shard');
  problems.throwIfAny();
  return {
    ...transfer,
    state: flags.state,
    lock: flags.lock,
    waitLockSeconds,
    lockStaleSeconds,
    maxDelete,
    trustState: flags.trustState ?? false,
    fullRead: flags.fullRead ?? false,
    deleteExtra: !flags.deleteExtra ? 'no' : flags.yes ? 'apply' : 'plan',
    finalRounds: flags.final ? finalRounds : undefined,
  };
}

/** Without --lock: next to the state file, else one per (storage, destination) in the temp dir. */
async function lockPath(request: SyncRequest): Promise<string> {
  if (request.lock) return request.lock;
  if (request.state) return `${request.state}.lock`;
  const storage = await openStorage(request.root, request.storageOptions);
  const key = createHash('sha256').update(`${storage.key}|${request.destination.endpoint?.host ?? ''}`).digest('hex').slice(0, 16);
  return path.join(tmpdir(), `regmigrate-sync-${key}.lock`);
}

/** One line per change and a summary line: what a cron mail or a log collector wants. */
function renderSync(result: SyncResult): string {
  let out = '';
  for (const r of result.push.reports) {
    if (r.status === 'verified') out += `pushed ${r.source} -> ${r.destination} ${r.digest}\n`;
    else if (r.status === 'failed') out += `failed ${r.source}${r.destination ? ` -> ${r.destination}` : ''}: ${r.reason ?? 'failed'}\n`;
    else if (r.status === 'interrupted') out += `interrupted ${r.source}${r.destination ? ` -> ${r.destination}` : ''}\n`;
    // Drift Harbor forbids fixing: a warning every run until the rule changes, not a failure (exit 6).
    else if (r.status === 'immutable') out += `immutable ${r.source} -> ${r.destination}: ${r.reason ?? 'immutable'}\n`;
  }
  // Over the deletion limit: the tags are listed, the refusal (or, in a dry run, that --yes would refuse) said once.
  const over = result.deletions.find((d) => d.overLimit !== undefined);
  const limit = over ? `over ${over.overLimit}` : '';
  for (const d of result.deletions) {
    // `kept`: a warning, the tag stays though its source is gone (its manifest is shared by tags that stay).
    const what = d.overLimit !== undefined && d.status === 'failed' ? 'not deleted' : { 'would-delete': 'would delete', deleted: 'deleted', failed: 'could not delete', kept: d.sharedWith ? 'kept' : 'left alone' }[d.status];
    const reason = d.overLimit !== undefined ? (d.status === 'failed' ? limit : '') : d.reason;
    out += `${what} ${d.destination} ${d.digest} (source ${d.source} is gone)${reason ? `: ${reason}` : ''}\n`;
  }
  if (over?.status === 'failed') out += `${over.reason}\n`;
  else if (over) {
    const n = result.deletions.filter((d) => d.overLimit !== undefined).length;
    out += `--yes would refuse: ${count(n, 'tag')} to delete, more than ${over.overLimit}; check the source, then give --max-delete ${n} to allow it\n`;
  }
  if (result.deletionsWithheld) out += `${result.deletionsWithheld}\n`;
  const c = countReports(result.push.reports);
  const s = result.push.stats;
  const deleted = result.deletions.filter((d) => d.status === 'deleted').length;
  const planned = result.deletions.filter((d) => d.status === 'would-delete').length;
  const refused = result.deletions.filter((d) => d.overLimit !== undefined && d.status === 'failed').length;
  const kept = result.deletions.filter((d) => d.sharedWith).length;
  const add = over ? `--yes would refuse: ${limit}` : 'add --yes';
  out +=
    `sync: ${c.verified} pushed, ${c.skipped} unchanged, ${c.immutable ? `${c.immutable} immutable, ` : ''}${c.failed} failed${c.interrupted ? `, ${c.interrupted} interrupted` : ''}` +
    (result.deletions.length
      ? `, ${deleted} deleted${planned ? `, ${planned} would be deleted (${add})` : ''}${refused ? `, ${refused} not deleted: ${limit}` : ''}${kept ? `, ${kept} kept (${kept === 1 ? 'its' : 'their'} manifest is shared)` : ''}`
      : '') +
    `; uploaded ${formatBytes(s.bytesUploaded)}; ${formatDuration(result.push.durationMs)}\n`;
  return out;
}

/** `sync`: exit 0 when the destination holds every source tag, 1 when some failed, 4 when another sync runs. */
export async function runSync(request: SyncRequest, ctx: CliContext): Promise<number> {
  if (request.report) assertWritable(request.report, '--report');
  if (request.state) assertWritable(request.state, '--state');
  return withMetrics(request, ctx, 'sync', async (record) => {
    const lease = await acquireLock(await lockPath(request), {
      waitSeconds: request.waitLockSeconds,
      staleSeconds: request.lockStaleSeconds,
      ...(ctx.env.REGMIGRATE_HOSTNAME ? { hostname: ctx.env.REGMIGRATE_HOSTNAME } : {}),
      onNotice: (n) => notice(request, ctx, n),
    });
    // A sync that stalls (cli/stall.ts) leaves no lock behind for the next one to wait out.
    ctx.watch?.onStall(() => void lease.release());
    try {
      const stopper = new Stopper(stopGraceFromEnv(ctx.env));
      const destination = await openDestination({ ...request, quiet: true }, ctx, false, stopper.signals);
      const { json, progress } = transferProgress(request, ctx, destination);
      // A line for the operator, above the bars on a terminal.
      const say = (level: 'info' | 'error', message: string): void => (json ? notice(request, ctx, { level, message }) : progress.log(message));
      const watched = watchTransfer(ctx, { command: 'sync', root: request.root, destination, report: request.report }, progress.onEvent);
      stopWhenGone(destination, stopper, (message) => say('error', message));
      try {
        // The journal and the report are written inside: a signal while they are written does not lose them.
        const { result: code, signal } = await withInterruption(ctx, stopper, async ({ stop, abort }) => {
          const syncOptions = {
            ...pushOptions(request, ctx, { signal: stop, abort, ...watched }),
            statePath: request.state,
            trustState: request.trustState,
            fullRead: request.fullRead,
            deleteExtra: request.deleteExtra,
            maxDelete: request.maxDelete,
          };
          // --final: earlier rounds are printed and journalled as they end; the last is handled below as any sync.
          const final = request.finalRounds
            ? await finalSync(destination, syncOptions, {
                rounds: request.finalRounds,
                diffConcurrency: syncOptions.requestConcurrency,
                onRound: (round, n, moved) => {
                  ctx.stdout.write(renderSync(round));
                  round.saveJournal();
                  notice(request, ctx, { level: 'warn', message: `${moved.length === 1 ? 'a source tag' : `${moved.length} source tags`} changed during round ${n} (${moved.map((m) => m.ref).join(', ')}): syncing again, round ${n + 1} of at most ${request.finalRounds}` });
                },
              })
            : undefined;
          const result = final ? final.last : await syncStorage(destination, syncOptions);
          progress.stop();
          record(result.push, result.deletions);
          warnIfEmptySource(ctx.stderr, result.push.source, request.logFormat);
          ctx.stdout.write(renderSync(result));
          if (json) {
            json.finished(result.push);
            for (const d of result.deletions) writeJsonLog(ctx.stderr, { level: d.status === 'failed' ? 'error' : d.sharedWith ? 'warn' : 'info', event: `tag-${d.status}`, repo: d.destination, digest: d.digest, ...(d.reason ? { reason: d.reason } : {}) });
          }
          result.saveJournal();
          if (request.report) writeReport(request.report, result.push, reportRun('sync', result.push, request.root, destination.endpoint));
          const counts = countReports(result.push.reports);
          const failed = notDone(counts) + result.deletions.filter((d) => d.status === 'failed').length;
          const verdict = final && !result.push.interrupted ? finalVerdict(final) : undefined;
          if (verdict) ctx.stdout.write(`${verdict.line}\n`);
          if (result.push.destinationGone) return DESTINATION_GONE_EXIT;
          return failed > 0 || (verdict && !verdict.ok) ? 1 : imagesExitCode(counts);
        }, (message) => say('info', message));
        if (signal) return signal === 'SIGINT' ? 130 : 143;
        return code;
      } finally {
        progress.stop();
        await destination.close();
      }
    } finally {
      lease.release();
    }
  });
}

export function registerSync(program: Command, ctx: CliContext): void {
  const command = program
    .command('sync')
    .description('the cron job: push only what differs, verify, keep a journal; locked against overlapping runs')
    .argument('[root]', ROOT_ARGUMENT);
  addTransferOptions(command)
    .option('--state <file>', 'journal of what was verified at which digest (JSON), kept between runs')
    .option('--trust-state', 'skip the destination check for tags whose source digest matches the journal')
    .option(
      '--full-read',
      'read every image in the storage, unchanged ones too (default with --state: a tag whose link still names the digest the journal verified is not read, only asked about at the destination, so a fault that appeared in its manifest or blobs since goes unseen)',
    )
    .option('--lock <file>', 'lock file (default: <state>.lock, or one per storage and destination in the temp dir)')
    .option('--wait-lock <seconds>', 'wait this long for another sync to finish (default: exit 4 at once)')
    .option('--lock-stale <seconds>', `take over a lock whose holder has not renewed it for this long, from any host (default ${LOCK_STALE_SECONDS})`)
    .option('--delete-extra', 'list destination tags whose source tag is gone (per the journal); with --yes, delete them')
    .option('--yes', 'with --delete-extra: really delete')
    .option('--final', 'the last sync before the switch: sync again while source tags change, then prove the destination holds every source tag (one-line verdict)')
    .option('--final-rounds <n>', `with --final: sync rounds at most before naming the tags that keep moving (default ${DEFAULT_FINAL_ROUNDS})`)
    .option('--max-delete <n>', `with --delete-extra --yes: refuse a run that would delete more tags than this (default: ${DEFAULT_MAX_DELETE}, and at most half of the tags the journal holds for the selection)`)
    .action(async (root: string | undefined, flags: SyncFlags) => {
      const source = requireRoot(root, 'sync');
      ctx.setExitCode(await runSync(normalizeSync(source, flags), ctx));
    });
}

import { childEnv } from '../util/child-env.js';
import { onCleanup } from '../util/cleanup.js';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ToolError } from '../errors.js';
import type { OnNotice } from '../util/notice.js';
import type { ManifestRecord } from '../image/reader.js';
import { destinationRef, type Plan } from '../plan/plan.js';
import type { Storage } from '../storage/storage.js';
import type { Destination } from '../destination/destination.js';
import { Linker } from './dir-layout.js';
import { startThrottleProxy } from './throttle-proxy.js';
import { assertOutsideStorage, exportImages } from './export.js';
import { emptyStats, imageDoneEvent, interruptedOutcome, type ImageOutcome, type TransferEvent } from '../transfer/execute.js';
import type { Transport } from '../transfer/transport.js';
import { PushTimeOrder } from '../transfer/push-order.js';
import { TRANSFER_CONCURRENCY } from '../tuning.js';

/** `--preserve-digests` came with skopeo 1.6. */
const MIN_SKOPEO: readonly [number, number] = [1, 6];

/** `skopeo --version` → "1.9.3"; a clear error when skopeo is missing or too old. */
export async function checkSkopeo(): Promise<string> {
  const hint = 'install it: apt-get install skopeo (Debian/Ubuntu), dnf install skopeo (Fedora/RHEL)';
  const result = await (await loadExeca())('skopeo', ['--version'], { reject: false, env: childEnv(), extendEnv: false });
  if (result.exitCode !== 0) throw new ToolError(`--via skopeo: skopeo is not installed or does not run (${result.exitCode === undefined ? 'not found' : `exit ${result.exitCode}`})`, hint);
  const match = /version (\d+)\.(\d+)\.(\d+)/.exec(String(result.stdout));
  if (!match) throw new ToolError(`--via skopeo: cannot read the version from "${String(result.stdout).trim()}"`, hint);
  const [major, minor] = [Number(match[1]), Number(match[2])];
  if (major < MIN_SKOPEO[0] || (major === MIN_SKOPEO[0] && minor < MIN_SKOPEO[1])) {
    throw new ToolError(`--via skopeo: skopeo ${match[0].slice(8)} is too old; ${MIN_SKOPEO.join('.')} or newer is needed (--preserve-digests)`, hint);
  }
  return `${match[1]}.${match[2]}.${match[3]}`;
}

/** `time="…" level=fatal msg="…"` → the message, on one line. */
export function skopeoFailure(stderr: string): string {
  const messages = [...stderr.matchAll(/level=(?:fatal|error) msg="((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!.replace(/\\n/g, ' ').replace(/\\"/g, '"'));
  let text = messages.length > 0 ? messages.join('; ') : (stderr.trim().split('\n').pop() ?? 'failed');
  // Upload URLs carry a long `_state` token: keep the path, which is what an operator can use.
  text = text.replace(/"(https?:\/\/[^"?]*)\?[^"]*"/g, '"$1"').replace(/\s+/g, ' ').trim();
  const mismatch = /Digest did not match, expected (sha256:[0-9a-f]{64})/.exec(text);
  if (mismatch) return `corrupt-blob: blob ${mismatch[1]}: its source data does not match its digest (skopeo: ${text.slice(0, 300)})`;
  return `skopeo: ${text.slice(0, 500)}`;
}

/**
 * The default work directory: on the storage's own filesystem (beside the registry root, Storage.linkableDirectory),
 * so the layouts are hard links and cost no space; the system temp dir when there is no such place or it is not
 * writable (a read-only mount, a storage without local files): then files are copied.
 */
export function makeWorkDir(storage: Storage, given: string | undefined): string {
  if (given) {
    mkdirSync(given, { recursive: true });
    return mkdtempSync(path.join(given, 'regmigrate-'));
  }
  const beside = storage.linkableDirectory?.();
  if (beside !== undefined) {
    try {
      return mkdtempSync(path.join(beside, '.regmigrate-work-'));
    } catch {
      // not writable: fall through
    }
  }
  return mkdtempSync(path.join(tmpdir(), 'regmigrate-work-'));
}

export interface SkopeoTransportOptions {
  /** Where the layouts go (default beside the storage, makeWorkDir), and whether they stay after the run. */
  readonly workDir: string | undefined;
  readonly keepWorkDir: boolean;
  readonly onEvent: (event: TransferEvent) => void;
  readonly onNotice: OnNotice;
  readonly signal?: AbortSignal | undefined;
  readonly abort?: AbortSignal | undefined;
}

/**
 * `--via skopeo` a batch at a time: the work directory is made at the first batch (refused inside the storage) and
 * removed at `close` (or on exit), unless kept; the copies share the destination's upload budget.
 */
export function skopeoTransport(storage: Storage, destination: Destination, options: SkopeoTransportOptions): Transport {
  let workDir: string | undefined;
  let forgetWorkDir = (): void => undefined;
  return {
    transfer: async ({ plan, manifests, afterImage }) => {
      if (!workDir) {
        workDir = makeWorkDir(storage, options.workDir);
        assertOutsideStorage(storage, workDir, '--work-dir');
        if (storage.copyReason) options.onNotice({ level: 'info', message: storage.copyReason });
        const dir = workDir;
        forgetWorkDir = options.keepWorkDir ? () => undefined : onCleanup(() => rmSync(dir, { recursive: true, force: true }));
      }
      const outcomes = await pushWithSkopeo(plan, {
        storage,
        destination,
        workDir,
        manifests,
        onEvent: options.onEvent,
        onNotice: options.onNotice,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.abort ? { abort: options.abort } : {}),
      });
      await Promise.all(outcomes.map(afterImage));
      return emptyStats();
    },
    close: () => {
      if (!workDir) return;
      if (options.keepWorkDir) options.onNotice({ level: 'info', message: `work directory kept: ${workDir}` });
      else rmSync(workDir, { recursive: true, force: true });
      forgetWorkDir();
    },
  };
}

export interface SkopeoOptions {
  readonly storage: Storage;
  readonly destination: Destination;
  readonly workDir: string;
  readonly manifests: ReadonlyMap<string, ManifestRecord>;
  readonly onEvent: (event: TransferEvent) => void;
  readonly onNotice: OnNotice;
  readonly signal?: AbortSignal;
  /** Kills copies under way (the grace after the signal is over, or a second signal). */
  readonly abort?: AbortSignal;
}

/**
 * The skopeo transport: `dir:` layouts in the work dir (hard links where the storage has local files), then one `skopeo copy --all
 * --preserve-digests` per image. Credentials reach skopeo only through an authfile (mode 0600), never argv.
 */
export async function pushWithSkopeo(plan: Plan, options: SkopeoOptions): Promise<ImageOutcome[]> {
  const { destination, workDir } = options;
  const layouts = path.join(workDir, 'images');
  const linker = new Linker((message) => options.onNotice({ level: 'info', message }));
  const exported = await exportImages(options.storage, plan, layouts, linker, TRANSFER_CONCURRENCY, options.manifests);

  const args = ['copy', '--quiet', '--all', '--preserve-digests', '--retry-times', '3'];
  // --limit-rate: skopeo has no cap, so it pushes through a metering loopback proxy to the destination.
  const proxy = destination.limiter ? await startThrottleProxy(destination, destination.limiter, 120_000) : undefined;
  const targetHost = proxy?.host ?? destination.endpoint.host;
  const authfile = path.join(workDir, 'auth.json');
  const forget = onCleanup(() => rmSync(authfile, { force: true }));
  if (destination.credentials) {
    const auth = Buffer.from(`${destination.credentials.username}:${destination.credentials.password}`).toString('base64');
    writeFileSync(authfile, JSON.stringify({ auths: { [targetHost]: { auth } } }), { mode: 0o600 });
    args.push('--dest-authfile', authfile);
  } else {
    args.push('--dest-no-creds');
  }
  // Plain HTTP (loopback or http://) and --insecure both need tls-verify off; skopeo then also tries http.
  args.push(`--dest-tls-verify=${!proxy && destination.endpoint.secure && !destination.tls.insecure}`);
  if (destination.tls.caFile && !proxy) {
    const certDir = path.join(workDir, 'certs');
    mkdirSync(certDir, { recursive: true });
    copyFileSync(destination.tls.caFile, path.join(certDir, 'ca.crt'));
    args.push('--dest-cert-dir', certDir);
  }

  try {
    return await copyAll();
  } finally {
    // The layouts may be kept (--keep-work-dir); the credentials never are.
    rmSync(authfile, { force: true });
    forget();
    await proxy?.close();
  }

  async function copyOne(item: (typeof exported)[number]): Promise<ImageOutcome> {
    const { image } = item;
    if (!item.ok) return { image, ok: false, reason: item.reason ?? 'export failed' };
    if (options.signal?.aborted) return interruptedOutcome(image);
    const digestFile = path.join(workDir, `digest-${image.digest.slice(7, 19)}-${Math.random().toString(36).slice(2)}`);
    const target = `docker://${targetHost}/${destinationRef(image)}`;
    try {
      const result = await (await loadExeca())('skopeo', [...args, '--digestfile', digestFile, `dir:${item.directory}`, target], { reject: false, env: childEnv(), extendEnv: false, ...(options.abort ? { cancelSignal: options.abort } : {}) });
      if (result.isCanceled) return interruptedOutcome(image);
      if (result.exitCode !== 0) return { image, ok: false, reason: skopeoFailure(String(result.stderr)) };
      const pushed = (await readFile(digestFile, 'utf8').catch(() => '')).trim();
      if (pushed && pushed !== image.digest) return { image, ok: false, reason: `skopeo pushed digest ${pushed}, the source is ${image.digest}` };
      return { image, ok: true };
    } finally {
      rmSync(digestFile, { force: true });
    }
  }

  async function copyAll(): Promise<ImageOutcome[]> {
    // A repository's images in their source push order (transfer/push-order.ts): a copy pushes its blobs and its tag
    // at once, so a repository's copies go one after another, oldest first; other repositories' copies in parallel.
    // Each waits for its turn before it takes an upload slot, never while holding one.
    const order = new PushTimeOrder(exported.map((item) => item.image));
    const outcomes = await Promise.all(
      exported.map(async (item) => {
        try {
          await order.turn(item.image);
          return await destination.budget.uploads.run(() => copyOne(item));
        } finally {
          order.done(item.image);
        }
      }),
    );
    // Parallel skopeo copies racing on a shared layer make distribution answer 500 now and then ("trying to reuse
    // blob … 500"): images that failed that way go once more, one at a time, when the race is over.
    for (const [i, outcome] of outcomes.entries()) {
      const item = exported[i]!;
      if (outcome.ok || !item.ok || !outcome.reason.startsWith('skopeo:')) continue;
      outcomes[i] = await copyOne(item);
    }
    for (const outcome of outcomes) options.onEvent(imageDoneEvent(outcome));
    return outcomes;
  }
}

/** execa is loaded when skopeo is run: a push that never calls it does not pay for loading it. */
async function loadExeca(): Promise<typeof import('execa').execa> {
  return (await import('execa')).execa;
}

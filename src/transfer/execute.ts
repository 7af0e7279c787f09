import type { ManifestRecord } from '../image/reader.js';
import type { Plan, PlannedBlob, PlannedImage } from '../plan/plan.js';
import type { RegistryClient } from '../registry/client.js';
import { RegistryError, UploadCutError } from '../registry/errors.js';
import { formatBytes } from '../util/format.js';
import { errorMessage } from '../errors.js';
import type { PolicyRefusal } from '../harbor/refusals.js';
import type { DestinationBudget, RequestBudget } from '../destination/budget.js';
import type { SourceBlobReader } from '../storage/storage.js';
import { Interrupted } from '../util/stop.js';
import { ManifestWriter } from './manifests.js';
import { SubjectOrder } from './subjects.js';
import { inPushOrder, PushTimeOrder } from './push-order.js';
import { SHARD_POLL_MS, SHARD_WAIT_MS, SMALL_BLOB_BYTES } from '../tuning.js';

/** Resolves after `ms`, or at once when the signal fires (the next step then sees it). */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export interface TransferStats {
  blobsUploaded: number;
  bytesUploaded: number;
  blobsMounted: number;
  bytesMounted: number;
  blobsSkipped: number;
  bytesSkipped: number;
  manifestsPut: number;
}

export type TransferEvent =
  /**
   * Bytes of a blob upload under way, each counted once however often it is tried; negative: an upload that failed
   * takes back what it counted. Summed, they are the summary's bytes uploaded (TransferStats.bytesUploaded).
   */
  | { type: 'bytes'; bytes: number }
  | { type: 'blob-start'; digest: string; repository: string; size: number }
  | { type: 'blob-done'; digest: string; repository: string; how: 'uploaded' | 'mounted' | 'skipped'; size: number }
  | { type: 'image-done'; image: PlannedImage; ok: boolean; reason?: string; interrupted?: boolean };

export interface ExecuteOptions {
  readonly client: RegistryClient;
  readonly manifests: ReadonlyMap<string, ManifestRecord>;
  /** A blob's bytes in the source storage (src/storage/storage.ts blobReader). */
  readonly blobReader: (digest: string, size: number) => SourceBlobReader;
  /** The destination's budget: uploads, and the other requests (mounts, manifest PUTs, verification), in flight at once for the whole run. */
  readonly budget: DestinationBudget;
  readonly onEvent?: (event: TransferEvent) => void;
  /**
   * Stop starting uploads and mounts (SIGINT/SIGTERM). An image whose blobs all landed still gets its manifests;
   * uploads under way are cut by the client when the grace is over (they fail as Interrupted).
   */
  readonly signal?: AbortSignal;
  /**
   * Harbor: tags a manifest through its API. Set, schema1 manifests are put by their payload digest and tagged
   * here: Harbor 2.15+ rewrites a PUT by tag into a PUT by sha256 of the signed body, which never matches.
   */
  readonly tagThroughApi?: (repository: string, digest: string, tag: string) => Promise<void>;
  /** Names a refusal by one of the destination's policies from its error code (Harbor: harbor/refusals.ts). */
  readonly refusal?: (err: unknown) => PolicyRefusal | undefined;
  /** Runs right after each image is done (its verification), so it overlaps with the rest of the transfer. */
  readonly afterImage?: (outcome: ImageOutcome) => Promise<void>;
  /** How long a blob another shard uploads is waited for once this plan's own uploads are over (SHARD_WAIT_MS). */
  readonly shardWaitMs?: number;
}

export type ImageOutcome =
  | { image: PlannedImage; ok: true; convertedTo?: string; note?: string }
  | { image: PlannedImage; ok: false; reason: string; interrupted?: boolean; immutable?: true };

/** An image the stop left unfinished: reported `interrupted`, not `failed`. */
export function interruptedOutcome(image: PlannedImage): ImageOutcome {
  return { image, ok: false, reason: 'interrupted', interrupted: true };
}

/** The `image-done` event of an outcome. */
export function imageDoneEvent(outcome: ImageOutcome): TransferEvent {
  const { image } = outcome;
  return outcome.ok ? { type: 'image-done', image, ok: true } : { type: 'image-done', image, ok: false, reason: outcome.reason, ...(outcome.interrupted ? { interrupted: true } : {}) };
}

export function emptyStats(): TransferStats {
  return { blobsUploaded: 0, bytesUploaded: 0, blobsMounted: 0, bytesMounted: 0, blobsSkipped: 0, bytesSkipped: 0, manifestsPut: 0 };
}

export interface ExecuteResult {
  readonly outcomes: ImageOutcome[];
  readonly stats: TransferStats;
}

/** Why a blob failed, in words an operator acts on. DIGEST_INVALID means the source blob is corrupt (docs/registry-behaviour.md, Push). */
function describeBlobFailure(digest: string, err: unknown, refusal: ExecuteOptions['refusal']): string {
  if (err instanceof RegistryError && err.registryCode === 'DIGEST_INVALID') {
    return `corrupt-blob: the destination rejected blob ${digest}: its source data does not match its digest`;
  }
  if (err instanceof UploadCutError) {
    // The largest chunk that would have got through on every attempt, in whole MiB (at least the 1 MiB minimum).
    const chunk = Math.max(1, 2 ** Math.floor(Math.log2(Math.max(1, err.furthest / 2 ** 20))) / 2);
    return `upload-cut: blob ${digest}: the connection was cut mid-upload on all ${err.attempts} attempts (at most ${formatBytes(err.furthest)} of ${formatBytes(err.size)} sent; last: ${err.last.message}); the registry cannot resume a cut upload, so a link that cuts long transfers needs smaller requests: try --chunk-size ${chunk}MiB`;
  }
  return refusal?.(err)?.reason ?? `blob ${digest}: ${errorMessage(err)}`;
}

/**
 * Executes a plan. Images are pushed concurrently; each waits for its blobs. A blob is uploaded once, into its
 * home repository (its one POST asks and opens, so a re-run sends nothing twice); every other repository mounts it
 * from there once it has landed, falling back to an upload when the mount is refused. An image whose blobs did not
 * all land gets no manifest: no half images in the destination.
 */
export async function executePlan(plan: Plan, options: ExecuteOptions): Promise<ExecuteResult> {
  const stats = emptyStats();
  const emit = options.onEvent ?? (() => undefined);
  const blobs = new BlobStage(options, stats, emit);
  const manifests = new ManifestWriter({ ...options, requests: options.budget.requests, blobs: plan.blobs, stats });
  const order = new SubjectOrder(plan.images);
  const pushOrder = new PushTimeOrder(plan.images);
  const planned = new Map<string, PlannedBlob>(plan.blobs.map((b) => [b.digest, b]));

  const pushImage = async (image: PlannedImage): Promise<ImageOutcome> => {
    const results = await Promise.allSettled(image.blobs.map((digest) => blobs.ensure(image.repository, planned.get(digest)!)));
    const failed = results.findIndex((r) => r.status === 'rejected');
    if (failed >= 0) {
      const reason = (results[failed] as PromiseRejectedResult).reason;
      return reason instanceof Interrupted ? interruptedOutcome(image) : { image, ok: false, reason: describeBlobFailure(image.blobs[failed]!, reason, options.refusal) };
    }
    await order.subjectOf(image);
    // The repository's tags in their source push order: blobs went in parallel, only the manifests wait.
    await pushOrder.turn(image);
    return manifests.write(image);
  };

  // Every blob's one upload is queued up front: the large ones in the plan's order, largest first, so a big layer
  // never starts last and finishes alone; the small ones in the order the images need them, so images complete
  // from the first round trips on. Images only wait for theirs (a failure is seen by the images that need the blob).
  const ordered = uploadOrder(plan);
  const queued = ordered.map((blob) => blobs.ensure(blob.home, blob));
  for (const promise of queued) promise.catch(() => undefined);
  // A blob another shard uploads is waited for; the wait's bound counts from when this plan's own uploads are over.
  void Promise.allSettled(queued.filter((_, i) => !ordered[i]!.sharedFrom)).then(() => blobs.markIdle());
  const outcomes = await Promise.all(
    plan.images.map(async (image) => {
      const outcome = await order.land(image, () => pushImage(image).finally(() => pushOrder.done(image)));
      emit(imageDoneEvent(outcome));
      await options.afterImage?.(outcome);
      return outcome;
    }),
  );
  return { outcomes, stats };
}

/**
 * The plan's blobs: those over SMALL_BLOB_BYTES in the plan's order (largest first), then the small ones image by
 * image in the order the images' manifests go (their source push order), so each image's last blob is not held up
 * behind those of images whose turn comes later.
 */
function uploadOrder(plan: Plan): PlannedBlob[] {
  const ordered = plan.blobs.filter((blob) => blob.size > SMALL_BLOB_BYTES);
  const small = new Map(plan.blobs.filter((blob) => blob.size <= SMALL_BLOB_BYTES).map((blob) => [blob.digest, blob]));
  for (const image of inPushOrder(plan.images)) {
    for (const digest of image.blobs) {
      const blob = small.get(digest);
      if (!blob) continue;
      small.delete(digest);
      ordered.push(blob);
    }
  }
  // Small blobs no image lists (none today): last.
  for (const blob of small.values()) ordered.push(blob);
  return ordered;
}

/**
 * The blobs of a plan, each once per repository: the one upload at its home, a mount from there everywhere else
 * (an upload where the mount is refused). `ensure` of the same repository and blob is the same promise.
 */
class BlobStage {
  readonly #ensured = new Map<string, Promise<void>>();
  readonly client: RegistryClient;
  readonly #uploads: RequestBudget;
  readonly #requests: RequestBudget;
  readonly #options: ExecuteOptions;
  readonly #stats: TransferStats;
  readonly emit: (event: TransferEvent) => void;
  #idleAt: number | undefined;
  #keepSessions = false;

  constructor(options: ExecuteOptions, stats: TransferStats, emit: (event: TransferEvent) => void) {
    this.client = options.client;
    this.#uploads = options.budget.uploads;
    this.#requests = options.budget.requests;
    this.#options = options;
    this.#stats = stats;
    this.emit = emit;
  }

  ensure(repository: string, blob: PlannedBlob): Promise<void> {
    const key = `${repository}@${blob.digest}`;
    let promise = this.#ensured.get(key);
    if (!promise) {
      if (repository !== blob.home) promise = this.#ensureMounted(repository, blob);
      else promise = blob.sharedFrom ? this.#ensureShared(blob, blob.sharedFrom) : this.#ensureAtHome(blob);
      this.#ensured.set(key, promise);
    }
    return promise;
  }

  /** This plan's own uploads are over: from now on, a blob awaited from another shard is waited for at most shardWaitMs. */
  markIdle(): void {
    this.#idleAt ??= Date.now();
  }

  #checkInterrupted(): void {
    if (this.#options.signal?.aborted) throw new Interrupted('interrupted before this step started');
  }

  async #send(repository: string, blob: PlannedBlob, session?: URL): Promise<void> {
    const { client, emit } = this;
    this.#checkInterrupted();
    emit({ type: 'blob-start', digest: blob.digest, repository, size: blob.size });
    let counted = 0;
    const onBytes = (n: number): void => {
      counted += n;
      emit({ type: 'bytes', bytes: n });
    };
    try {
      await client.uploadBlob({ repository, blob: this.#options.blobReader(blob.digest, blob.size), session, onBytes });
    } catch (err) {
      // Bytes that went out for a blob that did not land are not uploaded: progress says what the summary says.
      if (counted > 0) emit({ type: 'bytes', bytes: -counted });
      throw err;
    }
    this.#stats.blobsUploaded++;
    this.#stats.bytesUploaded += blob.size;
    emit({ type: 'blob-done', digest: blob.digest, repository, how: 'uploaded', size: blob.size });
  }

  /**
   * Which budget a blob's upload takes: a small blob's POST and PUT are two short requests that wait on round trips
   * like a mount, so they take request slots (which grow across a long round trip); the upload budget is for the
   * bytes in flight of larger ones.
   */
  #budgetFor(blob: PlannedBlob): RequestBudget {
    return blob.size <= SMALL_BLOB_BYTES ? this.#requests : this.#uploads;
  }

  #upload(repository: string, blob: PlannedBlob, session?: URL): Promise<void> {
    return this.#budgetFor(blob).run(() => this.#send(repository, blob, session));
  }

  /**
   * The one upload of a blob, at its home, in the plan's order (largest first): upload slots are handed out in that
   * order, so that is the order bytes go out. One POST both asks and opens: a mount from the home repository into
   * itself answers 201 when the blob is there already (a re-run, a run resumed after a kill), else 202 with the
   * upload session the PUT goes to (distribution's linkedBlobStore.Create tries the mount, then opens a session).
   * One request fewer than HEAD + POST, and nothing re-sent after a crash.
   */
  async #ensureAtHome(blob: PlannedBlob): Promise<void> {
    // Held by the destination already (planned from what it holds): nothing to ask, nothing to send.
    if (blob.held) return;
    await this.#budgetFor(blob).run(async () => {
      this.#checkInterrupted();
      const there = await this.client.mountBlob(blob.home, blob.digest, blob.home);
      if (there.mounted) {
        this.#stats.blobsSkipped++;
        this.#stats.bytesSkipped += blob.size;
        this.emit({ type: 'blob-done', digest: blob.digest, repository: blob.home, how: 'skipped', size: blob.size });
        return;
      }
      await this.#send(blob.home, blob, there.location);
    });
  }

  /**
   * A blob another shard uploads into `from` (plan.ts `sharedFrom`): mounted from there once it has landed. Each
   * poll is the mount itself, never a pull: 201 means mounted; a 202 opened an upload session (distribution
   * registry/handlers/blobupload.go, StartBlobUpload, when `from` does not hold the blob yet), which is given up
   * while waiting and used for this run's own upload once the wait is over. No session (Harbor: no pull right on
   * `from`) means a mount will never do: upload at once.
   */
  async #ensureShared(blob: PlannedBlob, from: string): Promise<void> {
    for (let pause: number = SHARD_POLL_MS.first; ; pause = Math.min(pause * 2, SHARD_POLL_MS.max)) {
      const mount = await this.#requests.run(() => {
        this.#checkInterrupted();
        return this.client.mountBlob(blob.home, blob.digest, from);
      });
      if (mount.mounted) {
        this.#stats.blobsMounted++;
        this.#stats.bytesMounted += blob.size;
        this.emit({ type: 'blob-done', digest: blob.digest, repository: blob.home, how: 'mounted', size: blob.size });
        return;
      }
      const waited = this.#idleAt !== undefined && Date.now() - this.#idleAt >= (this.#options.shardWaitMs ?? SHARD_WAIT_MS);
      if (!mount.location || waited) return this.#upload(blob.home, blob, mount.location);
      const session = mount.location;
      if (!this.#keepSessions) {
        await this.#requests.run(() => this.client.cancelUpload(blob.home, session)).catch(() => {
          // No right to delete (a push-only account): the registry purges abandoned sessions itself (distribution
          // registry/handlers/app.go, uploadpurging, a week old by default); no more DELETEs this batch.
          this.#keepSessions = true;
        });
      }
      await sleep(pause, this.#options.signal);
    }
  }

  async #ensureMounted(repository: string, blob: PlannedBlob): Promise<void> {
    try {
      await this.ensure(blob.home, blob);
    } catch (err) {
      // A corrupt source blob fails everywhere; any other failure at home still leaves an upload here to try.
      if (err instanceof RegistryError && err.registryCode === 'DIGEST_INVALID') throw err;
      if (err instanceof Interrupted) throw err;
      await this.#upload(repository, blob);
      return;
    }
    // Mounting a blob the repository already has answers 201 too: no HEAD needed first. It goes before the backlog
    // of uploads queued up front: an image under way waits for it.
    const mount = await this.#requests.runFirst(() => {
      this.#checkInterrupted();
      return this.client.mountBlob(repository, blob.digest, blob.home);
    });
    if (mount.mounted) {
      this.#stats.blobsMounted++;
      this.#stats.bytesMounted += blob.size;
      this.emit({ type: 'blob-done', digest: blob.digest, repository, how: 'mounted', size: blob.size });
      return;
    }
    await this.#upload(repository, blob, mount.location);
  }
}

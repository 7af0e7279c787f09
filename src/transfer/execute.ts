import pLimit from 'p-limit';
import type { ManifestRecord } from '../image/reader.js';
import type { Plan, PlannedBlob, PlannedImage } from '../plan/plan.js';
import type { RegistryClient } from '../registry/client.js';
import { RegistryError } from '../registry/errors.js';
import { errorMessage } from '../errors.js';
import { convertSchema1, makeSigningKey, signSchema1, type SigningKey } from '../image/schema1.js';
import { blobReader, type BlobSource } from '../storage/source.js';
import { Interrupted } from '../util/stop.js';

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
  | { type: 'bytes'; bytes: number }
  | { type: 'blob-start'; digest: string; repository: string; size: number }
  | { type: 'blob-done'; digest: string; repository: string; how: 'uploaded' | 'mounted' | 'skipped'; size: number }
  | { type: 'image-done'; image: PlannedImage; ok: boolean; reason?: string };

export interface ExecuteOptions {
  readonly client: RegistryClient;
  readonly manifests: ReadonlyMap<string, ManifestRecord>;
  /** Where a blob's bytes are in the source storage (a `data` file, or a range of a tar). */
  readonly blobSource: (digest: string, size: number) => BlobSource;
  /** Uploads in flight at once. */
  readonly blobConcurrency: number;
  /** HEADs, mounts and manifest PUTs in flight at once. */
  readonly requestConcurrency: number;
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
  /** Runs right after each image is done (its verification), so it overlaps with the rest of the transfer. */
  readonly afterImage?: (outcome: ImageOutcome) => Promise<void>;
}

export type ImageOutcome =
  | { image: PlannedImage; ok: true; convertedTo?: string; note?: string }
  | { image: PlannedImage; ok: false; reason: string };

export interface ExecuteResult {
  readonly outcomes: ImageOutcome[];
  readonly stats: TransferStats;
}

/** Why a blob failed, in words an operator acts on. DIGEST_INVALID means the source blob is corrupt (docs/registry-behaviour.md, Push). */
function describeBlobFailure(digest: string, err: unknown): string {
  if (err instanceof RegistryError && err.registryCode === 'DIGEST_INVALID') {
    return `corrupt-blob: the destination rejected blob ${digest}: its source data does not match its digest`;
  }
  if (err instanceof RegistryError && err.failure === 'denied' && /exceed|quota/i.test(err.message)) {
    return `quota-exceeded: ${err.message}`;
  }
  return `blob ${digest}: ${errorMessage(err)}`;
}

/**
 * Executes a plan. Images are pushed concurrently; each waits for its blobs. A blob is uploaded once, into its
 * home repository (a HEAD first, so a re-run sends nothing twice); every other repository mounts it from there
 * once it has landed, falling back to an upload when the mount is refused. An image whose blobs did not all land
 * gets no manifest: no half images in the destination.
 */
export async function executePlan(plan: Plan, options: ExecuteOptions): Promise<ExecuteResult> {
  const { client } = options;
  const stats: TransferStats = { blobsUploaded: 0, bytesUploaded: 0, blobsMounted: 0, bytesMounted: 0, blobsSkipped: 0, bytesSkipped: 0, manifestsPut: 0 };
  const blobs = new Map<string, PlannedBlob>(plan.blobs.map((b) => [b.digest, b]));
  const uploads = pLimit(options.blobConcurrency);
  const requests = pLimit(options.requestConcurrency);
  const ensured = new Map<string, Promise<void>>();
  const childManifests = new Map<string, Promise<void>>();
  const emit = options.onEvent ?? (() => undefined);
  const checkInterrupted = (): void => {
    if (options.signal?.aborted) throw new Interrupted('interrupted before this step started');
  };

  const send = async (repository: string, blob: PlannedBlob, session?: URL): Promise<void> => {
    checkInterrupted();
    emit({ type: 'blob-start', digest: blob.digest, repository, size: blob.size });
    const source = options.blobSource(blob.digest, blob.size);
    await client.uploadBlob({ repository, blob: blobReader(source, blob.digest), session, onBytes: (n) => emit({ type: 'bytes', bytes: n }) });
    stats.blobsUploaded++;
    stats.bytesUploaded += blob.size;
    emit({ type: 'blob-done', digest: blob.digest, repository, how: 'uploaded', size: blob.size });
  };
  const upload = (repository: string, blob: PlannedBlob, session?: URL): Promise<void> => uploads(() => send(repository, blob, session));

  /**
   * The one upload of a blob, at its home, in the plan's order (largest first): upload slots are handed out in that
   * order, so that is the order bytes go out. One POST both asks and opens: a mount from the home repository into
   * itself answers 201 when the blob is there already (a re-run, a run resumed after a kill), else 202 with the
   * upload session the PUT goes to (distribution's linkedBlobStore.Create tries the mount, then opens a session).
   * One request fewer than HEAD + POST, and nothing re-sent after a crash.
   */
  const ensureAtHome = async (blob: PlannedBlob): Promise<void> => {
    // Held by the destination already (planned from what it holds): nothing to ask, nothing to send.
    if (blob.held) return;
    await uploads(async () => {
      checkInterrupted();
      const there = await client.mountBlob(blob.home, blob.digest, blob.home);
      if (there.mounted) {
        stats.blobsSkipped++;
        stats.bytesSkipped += blob.size;
        emit({ type: 'blob-done', digest: blob.digest, repository: blob.home, how: 'skipped', size: blob.size });
        return;
      }
      await send(blob.home, blob, there.location);
    });
  };

  const ensureMounted = async (repository: string, blob: PlannedBlob): Promise<void> => {
    try {
      await ensureBlob(blob.home, blob);
    } catch (err) {
      // A corrupt source blob fails everywhere; any other failure at home still leaves an upload here to try.
      if (err instanceof RegistryError && err.registryCode === 'DIGEST_INVALID') throw err;
      if (err instanceof Interrupted) throw err;
      await upload(repository, blob);
      return;
    }
    // Mounting a blob the repository already has answers 201 too: no HEAD needed first.
    const mount = await requests(() => {
      checkInterrupted();
      return client.mountBlob(repository, blob.digest, blob.home);
    });
    if (mount.mounted) {
      stats.blobsMounted++;
      stats.bytesMounted += blob.size;
      emit({ type: 'blob-done', digest: blob.digest, repository, how: 'mounted', size: blob.size });
      return;
    }
    await upload(repository, blob, mount.location);
  };

  function ensureBlob(repository: string, blob: PlannedBlob): Promise<void> {
    const key = `${repository}@${blob.digest}`;
    let promise = ensured.get(key);
    if (!promise) {
      promise = repository === blob.home ? ensureAtHome(blob) : ensureMounted(repository, blob);
      ensured.set(key, promise);
    }
    return promise;
  }

  let signingKey: SigningKey | undefined;
  const putManifest = async (image: PlannedImage, digest: string, reference: string): Promise<void> => {
    const record = options.manifests.get(digest);
    if (!record) throw new Error(`manifest ${digest} of ${image.source} is not in the inventory`);
    // Schema1 is stored unsigned; a registry wants a signature, and signing keeps the payload's digest.
    let bytes = record.bytes;
    if (record.kind === 'schema1') bytes = signSchema1(record.bytes, (signingKey ??= makeSigningKey()));
    // No check for a signal here: the image's blobs are all there, and a manifest is a small request.
    const served = await requests(() => client.putManifest(image.repository, reference, bytes, record.mediaType));
    stats.manifestsPut++;
    if (served !== digest) throw new Error(`the destination computed digest ${served} for manifest ${digest}: it changed the bytes`);
  };

  /**
   * A signed schema1 manifest: by tag, or on Harbor by its payload digest and then tagged through the API. Returns
   * why the destination refused it, for a conversion: any 4xx (MANIFEST_INVALID, MANIFEST_UNVERIFIED, DIGEST_INVALID,
   * …), the 500 UNKNOWN of distribution 2.8 without schema1 support (known at once, never retried:
   * registry/errors.ts isSchema1Refusal), or another 5xx still there after the usual retries. Auth, quota and network
   * failures are not refusals.
   */
  const putSchema1 = async (image: PlannedImage): Promise<'pushed' | string> => {
    try {
      if (options.tagThroughApi) {
        await putManifest(image, image.digest, image.digest);
      } else {
        await putManifest(image, image.digest, image.tag);
        return 'pushed';
      }
    } catch (err) {
      if (!(err instanceof RegistryError) || err.status === undefined || err.failure === 'auth' || err.failure === 'denied') throw err;
      return `${err.status}${err.registryCode ? ` ${err.registryCode}` : ''}`;
    }
    await requests(() => options.tagThroughApi!(image.repository, image.digest, image.tag));
    return 'pushed';
  };

  const sizes = new Map(plan.blobs.map((b) => [b.digest, b.size]));
  /** schema1 → schema2: config uploaded, manifest put by tag; returns the new digest. */
  const pushConverted = async (image: PlannedImage): Promise<string> => {
    const record = options.manifests.get(image.digest)!;
    const converted = await convertSchema1(record.bytes, (digest) => options.blobSource(digest, sizes.get(digest) ?? 0));
    await requests(() => client.uploadBuffer(image.repository, converted.configDigest, converted.config));
    const served = await requests(() => client.putManifest(image.repository, image.tag, converted.manifest, 'application/vnd.docker.distribution.manifest.v2+json'));
    stats.manifestsPut++;
    if (served !== converted.digest) throw new Error(`the destination computed digest ${served} for the converted manifest ${converted.digest}`);
    return converted.digest;
  };

  // Referrers (signatures, SBOMs, anything with a `subject`) go after the image they refer to.
  const landed = new Map<string, { promise: Promise<void>; resolve: () => void }>();
  for (const image of plan.images) {
    const key = `${image.repository}@${image.digest}`;
    if (landed.has(key)) continue;
    let resolve: () => void = () => undefined;
    const promise = new Promise<void>((r) => (resolve = r));
    landed.set(key, { promise, resolve });
  }

  const pushImage = async (image: PlannedImage): Promise<ImageOutcome> => {
    try {
      return await pushImageInOrder(image);
    } finally {
      landed.get(`${image.repository}@${image.digest}`)?.resolve();
    }
  };

  const pushImageInOrder = async (image: PlannedImage): Promise<ImageOutcome> => {
    const results = await Promise.allSettled(image.blobs.map((digest) => ensureBlob(image.repository, blobs.get(digest)!)));
    const failed = results.findIndex((r) => r.status === 'rejected');
    if (failed >= 0) {
      const reason = (results[failed] as PromiseRejectedResult).reason;
      return { image, ok: false, reason: reason instanceof Interrupted ? 'interrupted' : describeBlobFailure(image.blobs[failed]!, reason) };
    }
    if (image.subject) await landed.get(`${image.repository}@${image.subject}`)?.promise;
    if (image.schema1) {
      if (image.schema1 === 'keep') {
        let refusal: string;
        try {
          refusal = await putSchema1(image);
          if (refusal === 'pushed') return { image, ok: true };
        } catch (err) {
          return { image, ok: false, reason: err instanceof Interrupted ? 'interrupted' : `manifest: ${errorMessage(err)}` };
        }
        // Refused as schema1: this image is converted, and says so; the next one is tried as schema1 again.
        try {
          const to = await pushConverted(image);
          return { image, ok: true, convertedTo: to, note: `converted from schema1: the destination refused schema1 (${refusal})` };
        } catch (convertErr) {
          return { image, ok: false, reason: `schema1 refused (${refusal}) and conversion failed: ${errorMessage(convertErr)}` };
        }
      }
      try {
        return { image, ok: true, convertedTo: await pushConverted(image), note: 'converted from schema1 (--schema1 convert)' };
      } catch (err) {
        return { image, ok: false, reason: err instanceof Interrupted ? 'interrupted' : `schema1 conversion: ${errorMessage(err)}` };
      }
    }
    try {
      // Children by digest first (a registry refuses an index whose children are missing), then the tag.
      for (const manifest of image.manifests.slice(0, -1)) {
        const key = `${image.repository}@${manifest.digest}`;
        let put = childManifests.get(key);
        if (!put) {
          put = putManifest(image, manifest.digest, manifest.digest);
          childManifests.set(key, put);
        }
        await put;
      }
      await putManifest(image, image.digest, image.tag);
      return { image, ok: true };
    } catch (err) {
      if (err instanceof Interrupted) return { image, ok: false, reason: 'interrupted' };
      // distribution 2.8 answers 500 "unknown error" plus "blob unknown (<the foreign layer>)"; its log says
      // "invalid URL on layer". Either way the foreign layer is what it will not take.
      if (image.foreignLayers && err instanceof RegistryError && (/URL/i.test(err.message) || image.foreignLayers.some((d) => err.message.includes(d)))) {
        return { image, ok: false, reason: `foreign-layer: the destination refuses manifests whose layers point at URLs (Windows base layers): ${errorMessage(err)}` };
      }
      return { image, ok: false, reason: `manifest: ${errorMessage(err)}` };
    }
  };

  // Every blob's one upload is queued up front in the plan's order, largest first, so a big layer never starts
  // last and finishes alone; images only wait for theirs (a failure is seen by the images that need the blob).
  for (const blob of plan.blobs) ensureBlob(blob.home, blob).catch(() => undefined);
  const outcomes = await Promise.all(
    plan.images.map(async (image) => {
      const outcome = await pushImage(image);
      emit(outcome.ok ? { type: 'image-done', image, ok: true } : { type: 'image-done', image, ok: false, reason: outcome.reason });
      await options.afterImage?.(outcome);
      return outcome;
    }),
  );
  return { outcomes, stats };
}

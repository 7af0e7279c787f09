import type { ManifestRecord } from '../image/reader.js';
import { convertSchema1, makeSigningKey, signSchema1, type SigningKey } from '../image/schema1.js';
import type { PlannedBlob, PlannedImage } from '../plan/plan.js';
import type { RegistryClient } from '../registry/client.js';
import { RegistryError } from '../registry/errors.js';
import type { RequestBudget } from '../destination/budget.js';
import { errorMessage } from '../errors.js';
import type { SourceBlobReader } from '../storage/storage.js';
import { Interrupted } from '../util/stop.js';
import { interruptedOutcome, type ImageOutcome, type TransferStats } from './execute.js';
import type { PolicyRefusal } from '../harbor/refusals.js';

export interface ManifestWriterOptions {
  readonly client: RegistryClient;
  readonly requests: RequestBudget;
  readonly manifests: ReadonlyMap<string, ManifestRecord>;
  /** The plan's blobs: a conversion reads the layers of a schema1 image from the source. */
  readonly blobs: readonly PlannedBlob[];
  readonly blobReader: (digest: string, size: number) => SourceBlobReader;
  /** See ExecuteOptions.refusal. */
  readonly refusal?: ((err: unknown) => PolicyRefusal | undefined) | undefined;
  /** See ExecuteOptions.tagThroughApi. */
  readonly tagThroughApi?: ((repository: string, digest: string, tag: string) => Promise<void>) | undefined;
  readonly stats: TransferStats;
}

/**
 * The manifests of an image whose blobs have all landed: plain (children by digest, then the tag), schema1 kept
 * (signed; converted when the destination refuses it), or schema1 converted. Returns the image's outcome.
 */
export class ManifestWriter {
  readonly #options: ManifestWriterOptions;
  readonly #children = new Map<string, Promise<void>>();
  readonly #sizes: Map<string, number>;
  #signingKey: SigningKey | undefined;

  constructor(options: ManifestWriterOptions) {
    this.#options = options;
    this.#sizes = new Map(options.blobs.map((b) => [b.digest, b.size]));
  }

  write(image: PlannedImage): Promise<ImageOutcome> {
    if (image.schema1 === 'keep') return this.#writeSchema1(image);
    if (image.schema1 === 'convert') return this.#writeConverted(image);
    return this.#writePlain(image);
  }

  async #writePlain(image: PlannedImage): Promise<ImageOutcome> {
    try {
      // Children by digest first (a registry refuses an index whose children are missing), then the tag.
      for (const manifest of image.manifests.slice(0, -1)) {
        const key = `${image.repository}@${manifest.digest}`;
        let put = this.#children.get(key);
        if (!put) {
          put = this.#put(image, manifest.digest, manifest.digest);
          this.#children.set(key, put);
        }
        await put;
      }
      await this.#put(image, image.digest, image.tag);
      return { image, ok: true };
    } catch (err) {
      if (err instanceof Interrupted) return interruptedOutcome(image);
      // distribution 2.8 answers 500 "unknown error" plus "blob unknown (<the foreign layer>)"; its log says
      // "invalid URL on layer". Either way the foreign layer is what it will not take.
      if (image.foreignLayers && err instanceof RegistryError && (/URL/i.test(err.message) || image.foreignLayers.some((d) => err.message.includes(d)))) {
        return { image, ok: false, reason: `foreign-layer: the destination refuses manifests whose layers point at URLs (Windows base layers): ${errorMessage(err)}` };
      }
      return this.#refused(image, err) ?? { image, ok: false, reason: `manifest: ${errorMessage(err)}` };
    }
  }

  /** The outcome of a push one of the destination's policies refused (ExecuteOptions.refusal), or undefined. */
  #refused(image: PlannedImage, err: unknown): ImageOutcome | undefined {
    const refused = this.#options.refusal?.(err);
    return refused && { image, ok: false, reason: refused.reason, ...(refused.immutable ? { immutable: true } : {}) };
  }

  async #writeSchema1(image: PlannedImage): Promise<ImageOutcome> {
    let refusal: string;
    try {
      refusal = await this.#putSchema1(image);
      if (refusal === 'pushed') return { image, ok: true };
    } catch (err) {
      if (err instanceof Interrupted) return interruptedOutcome(image);
      return this.#refused(image, err) ?? { image, ok: false, reason: `manifest: ${errorMessage(err)}` };
    }
    // Refused as schema1: this image is converted, and says so; the next one is tried as schema1 again.
    try {
      const to = await this.#putConverted(image);
      return { image, ok: true, convertedTo: to, note: `converted from schema1: the destination refused schema1 (${refusal})` };
    } catch (convertErr) {
      return { image, ok: false, reason: `schema1 refused (${refusal}) and conversion failed: ${errorMessage(convertErr)}` };
    }
  }

  async #writeConverted(image: PlannedImage): Promise<ImageOutcome> {
    try {
      return { image, ok: true, convertedTo: await this.#putConverted(image), note: 'converted from schema1 (--schema1 convert)' };
    } catch (err) {
      return err instanceof Interrupted ? interruptedOutcome(image) : { image, ok: false, reason: `schema1 conversion: ${errorMessage(err)}` };
    }
  }

  async #put(image: PlannedImage, digest: string, reference: string): Promise<void> {
    const { client, requests, stats } = this.#options;
    const record = this.#options.manifests.get(digest);
    if (!record) throw new Error(`manifest ${digest} of ${image.source} is not in the inventory`);
    // Schema1 is stored unsigned; a registry wants a signature, and signing keeps the payload's digest.
    let bytes = record.bytes;
    if (record.kind === 'schema1') bytes = signSchema1(record.bytes, (this.#signingKey ??= makeSigningKey()));
    // No check for a signal here: the image's blobs are all there, and a manifest is a small request.
    const served = await requests.runFirst(() => client.putManifest(image.repository, reference, bytes, record.mediaType));
    stats.manifestsPut++;
    if (served !== digest) throw new Error(`the destination computed digest ${served} for manifest ${digest}: it changed the bytes`);
  }

  /**
   * A signed schema1 manifest: by tag, or on Harbor by its payload digest and then tagged through the API. Returns
   * why the destination refused it, for a conversion: any 4xx (MANIFEST_INVALID, MANIFEST_UNVERIFIED, DIGEST_INVALID,
   * …), the 500 UNKNOWN of distribution 2.8 without schema1 support (known at once, never retried:
   * registry/errors.ts isSchema1Refusal), or another 5xx still there after the usual retries. Auth, quota and network
   * failures are not refusals.
   */
  async #putSchema1(image: PlannedImage): Promise<'pushed' | string> {
    const tagThroughApi = this.#options.tagThroughApi;
    try {
      if (tagThroughApi) {
        await this.#put(image, image.digest, image.digest);
      } else {
        await this.#put(image, image.digest, image.tag);
        return 'pushed';
      }
    } catch (err) {
      if (!(err instanceof RegistryError) || err.status === undefined || err.failure === 'auth' || err.failure === 'denied') throw err;
      return `${err.status}${err.registryCode ? ` ${err.registryCode}` : ''}`;
    }
    await this.#options.requests.runFirst(() => tagThroughApi(image.repository, image.digest, image.tag));
    return 'pushed';
  }

  /** schema1 → schema2: config uploaded, manifest put by tag; returns the new digest. */
  async #putConverted(image: PlannedImage): Promise<string> {
    const { client, requests, stats } = this.#options;
    const record = this.#options.manifests.get(image.digest)!;
    const converted = await convertSchema1(record.bytes, (digest) => this.#options.blobReader(digest, this.#sizes.get(digest) ?? 0));
    await requests.runFirst(() => client.uploadBuffer(image.repository, converted.configDigest, converted.config));
    const served = await requests.runFirst(() => client.putManifest(image.repository, image.tag, converted.manifest, 'application/vnd.docker.distribution.manifest.v2+json'));
    stats.manifestsPut++;
    if (served !== converted.digest) throw new Error(`the destination computed digest ${served} for the converted manifest ${converted.digest}`);
    return converted.digest;
  }
}

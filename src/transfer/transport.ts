import type { Destination } from '../destination/destination.js';
import type { ManifestRecord } from '../image/reader.js';
import type { Plan } from '../plan/plan.js';
import type { Storage } from '../storage/storage.js';
import { harborRefusal } from '../harbor/refusals.js';
import { executePlan, type ImageOutcome, type TransferEvent, type TransferStats } from './execute.js';

/** One batch for a transport: its plan, the manifests it needs, and what runs as each image is done. */
export interface TransportBatch {
  readonly plan: Plan;
  readonly manifests: ReadonlyMap<string, ManifestRecord>;
  /** Verification of one image, run as soon as it is done. */
  readonly afterImage: (outcome: ImageOutcome) => Promise<void>;
}

/** How images get to the destination, a batch at a time: `--via oci` (ours over HTTP) or `--via skopeo`. */
export interface Transport {
  transfer(batch: TransportBatch): Promise<TransferStats>;
  /** After the last batch, however the run ended: what the transport made for the run goes. */
  close(): void;
}

export interface OciTransportOptions {
  readonly onEvent: (event: TransferEvent) => void;
  readonly signal?: AbortSignal | undefined;
  /** How long a blob another shard uploads is waited for (ExecuteOptions.shardWaitMs). */
  readonly shardWaitMs?: number;
}

/** `--via oci`: executePlan over the destination's client and budget, the blobs read from the storage. */
export function ociTransport(storage: Storage, destination: Destination, options: OciTransportOptions): Transport {
  const harbor = destination.harbor;
  return {
    transfer: async ({ plan, manifests, afterImage }) => {
      const executed = await executePlan(plan, {
        afterImage,
        client: destination.client,
        budget: destination.budget,
        manifests,
        blobReader: (digest, size) => storage.blobReader(digest, size),
        onEvent: options.onEvent,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.shardWaitMs !== undefined ? { shardWaitMs: options.shardWaitMs } : {}),
        ...(harbor ? { tagThroughApi: (repository: string, digest: string, tag: string) => harbor.addTag(repository, digest, tag), refusal: harborRefusal } : {}),
      });
      return executed.stats;
    },
    close: () => undefined,
  };
}

import { destinationRef, type PlannedImage } from '../plan/plan.js';
import { flattenString } from '../util/strings.js';

/**
 * `immutable`: Harbor keeps the destination tag at another digest (an immutability rule): drift it may not fix.
 * `interrupted`: a stop (SIGINT, SIGTERM) came before the image was done; a re-run finishes it.
 */
export type ImageStatus = 'verified' | 'skipped-existing' | 'skipped' | 'immutable' | 'failed' | 'interrupted';

/** One line of the verified image list. */
export interface ImageReport {
  readonly source: string;
  readonly destination: string | undefined;
  readonly digest: string | undefined;
  readonly mediaType: string | undefined;
  readonly size: number;
  readonly status: ImageStatus;
  readonly reason: string | undefined;
  /** The digest the destination holds when it is not the source's (a schema1 image converted to schema2). */
  readonly convertedTo: string | undefined;
  /** The digest of the image this one signs or describes (cosign tags, OCI `subject`). */
  readonly subject: string | undefined;
  /** When the source tag was last pushed (ms since the epoch: a number, not a string, for a run's 200,000 reports). */
  readonly sourcePushedAt: number | undefined;
  /** When the destination says the tag was pushed (Harbor's `push_time`, read back at verification), ms. */
  readonly destinationPushedAt: number | undefined;
}

/**
 * A tag's report, always of one shape: a run keeps one per tag (200,000 at the scale bench).
 * Reports built by spreading took 2.3× the memory (each its own hidden class). The source name is the planner's flat
 * one; the destination name is the same string when equal, else flattened (util/strings.ts).
 */
export function imageReport(r: Partial<Omit<ImageReport, 'source' | 'status'>> & Pick<ImageReport, 'source' | 'status'>): ImageReport {
  return {
    source: r.source,
    destination: r.destination === undefined ? undefined : r.destination === r.source ? r.source : flattenString(r.destination),
    digest: r.digest,
    mediaType: r.mediaType || undefined,
    size: r.size ?? 0,
    status: r.status,
    reason: r.reason,
    convertedTo: r.convertedTo,
    subject: r.subject,
    sourcePushedAt: r.sourcePushedAt,
    destinationPushedAt: r.destinationPushedAt,
  };
}

/** The report of a planned image. */
export function reportOf(image: PlannedImage, status: ImageStatus, more: { reason?: string | undefined; convertedTo?: string | undefined; destinationPushedAt?: number | undefined } = {}): ImageReport {
  const sourcePushedAt = image.pushedAt ? Date.parse(image.pushedAt) : undefined;
  return imageReport({ source: image.source, destination: destinationRef(image), digest: image.digest, mediaType: image.mediaType, size: image.size, status, subject: image.subject, sourcePushedAt, ...more });
}

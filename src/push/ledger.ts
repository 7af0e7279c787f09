import { describeReadFault } from '../inventory/render.js';
import { FAULT_KINDS, tagRef, type FaultKind, type SourceInventory } from '../inventory/types.js';
import type { Candidates, PlannedImage, RejectedImage } from '../plan/plan.js';
import { emptyStats, type TransferStats } from '../transfer/execute.js';
import type { SourceWalk } from '../inventory/scan.js';
import { DigestMap } from '../util/digest-map.js';
import { flattenString } from '../util/strings.js';
import { imageReport, type ImageReport } from './image-report.js';

/**
 * What a run accumulates over all its batches: one report per source tag, the rejected images, transfer counts, the
 * faults of the tags resolved, every source tag seen, and which destination repository holds each blob.
 */
export class RunLedger {
  readonly reports: ImageReport[] = [];
  readonly rejected: RejectedImage[] = [];
  readonly stats: TransferStats = emptyStats();
  readonly faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  /** Every source tag found, selected or not, faulty or not (`repo:tag`): what a sync never takes for gone. */
  readonly seen = new Set<string>();
  /** Blob digest → a destination repository that holds it (an image there uses it): mounted from there, never sent again. */
  readonly holders = new DigestMap<string>();
  /** Tags resolved (selected ones). */
  resolvedTags = 0;

  /** A directory the walk could not read: its tags are unknown, so the run cannot say it moved everything. */
  constructor(walk: SourceWalk) {
    for (const f of walk.readFaults) {
      this.reports.push(imageReport({ source: f.prefix || '(every repository)', status: 'failed', reason: describeReadFault(f) }));
    }
  }

  /** Every tag a batch read is accepted or rejected: their names, and those of the tags the selection left out. */
  read(inventory: SourceInventory, candidates: Candidates): void {
    this.resolvedTags += inventory.tags.length;
    for (const tag of inventory.tags) for (const fault of tag.faults) this.faults[fault.kind]++;
    for (const c of candidates.accepted) this.seen.add(c.source);
    for (const r of candidates.rejected) this.seen.add(r.source);
    for (const tag of inventory.deselected ?? []) this.seen.add(flattenString(tagRef(tag)));
  }

  /** The batch's images that cannot be migrated, as rejected and as failed reports. */
  reject(rejected: readonly RejectedImage[]): void {
    this.rejected.push(...rejected);
    for (const r of rejected) {
      this.reports.push(imageReport({ source: r.source, destination: r.destination, digest: r.digest, mediaType: r.mediaType, size: r.size, status: 'failed', reason: r.reason }));
    }
  }

  report(report: ImageReport): void {
    this.reports.push(report);
  }

  /** The image is at the destination: its blobs can be mounted from its repository. */
  hold(image: PlannedImage): void {
    for (const digest of image.blobs) if (!this.holders.has(digest)) this.holders.set(digest, image.repository);
  }

  count(stats: TransferStats): void {
    for (const key of Object.keys(this.stats) as Array<keyof TransferStats>) this.stats[key] += stats[key];
  }

  /** The reports by source name. */
  sortedReports(): ImageReport[] {
    return this.reports.sort((a, b) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
  }
}

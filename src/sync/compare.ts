import pLimit from 'p-limit';
import { describeReadFault } from '../inventory/render.js';
import { readDestinationTags } from '../destination/destination-tags.js';
import { countDiff, diffTags, type DiffCounts, type DiffRow } from '../plan/diff.js';
import { planMigration } from '../plan/plan.js';
import type { ReadFault } from '../inventory/types.js';
import type { Destination } from '../destination/destination.js';
import { nameMapping, readSource, type SourceSelection } from '../transfer/source.js';

export interface CompareResult {
  readonly rows: readonly DiffRow[];
  readonly counts: DiffCounts;
  /** What a push would upload now: blobs its upload repository does not hold. */
  readonly blobsToUpload: number;
  readonly bytesToUpload: number;
  /**
   * The source: its root (src/storage/storage.ts Storage.root), its name in a sentence, tag locations before any
   * selection, and the tags selected.
   */
  readonly source: { readonly root: string; readonly name: string; readonly foundTags: number; readonly tags: number; readonly readFaults: readonly ReadFault[] };
}

/** `diff`: read-only on both sides. */
export async function compareStorage(destination: Destination, selection: SourceSelection, concurrency: number, converted?: ReadonlyMap<string, string>): Promise<CompareResult> {
  const mapping = nameMapping(selection, destination);
  const { storage, inventory, candidates } = await readSource(selection, mapping, concurrency);
  const projects = new Set(candidates.accepted.map((c) => c.project));
  const tags = await readDestinationTags(destination, projects, concurrency);
  const rows = diffTags(candidates, tags, converted);
  // A source read that met faults (an unreadable directory, a cut tar) is faulty itself, and a destination tag no
  // source tag maps to is not proven extra: it may belong to what could not be read.
  if (inventory.readFaults.length > 0) {
    for (let i = 0; i < rows.length; i++) {
      if (rows[i]!.status === 'extra') rows[i] = { ...rows[i]!, reason: 'the source was not read whole: this tag may come from what could not be read' };
    }
    for (const fault of inventory.readFaults) {
      rows.unshift({ status: 'faulty', source: fault.prefix || undefined, destination: undefined, sourceDigest: undefined, destinationDigest: undefined, reason: describeReadFault(fault) });
    }
  }
  const plan = planMigration(candidates, inventory.manifests, {
    projectExists: () => true,
    tags: new Map([...tags].map(([ref, t]) => [ref, t.digest])),
    ...(converted ? { converted } : {}),
  });
  // The push uploads a blob into its home repository unless that repository has it already: ask exactly that.
  const limit = pLimit(concurrency);
  const absent = await Promise.all(plan.blobs.map((b) => limit(async () => !(await destination.client.hasBlob(b.home, b.digest).catch(() => false)))));
  let blobsToUpload = 0;
  let bytesToUpload = 0;
  plan.blobs.forEach((blob, i) => {
    if (!absent[i]) return;
    blobsToUpload++;
    bytesToUpload += blob.size;
  });
  return { rows, counts: countDiff(rows), blobsToUpload, bytesToUpload, source: { root: inventory.root, name: storage.describe(), foundTags: inventory.foundTags ?? 0, tags: inventory.tags.length, readFaults: inventory.readFaults } };
}

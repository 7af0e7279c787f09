import { rmSync } from 'node:fs';
import pLimit from 'p-limit';
import { errorMessage } from '../errors.js';
import type { ProjectSettings } from '../harbor/client.js';
import { scanStorage } from '../inventory/scan.js';
import { tagRef, type SourceInventory } from '../inventory/types.js';
import { cachedMapper, type MapRule, type NameMapping } from '../plan/map-names.js';
import { shardSelector, type Shard } from '../plan/shard.js';
import { destinationRef, planMigration, selectCandidates, type Candidate, type Candidates, type Plan, type PlannedImage } from '../plan/plan.js';
import { blobDataPath, locateStorage, type StorageLayout } from '../storage/layout.js';
import { dataSource } from '../storage/source.js';
import type { Destination } from './destination.js';
import { executePlan, type ImageOutcome, type Schema1Mode, type TransferEvent, type TransferStats } from './execute.js';
import { isSchema1 } from '../image/media-types.js';
import { hashBytes } from '../image/reader.js';
import { schema1Payload } from '../image/schema1.js';
import { assertOutsideStorage } from './export.js';
import { makeWorkDir, pushWithSkopeo } from './skopeo.js';

export type ImageStatus = 'verified' | 'skipped-existing' | 'skipped' | 'failed';

/** One line of the verified image list. */
export interface ImageReport {
  readonly source: string;
  readonly destination: string | undefined;
  readonly digest: string | undefined;
  readonly mediaType: string | undefined;
  readonly size: number;
  readonly status: ImageStatus;
  readonly reason?: string;
  /** The digest the destination holds when it is not the source's (a schema1 image converted to schema2). */
  readonly convertedTo?: string;
  /** The digest of the image this one signs or describes (cosign tags, OCI `subject`). */
  readonly subject?: string;
}

export interface SourceSelection {
  readonly root: string;
  readonly include: readonly string[];
  readonly exclude: readonly string[];
  readonly maps: readonly MapRule[];
  readonly defaultProject: string;
  /** Also migrate manifests that no tag points at, by digest. */
  readonly includeUntagged?: boolean;
  /** Only this shard's repositories (by destination name). */
  readonly shard?: Shard;
}

export interface PushOptions extends SourceSelection {
  readonly project: ProjectSettings;
  readonly dryRun: boolean;
  /** Blob uploads in flight. */
  readonly concurrency: number;
  /** HEADs, mounts, manifest PUTs and verification GETs in flight. */
  readonly requestConcurrency: number;
  /** `oci`: our own client over HTTP; `skopeo`: `dir:` layouts pushed by `skopeo copy`. */
  readonly via: 'oci' | 'skopeo';
  /** skopeo transport: where the layouts go (default beside the storage), and whether to keep them. */
  readonly workDir?: string;
  readonly keepWorkDir?: boolean;
  /**
   * `repo:tag` → digest the destination is known to hold (a sync state journal, `--trust-state`): such tags are
   * neither resolved in the storage nor asked about, when their source link still names that digest.
   */
  readonly trusted?: ReadonlyMap<string, string>;
  /** Source digest → destination digest of images converted earlier (schema1), from the sync journal. */
  readonly converted?: ReadonlyMap<string, string>;
  /** `--schema1 keep|convert|skip` (default keep, converting when the destination refuses). */
  readonly schema1?: Schema1Mode;
  readonly onEvent?: (event: PushEvent) => void;
  readonly onNotice?: (message: string) => void;
  readonly signal?: AbortSignal;
}

export type PushEvent =
  | { type: 'scanned'; tags: number }
  | { type: 'project'; name: string; result: 'created' | 'exists' }
  | { type: 'planned'; plan: Plan }
  | TransferEvent;

export interface PushResult {
  readonly via: 'oci' | 'skopeo';
  readonly inventory: SourceInventory;
  readonly plan: Plan;
  readonly reports: readonly ImageReport[];
  readonly stats: TransferStats;
  readonly projectsCreated: readonly string[];
  readonly harborVersion: string | undefined;
  readonly durationMs: number;
}

export function nameMapping(selection: SourceSelection, destination: Destination): NameMapping {
  return { rules: selection.maps, defaultProject: selection.defaultProject, harbor: destination.harbor !== undefined };
}

/** Scan and map: the source side of every command that talks to a destination. */
export async function readSource(
  selection: SourceSelection,
  mapping: NameMapping,
  concurrency: number,
  trusted?: ReadonlyMap<string, string>,
): Promise<{ layout: StorageLayout; inventory: SourceInventory; candidates: Candidates }> {
  const layout = await locateStorage(selection.root);
  const map = cachedMapper(mapping);
  const trust = trusted
    ? (repository: string, tag: string, digest: string): boolean => {
        const mapped = map(repository);
        return mapped.ok && trusted.get(tagRef({ repository: mapped.repository, tag })) === digest;
      }
    : undefined;
  const shard = selection.shard;
  const inventory = await scanStorage(layout, {
    include: selection.include,
    exclude: selection.exclude,
    verify: false,
    concurrency,
    includeUntagged: selection.includeUntagged ?? false,
    ...(trust ? { trust } : {}),
    ...(shard ? { select: shardSelector(map, shard) } : {}),
  });
  return { layout, inventory, candidates: selectCandidates(inventory, mapping) };
}

function reportBase(image: PlannedImage) {
  return {
    source: image.source,
    destination: destinationRef(image),
    digest: image.digest,
    mediaType: image.mediaType || undefined,
    size: image.size,
    ...(image.subject ? { subject: image.subject } : {}),
  };
}

/**
 * `push` (and `sync`): scan → map → projects → probe → plan → execute → verify. Returns the per-image fate of every
 * source tag; throws only for problems that stop everything before work starts (exit 2/3).
 */
export async function pushStorage(destination: Destination, options: PushOptions): Promise<PushResult> {
  const started = Date.now();
  const emit = options.onEvent ?? (() => undefined);
  const mapping = nameMapping(options, destination);
  const { layout, inventory, candidates } = await readSource(options, mapping, options.requestConcurrency, options.trusted);
  emit({ type: 'scanned', tags: inventory.tags.length });
  const requests = pLimit(options.requestConcurrency);

  // Projects first: Harbor hands out tokens without actions for a project that does not exist (PROTOCOL.md §4).
  const harbor = destination.harbor;
  const existingProjects = new Set<string>();
  const projectsCreated: string[] = [];
  if (harbor) {
    const needed = [...new Set(candidates.accepted.filter((c) => !c.entry.trusted).map((c) => c.project))].sort();
    const exists = await Promise.all(needed.map((p) => requests(() => harbor.projectExists(p))));
    needed.forEach((p, i) => exists[i] && existingProjects.add(p));
    if (!options.dryRun) {
      for (const project of needed.filter((p) => !existingProjects.has(p))) {
        const result = await harbor.ensureProject(project, options.project);
        if (result === 'created') projectsCreated.push(project);
        existingProjects.add(project);
        emit({ type: 'project', name: project, result });
      }
    }
  }
  const projectExists = (project: string): boolean => !harbor || existingProjects.has(project);

  const tags = new Map<string, string>();
  const toProbe: Candidate[] = [];
  for (const c of candidates.accepted) {
    if (c.entry.trusted) tags.set(tagRef({ repository: c.repository, tag: c.entry.tag }), c.entry.digest!);
    else if (projectExists(c.project)) toProbe.push(c);
  }
  for (const [ref, digest] of await probeTags(destination, toProbe, requests)) tags.set(ref, digest);
  let plan = planMigration(candidates, inventory.manifests, { projectExists, tags, ...(options.converted ? { converted: options.converted } : {}) });
  const skipped: PlannedImage[] = [];
  if (options.schema1 === 'skip') {
    skipped.push(...plan.images.filter((i) => isSchema1(i.mediaType)));
    const kept = plan.images.filter((i) => !isSchema1(i.mediaType));
    const needed = new Set(kept.flatMap((i) => i.blobs));
    plan = { ...plan, images: kept, blobs: plan.blobs.filter((b) => needed.has(b.digest)) };
  }
  emit({ type: 'planned', plan });

  const stats: TransferStats = { blobsUploaded: 0, bytesUploaded: 0, blobsMounted: 0, bytesMounted: 0, blobsSkipped: 0, bytesSkipped: 0, manifestsPut: 0 };
  const reports: ImageReport[] = [];
  for (const rejected of plan.rejected) {
    reports.push({ source: rejected.source, destination: rejected.repository, digest: rejected.digest, mediaType: undefined, size: 0, status: 'failed', reason: rejected.reason });
  }
  for (const image of plan.existing) reports.push({ ...reportBase(image), status: 'skipped-existing' });
  for (const image of skipped) reports.push({ ...reportBase(image), status: 'skipped', reason: 'schema1 image (--schema1 skip)' });
  const finish = (): PushResult => {
    reports.sort((a, b) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
    return { via: options.via, inventory, plan, reports, stats, projectsCreated, harborVersion: destination.harborVersion, durationMs: Date.now() - started };
  };
  if (options.dryRun) return finish();

  let outcomes: ImageOutcome[];
  if (options.via === 'skopeo') {
    const workDir = makeWorkDir(layout, options.workDir);
    assertOutsideStorage(layout, workDir, '--work-dir');
    try {
      outcomes = await pushWithSkopeo(plan, {
        layout,
        destination,
        workDir,
        concurrency: options.concurrency,
        manifests: inventory.manifests,
        onEvent: emit,
        onNotice: options.onNotice ?? (() => undefined),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } finally {
      if (options.keepWorkDir) options.onNotice?.(`work directory kept: ${workDir}`);
      else rmSync(workDir, { recursive: true, force: true });
    }
  } else {
    const executed = await executePlan(plan, {
      client: destination.client,
      manifests: inventory.manifests,
      blobSource: (digest, size) => dataSource(layout, blobDataPath(layout, digest), size),
      blobConcurrency: options.concurrency,
      requestConcurrency: options.requestConcurrency,
      onEvent: emit,
      ...(options.schema1 ? { schema1: options.schema1 } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    Object.assign(stats, executed.stats);
    outcomes = executed.outcomes;
  }
  reports.push(...(await Promise.all(outcomes.map((outcome) => requests(() => verifyOutcome(destination, outcome))))));
  return finish();
}

/** Reads back what the destination serves for the tag and hashes it: the digest is the identity. */
async function verifyOutcome(destination: Destination, outcome: ImageOutcome): Promise<ImageReport> {
  const image = outcome.image;
  if (!outcome.ok) return { ...reportBase(image), status: 'failed', reason: outcome.reason };
  const expected = outcome.convertedTo ?? image.digest;
  const base = { ...reportBase(image), ...(outcome.convertedTo ? { convertedTo: outcome.convertedTo } : {}), ...(outcome.note ? { reason: outcome.note } : {}) };
  try {
    const served = await destination.client.getManifest(image.repository, image.tag);
    if (!served) return { ...base, status: 'failed', reason: 'verification: the destination does not serve the tag after the push' };
    // A registry serves schema1 signed with its own key: the digest is that of the payload inside.
    const digest = hashBytes(expected, isSchema1(served.mediaType) ? schema1Payload(served.bytes) : served.bytes);
    if (digest !== expected) return { ...base, status: 'failed', reason: `verification: the destination serves digest ${digest}` };
    return { ...base, status: 'verified' };
  } catch (err) {
    return { ...reportBase(image), status: 'failed', reason: `verification: ${errorMessage(err)}` };
  }
}

/** HEAD every candidate tag: what the destination already serves, so a second run transfers nothing. */
async function probeTags(destination: Destination, candidates: readonly Candidate[], requests: ReturnType<typeof pLimit>): Promise<Map<string, string>> {
  const tags = new Map<string, string>();
  await Promise.all(
    candidates.map((c) =>
      requests(async () => {
        try {
          const head = await destination.client.probeManifest(c.repository, c.entry.tag);
          if (head?.digest) tags.set(tagRef({ repository: c.repository, tag: c.entry.tag }), head.digest);
        } catch {
          // Unknown is treated as absent: the push itself will then say precisely what is wrong.
        }
      }),
    ),
  );
  return tags;
}

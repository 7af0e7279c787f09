import { rmSync } from 'node:fs';
import pLimit from 'p-limit';
import { DestinationError, errorMessage } from '../errors.js';
import { checkProjectAccess } from '../harbor/access.js';
import type { ProjectSettings } from '../harbor/client.js';
import { describeReadFault } from '../inventory/render.js';
import { FAULT_KINDS, tagRef, type FaultKind, type ReadFault, type SourceInventory } from '../inventory/types.js';
import { nameMapping, readSourceBatches, type SourceSelection, type TrustedDigests } from '../transfer/source.js';
import { destinationRef, joinPlans, planMigration, type Candidate, type Candidates, type Plan, type PlannedBlob, type PlannedImage, type RejectedImage, type Schema1Mode } from '../plan/plan.js';
import { blobDataPath } from '../storage/layout.js';
import { dataSource } from '../storage/source.js';
import type { Destination } from '../destination/destination.js';
import { executePlan, type ImageOutcome, type TransferEvent, type TransferStats } from '../transfer/execute.js';
import { recogniseConversions } from './converted.js';
import { isSchema1 } from '../image/media-types.js';
import { hashBytes } from '../image/reader.js';
import { schema1Payload } from '../image/schema1.js';
import { assertOutsideStorage } from '../skopeo/export.js';
import { makeWorkDir, pushWithSkopeo } from '../skopeo/skopeo.js';
import { onCleanup } from '../util/cleanup.js';
import { flattenString } from '../util/strings.js';
import { DigestMap } from '../util/digest-map.js';
import { Interrupted } from '../util/stop.js';
import { BATCH_TAGS, PROBE_TAG_READS } from '../tuning.js';

export type ImageStatus = 'verified' | 'skipped-existing' | 'skipped' | 'failed';

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
  };
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
  readonly trusted?: TrustedDigests;
  /** Source digest → destination digest of images converted earlier (schema1), from the sync journal. */
  readonly converted?: ReadonlyMap<string, string>;
  /**
   * Destination repositories known to exist (the sync journal has tags in them): a plain registry is asked about
   * their tags directly, without a `tags/list` first, which only pays off for repositories that may be new.
   */
  readonly knownRepositories?: ReadonlySet<string>;
  /** `--schema1 keep|convert|skip` (default keep, converting when the destination refuses). */
  readonly schema1?: Schema1Mode;
  /** Tags per batch (whole repositories; BATCH_TAGS). */
  readonly batchTags?: number;
  readonly onEvent?: (event: PushEvent) => void;
  readonly onNotice?: (message: string) => void;
  /** SIGINT/SIGTERM: nothing new starts (an image whose blobs all landed still gets its manifests). */
  readonly signal?: AbortSignal;
  /** The grace after `signal` is over: skopeo copies under way are killed (the registry client cuts its own). */
  readonly abort?: AbortSignal;
}

export type PushEvent =
  | { type: 'scanned'; tags: number }
  | { type: 'project'; name: string; result: 'created' | 'exists' }
  | { type: 'planned'; plan: Plan; batch: number; batches: number }
  | TransferEvent;

/** What the run learnt of the source, kept for the whole run: counts and names, never manifests. */
export interface SourceTotals {
  /** The storage's `docker/registry/v2` directory. */
  readonly root: string;
  /** Directories the walk could not read: the tags below them are unknown. */
  readonly readFaults: readonly ReadFault[];
  /** Tags resolved (selected ones). */
  readonly tags: number;
  /** Faults the resolved tags carry, by kind. */
  readonly faults: Record<FaultKind, number>;
  /** Every source tag found, selected or not, faulty or not (`repo:tag`): what a sync never takes for gone. */
  readonly seen: ReadonlySet<string>;
}

export interface PushResult {
  readonly via: 'oci' | 'skopeo';
  readonly source: SourceTotals;
  /** The whole plan, for `--dry-run` only: a real run plans and forgets one batch at a time. */
  readonly plan?: Plan;
  /** Source tags that cannot be migrated (faults, bad names, name collisions). */
  readonly rejected: readonly RejectedImage[];
  readonly reports: readonly ImageReport[];
  readonly stats: TransferStats;
  readonly projectsCreated: readonly string[];
  readonly harborVersion: string | undefined;
  /** When the run started (Unix ms); it ended `durationMs` later. */
  readonly startedAt: number;
  readonly durationMs: number;
  /** A signal stopped the run: what was not reached is unknown (never "gone"). */
  readonly interrupted: boolean;
  /** Requests this run sent to the destination (registry and Harbor API), and how many were retries. */
  readonly requests: number;
  readonly retries: number;
  /** Batches of repositories the run went through. */
  readonly batches: number;
}

function reportOf(image: PlannedImage, status: ImageStatus, more: { reason?: string | undefined; convertedTo?: string | undefined } = {}): ImageReport {
  return imageReport({ source: image.source, destination: destinationRef(image), digest: image.digest, mediaType: image.mediaType, size: image.size, status, subject: image.subject, ...more });
}

/** One batch, read and asked about: ready to plan once the batch before it has landed. */
interface PreparedBatch {
  readonly inventory: SourceInventory;
  readonly candidates: Candidates;
  readonly allowed: readonly Candidate[];
  readonly denied: readonly Candidate[];
  /** `repo:tag` → digest the destination holds (probed, or trusted from the journal). */
  readonly tags: ReadonlyMap<string, string>;
}

/**
 * `push` (and `sync`): walk the source, then a batch of whole repositories at a time: resolve → map → projects →
 * probe → plan → transfer (each image verified as it lands). The next batch is read and probed while one
 * transfers; what a blob's home is carries over (a blob that landed in one batch is mounted in the next), and so
 * does which names are taken. Returns the per-image fate of every source tag; throws only for problems that stop
 * everything before work starts (exit 2/3).
 */
export async function pushStorage(destination: Destination, options: PushOptions): Promise<PushResult> {
  const started = Date.now();
  const emit = options.onEvent ?? (() => undefined);
  const signal = options.signal;
  const mapping = nameMapping(options, destination);
  const source = await readSourceBatches(options, mapping, {
    concurrency: options.requestConcurrency,
    batchTags: options.batchTags ?? BATCH_TAGS,
    ...(options.trusted ? { trusted: options.trusted } : {}),
    ...(signal ? { signal } : {}),
  });
  const { layout, walk } = source;
  emit({ type: 'scanned', tags: walk.tagCount });
  const requests = pLimit(options.requestConcurrency);
  const harbor = destination.harbor;

  const faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  const seen = new Set<string>();
  let resolvedTags = 0;
  const reports: ImageReport[] = [];
  const rejected: RejectedImage[] = [];
  const stats: TransferStats = { blobsUploaded: 0, bytesUploaded: 0, blobsMounted: 0, bytesMounted: 0, blobsSkipped: 0, bytesSkipped: 0, manifestsPut: 0 };
  // --dry-run: every batch's plan, joined into the run's at the end.
  const whole: Plan[] | undefined = options.dryRun ? [] : undefined;
  // Blob digest → a destination repository that holds it (an image there uses it): mounted from there, never sent again.
  const holders = new DigestMap<string>();
  const hold = (image: PlannedImage): void => {
    for (const digest of image.blobs) if (!holders.has(digest)) holders.set(digest, image.repository);
  };
  // A directory the walk could not read: its tags are unknown, so the run cannot say it moved everything.
  for (const f of walk.readFaults) {
    reports.push(imageReport({ source: f.prefix || '(every repository)', status: 'failed', reason: describeReadFault(walk.layout.v2, f) }));
  }

  // Harbor projects, checked as batches first need them: created when missing (Harbor hands out tokens without
  // actions for a project that does not exist, docs/registry-behaviour.md, Auth), then the push right, from what the token service
  // grants: an account that may not push to a project learns it by name and role, not image by image.
  // Source digest → destination digest of schema1 images converted earlier: the journal's, and those recognised.
  const converted = new Map(options.converted);
  const checked = new Set<string>();
  const existingProjects = new Set<string>();
  const projectsCreated: string[] = [];
  const refused = new Map<string, string>();
  const policies = new Map<string, string>();
  const checkProjects = async (accepted: readonly Candidate[]): Promise<void> => {
    if (!harbor) return;
    const needed = new Map<string, string>();
    for (const c of accepted) if (!c.entry.trusted && !checked.has(c.project) && !needed.has(c.project)) needed.set(c.project, c.repository);
    if (needed.size === 0) return;
    for (const project of needed.keys()) checked.add(project);
    const access = await checkProjectAccess(harbor, destination.client.auth, destination.credentials?.username, {
      projects: needed,
      create: !options.dryRun,
      settings: options.project,
      concurrency: options.requestConcurrency,
      ...(signal ? { signal } : {}),
    });
    for (const a of access.values()) {
      if (a.exists) existingProjects.add(a.project);
      if (a.created) {
        projectsCreated.push(a.project);
        emit({ type: 'project', name: a.project, result: 'created' });
      }
      if (a.status === 'refused') {
        refused.set(a.project, a.reason!);
        options.onNotice?.(`error: ${a.reason!}; its images are skipped`);
      }
      if (a.policy) policies.set(a.project, a.policy);
    }
  };
  const projectExists = (project: string): boolean => !harbor || existingProjects.has(project);

  const prepare = async (): Promise<PreparedBatch | undefined> => {
    const batch = await source.next();
    if (!batch) return undefined;
    const { inventory, candidates } = batch;
    resolvedTags += inventory.tags.length;
    // Every tag read is accepted or rejected: their names, and those of the tags the selection left out.
    for (const tag of inventory.tags) for (const fault of tag.faults) faults[fault.kind]++;
    for (const c of candidates.accepted) seen.add(c.source);
    for (const r of candidates.rejected) seen.add(r.source);
    for (const tag of inventory.deselected ?? []) seen.add(flattenString(tagRef(tag)));
    await checkProjects(candidates.accepted);
    const allowed: Candidate[] = [];
    const denied: Candidate[] = [];
    for (const c of candidates.accepted) (refused.has(c.project) && !c.entry.trusted ? denied : allowed).push(c);
    const tags = new Map<string, string>();
    const toProbe: Candidate[] = [];
    for (const c of allowed) {
      if (c.entry.trusted) tags.set(tagRef({ repository: c.repository, tag: c.entry.tag }), c.entry.digest!);
      else if (projectExists(c.project)) toProbe.push(c);
    }
    if (!signal?.aborted) await probeTags(destination, toProbe, requests, tags, options.knownRepositories);
    // A tag that holds our conversion of a schema1 image counts as there (without a journal to say so).
    if (!signal?.aborted && !harbor) await recogniseConversions(destination.client, toProbe, inventory.manifests, tags, converted, requests);
    return { inventory, candidates, allowed, denied, tags };
  };

  let workDir: string | undefined;
  let forgetWorkDir = (): void => undefined;
  const verify = (outcome: ImageOutcome): Promise<ImageReport> => requests(() => verifyOutcome(destination, outcome, policies.get(outcome.image.project)));
  const afterImage = async (outcome: ImageOutcome): Promise<void> => {
    const report = await verify(outcome);
    if (report.status === 'verified' && !report.convertedTo) hold(outcome.image);
    reports.push(report);
  };

  const transfer = async (prepared: PreparedBatch, index: number): Promise<void> => {
    const { inventory, candidates, allowed, denied } = prepared;
    rejected.push(...candidates.rejected);
    for (const r of candidates.rejected) {
      reports.push(imageReport({ source: r.source, destination: r.destination, digest: r.digest, mediaType: r.mediaType, size: r.size, status: 'failed', reason: r.reason }));
    }
    for (const c of denied) {
      reports.push(imageReport({ source: c.source, destination: `${c.repository}:${c.entry.tag}`, digest: c.entry.digest, size: c.entry.size ?? 0, status: 'failed', reason: `permission: ${refused.get(c.project)!}` }));
    }
    // A signal before this batch started: nothing more is created, asked or sent, and its images say so.
    if (signal?.aborted) {
      for (const c of allowed) reports.push(imageReport({ source: c.source, destination: `${c.repository}:${c.entry.tag}`, digest: c.entry.digest, mediaType: c.entry.mediaType, size: c.entry.size, status: 'failed', reason: 'interrupted' }));
      return;
    }
    const planned = planMigration({ accepted: allowed, rejected: [] }, inventory.manifests, {
      projectExists,
      tags: prepared.tags,
      holders,
      converted,
      ...(options.schema1 ? { schema1: options.schema1 } : {}),
    });
    const plan: Plan = { ...planned, rejected: candidates.rejected };
    emit({ type: 'planned', plan, batch: index, batches: source.count });
    for (const image of plan.existing) {
      const there = prepared.tags.get(destinationRef(image));
      const convertedTo = there !== undefined && there !== image.digest ? there : undefined;
      reports.push(reportOf(image, 'skipped-existing', { convertedTo }));
      // A conversion leaves the schema1 `throwaway` layers unreferenced (garbage collection takes them): no holder.
      if (!convertedTo) hold(image);
    }
    for (const image of plan.skipped) reports.push(reportOf(image, 'skipped', { reason: 'schema1 image (--schema1 skip)' }));
    if (whole) {
      whole.push(plan);
      return;
    }
    if (options.via === 'skopeo') {
      if (!workDir) {
        workDir = makeWorkDir(layout, options.workDir);
        assertOutsideStorage(layout, workDir, '--work-dir');
        const dir = workDir;
        forgetWorkDir = options.keepWorkDir ? () => undefined : onCleanup(() => rmSync(dir, { recursive: true, force: true }));
      }
      const outcomes = await pushWithSkopeo(plan, {
        layout,
        destination,
        workDir,
        concurrency: options.concurrency,
        manifests: inventory.manifests,
        onEvent: emit,
        onNotice: options.onNotice ?? (() => undefined),
        ...(signal ? { signal } : {}),
        ...(options.abort ? { abort: options.abort } : {}),
      });
      await Promise.all(outcomes.map(afterImage));
      return;
    }
    // Each image is verified right after its tag lands, while other uploads go on.
    const executed = await executePlan(plan, {
      afterImage,
      client: destination.client,
      manifests: inventory.manifests,
      blobSource: (digest, size) => dataSource(layout, blobDataPath(layout, digest), size),
      blobConcurrency: options.concurrency,
      requestConcurrency: options.requestConcurrency,
      onEvent: emit,
      ...(signal ? { signal } : {}),
      ...(harbor ? { tagThroughApi: (repository: string, digest: string, tag: string) => harbor.addTag(repository, digest, tag) } : {}),
    });
    for (const key of Object.keys(stats) as Array<keyof TransferStats>) stats[key] += executed.stats[key];
  };

  let batches = 0;
  try {
    // The next batch is read and probed while this one transfers; it is planned after, knowing what landed.
    let next = prepare();
    for (;;) {
      const prepared = await next;
      if (!prepared) break;
      next = batches + 1 < source.count ? prepare() : Promise.resolve(undefined);
      next.catch(() => undefined);
      // Every project refused, the last batch read: nothing can move at all (exit 3), as said before any upload.
      if (harbor && refused.size > 0 && refused.size === checked.size && batches + 1 === source.count) {
        throw new DestinationError('PERMISSION_DENIED', [...refused.values()].join('; '), 'grant the account the developer role (or higher) in these projects, or use a system robot account (robot$<name>) with push permission');
      }
      await transfer(prepared, batches++);
    }
  } finally {
    if (workDir) {
      if (options.keepWorkDir) options.onNotice?.(`work directory kept: ${workDir}`);
      else rmSync(workDir, { recursive: true, force: true });
      forgetWorkDir();
    }
  }

  reports.sort((a, b) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
  return {
    via: options.via,
    source: { root: walk.layout.v2, readFaults: walk.readFaults, tags: resolvedTags, faults, seen },
    ...(whole ? { plan: joinPlans(whole, rejected) } : {}),
    rejected,
    reports,
    stats,
    projectsCreated,
    harborVersion: destination.harborVersion,
    startedAt: started,
    durationMs: Date.now() - started,
    interrupted: signal?.aborted ?? false,
    batches,
    ...requestCounts(destination),
  };
}

/**
 * Reads back what the destination holds for the tag: the digest is the identity. On Harbor through its REST API
 * (no pull recorded, no 412 from a pull policy: docs/architecture.md, Harbor is read through its REST API); elsewhere the manifest GET, hashed.
 */
async function verifyOutcome(destination: Destination, outcome: ImageOutcome, policy: string | undefined): Promise<ImageReport> {
  const image = outcome.image;
  if (!outcome.ok) return reportOf(image, 'failed', { reason: outcome.reason });
  const expected = outcome.convertedTo ?? image.digest;
  const notes = [outcome.note, policy && `verified through Harbor's API: project policy "${policy}" blocks pulls until Harbor allows the image`].filter(Boolean);
  const convertedTo = outcome.convertedTo;
  const note = notes.length ? notes.join('; ') : undefined;
  try {
    let digest: string | undefined;
    if (destination.harbor) {
      digest = (await destination.harbor.getArtifact(image.repository, image.tag))?.digest;
    } else {
      const served = await destination.client.getManifest(image.repository, image.tag);
      // A registry serves schema1 signed with its own key: the digest is that of the payload inside.
      if (served) digest = hashBytes(expected, isSchema1(served.mediaType) ? schema1Payload(served.bytes) : served.bytes);
    }
    if (!digest) return reportOf(image, 'failed', { convertedTo, reason: 'verification: the destination does not serve the tag after the push' });
    if (digest !== expected) return reportOf(image, 'failed', { convertedTo, reason: `verification: the destination serves digest ${digest}` });
    return reportOf(image, 'verified', { convertedTo, reason: note });
  } catch (err) {
    if (err instanceof Interrupted) return reportOf(image, 'failed', { reason: 'interrupted' });
    return reportOf(image, 'failed', { reason: `verification: ${errorMessage(err)}` });
  }
}

/**
 * What the destination already holds for the candidate tags, so a second run transfers nothing. Harbor: each
 * repository's artifact listing (100 a page), then one artifact read for a tag the listing does not show (it hides
 * accessories); no manifest GET, so no pull is recorded and no pull policy answers 412. A plain registry: a manifest
 * GET per tag.
 */
async function probeTags(destination: Destination, candidates: readonly Candidate[], requests: ReturnType<typeof pLimit>, tags: Map<string, string>, known?: ReadonlySet<string>): Promise<void> {
  const harbor = destination.harbor;
  if (harbor) {
    await Promise.all(
      [...groupByRepository(candidates)].map(([repository, wanted]) =>
        requests(async () => {
          try {
            const artifacts = await harbor.listArtifacts(repository);
            if (!artifacts) return;
            for (const a of artifacts) for (const t of a.tags ?? []) tags.set(tagRef({ repository, tag: t.name }), a.digest);
            for (const c of wanted) {
              const ref = tagRef({ repository, tag: c.entry.tag });
              if (tags.has(ref)) continue;
              const one = await harbor.getArtifact(repository, c.entry.tag);
              if (one) tags.set(ref, one.digest);
            }
          } catch {
            // Unknown is treated as absent: the push itself will then say precisely what is wrong.
          }
        }),
      ),
    );
    return;
  }
  // A plain registry: one `tags/list` per repository, then a manifest request only for the tags it lists (a first
  // push into new repositories costs one request per repository, not one per tag).
  const gets = pLimit(PROBE_TAG_READS);
  await Promise.all(
    [...groupByRepository(candidates)].map(([repository, wanted]) =>
      requests(async () => {
        let listed: Set<string> | undefined;
        try {
          if (!known?.has(repository)) listed = new Set(await destination.client.listTags(repository));
        } catch {
          listed = undefined; // no listing (a registry that refuses it): ask about every tag
        }
        await Promise.all(
          wanted
            .filter((c) => !listed || listed.has(c.entry.tag) || c.entry.untagged)
            .map((c) => gets(async () => {
              try {
                const head = await destination.client.probeManifest(c.repository, c.entry.tag);
                if (head?.digest) tags.set(tagRef({ repository: c.repository, tag: c.entry.tag }), head.digest);
              } catch {
                // Unknown is treated as absent: the push itself will then say precisely what is wrong.
              }
            })),
        );
      }),
    ),
  );
}

function requestCounts(destination: Destination): { requests: number; retries: number } {
  return { requests: destination.client.stats.requests + (destination.harbor?.requests ?? 0), retries: destination.client.stats.retries };
}

function groupByRepository(candidates: readonly Candidate[]): Map<string, Candidate[]> {
  const byRepository = new Map<string, Candidate[]>();
  for (const c of candidates) {
    let list = byRepository.get(c.repository);
    if (!list) byRepository.set(c.repository, (list = []));
    list.push(c);
  }
  return byRepository;
}

import { rmSync } from 'node:fs';
import pLimit from 'p-limit';
import { DestinationError, errorMessage } from '../errors.js';
import { checkProjectAccess } from '../harbor/access.js';
import type { ProjectSettings } from '../harbor/client.js';
import { describeReadFault } from '../inventory/render.js';
import { tagRef, type SourceInventory } from '../inventory/types.js';
import { nameMapping, readSource, type SourceSelection } from './source.js';
import { destinationRef, PLAN_VERSION, planMigration, type Candidate, type Plan, type PlannedImage } from '../plan/plan.js';
import { blobDataPath } from '../storage/layout.js';
import { dataSource } from '../storage/source.js';
import type { Destination } from './destination.js';
import { executePlan, type ImageOutcome, type Schema1Mode, type TransferEvent, type TransferStats } from './execute.js';
import { isSchema1 } from '../image/media-types.js';
import { hashBytes } from '../image/reader.js';
import { schema1Payload } from '../image/schema1.js';
import { assertOutsideStorage } from './export.js';
import { makeWorkDir, pushWithSkopeo } from './skopeo.js';
import { onCleanup } from '../util/cleanup.js';

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
  /**
   * Destination repositories known to exist (the sync journal has tags in them): a plain registry is asked about
   * their tags directly, without a `tags/list` first, which only pays off for repositories that may be new.
   */
  readonly knownRepositories?: ReadonlySet<string>;
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
  /** A signal stopped the run: what was not reached is unknown (never "gone"). */
  readonly interrupted: boolean;
  /** Requests this run sent to the destination (registry and Harbor API), and how many were retries. */
  readonly requests: number;
  readonly retries: number;
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
  const { layout, inventory, candidates } = await readSource(options, mapping, options.requestConcurrency, options.trusted, options.signal);
  emit({ type: 'scanned', tags: inventory.tags.length });
  const requests = pLimit(options.requestConcurrency);
  // A signal between phases stops the run there: nothing more is created, asked or sent. The inventory may be
  // partial then, so the result says `interrupted` (sync takes nothing for gone after such a run).
  const stopped = (): PushResult | undefined => {
    if (!options.signal?.aborted) return undefined;
    const reports: ImageReport[] = candidates.accepted.map((c) => ({
      source: tagRef(c.entry),
      destination: `${c.repository}:${c.entry.tag}`,
      digest: c.entry.digest,
      mediaType: c.entry.mediaType,
      size: c.entry.size,
      status: 'failed',
      reason: 'interrupted',
    }));
    const plan: Plan = { version: PLAN_VERSION, projectsToCreate: [], images: [], existing: [], blobs: [], rejected: candidates.rejected };
    const stats: TransferStats = { blobsUploaded: 0, bytesUploaded: 0, blobsMounted: 0, bytesMounted: 0, blobsSkipped: 0, bytesSkipped: 0, manifestsPut: 0 };
    return { via: options.via, inventory, plan, reports, stats, projectsCreated: [], harborVersion: destination.harborVersion, durationMs: Date.now() - started, interrupted: true, ...requestCounts(destination) };
  };
  const early = stopped();
  if (early) return early;

  // Projects first: Harbor hands out tokens without actions for a project that does not exist (PROTOCOL.md §4).
  // Then the push right in each, from what the token service grants: an account that may not push to a project
  // learns it now, by name and role, not image by image deep into the run.
  const harbor = destination.harbor;
  const existingProjects = new Set<string>();
  const projectsCreated: string[] = [];
  const refused = new Map<string, string>();
  const policies = new Map<string, string>();
  if (harbor) {
    const needed = new Map<string, string>();
    for (const c of candidates.accepted) if (!c.entry.trusted && !needed.has(c.project)) needed.set(c.project, c.repository);
    const access = await checkProjectAccess(harbor, destination.client.auth, destination.credentials?.username, {
      projects: needed,
      create: !options.dryRun,
      settings: options.project,
      concurrency: options.requestConcurrency,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    for (const a of access.values()) {
      if (a.exists) existingProjects.add(a.project);
      if (a.created) {
        projectsCreated.push(a.project);
        emit({ type: 'project', name: a.project, result: 'created' });
      }
      if (a.status === 'refused') refused.set(a.project, a.reason!);
      if (a.policy) policies.set(a.project, a.policy);
    }
    if (refused.size > 0 && refused.size === access.size) {
      throw new DestinationError('PERMISSION_DENIED', [...refused.values()].join('; '), 'grant the account the developer role (or higher) in these projects, or use a system robot account (robot$<name>) with push permission');
    }
    for (const reason of refused.values()) options.onNotice?.(`error: ${reason}; its images are skipped`);
  }
  const afterProjects = stopped();
  if (afterProjects) return { ...afterProjects, projectsCreated };
  const projectExists = (project: string): boolean => !harbor || existingProjects.has(project);
  const allowed: Candidate[] = [];
  const denied: Candidate[] = [];
  for (const c of candidates.accepted) (refused.has(c.project) && !c.entry.trusted ? denied : allowed).push(c);

  const tags = new Map<string, string>();
  const toProbe: Candidate[] = [];
  for (const c of allowed) {
    if (c.entry.trusted) tags.set(tagRef({ repository: c.repository, tag: c.entry.tag }), c.entry.digest!);
    else if (projectExists(c.project)) toProbe.push(c);
  }
  for (const [ref, digest] of await probeTags(destination, toProbe, requests, options.knownRepositories)) tags.set(ref, digest);
  const afterProbe = stopped();
  if (afterProbe) return { ...afterProbe, projectsCreated };
  let plan = planMigration({ accepted: allowed, rejected: candidates.rejected }, inventory.manifests, { projectExists, tags, ...(options.converted ? { converted: options.converted } : {}) });
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
  // A directory the walk could not read: its tags are unknown, so the run cannot say it moved everything.
  for (const f of inventory.readFaults) {
    reports.push({ source: f.prefix || '(every repository)', destination: undefined, digest: undefined, mediaType: undefined, size: 0, status: 'failed', reason: describeReadFault(inventory.root, f) });
  }
  for (const c of denied) {
    reports.push({ source: tagRef(c.entry), destination: `${c.repository}:${c.entry.tag}`, digest: c.entry.digest, mediaType: undefined, size: c.entry.size ?? 0, status: 'failed', reason: `permission: ${refused.get(c.project)!}` });
  }
  for (const image of plan.existing) reports.push({ ...reportBase(image), status: 'skipped-existing' });
  for (const image of skipped) reports.push({ ...reportBase(image), status: 'skipped', reason: 'schema1 image (--schema1 skip)' });
  const finish = (): PushResult => {
    reports.sort((a, b) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
    return { via: options.via, inventory, plan, reports, stats, projectsCreated, harborVersion: destination.harborVersion, durationMs: Date.now() - started, interrupted: options.signal?.aborted ?? false, ...requestCounts(destination) };
  };
  if (options.dryRun) return finish();

  const verify = (outcome: ImageOutcome): Promise<ImageReport> => requests(() => verifyOutcome(destination, outcome, policies.get(outcome.image.project)));
  if (options.via === 'skopeo') {
    let outcomes: ImageOutcome[];
    const workDir = makeWorkDir(layout, options.workDir);
    assertOutsideStorage(layout, workDir, '--work-dir');
    const forget = options.keepWorkDir ? () => undefined : onCleanup(() => rmSync(workDir, { recursive: true, force: true }));
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
      forget();
    }
    reports.push(...(await Promise.all(outcomes.map(verify))));
  } else {
    // Each image is verified right after its tag lands, while other uploads go on.
    const executed = await executePlan(plan, {
      afterImage: async (outcome) => {
        reports.push(await verify(outcome));
      },
      client: destination.client,
      manifests: inventory.manifests,
      blobSource: (digest, size) => dataSource(layout, blobDataPath(layout, digest), size),
      blobConcurrency: options.concurrency,
      requestConcurrency: options.requestConcurrency,
      onEvent: emit,
      ...(options.schema1 ? { schema1: options.schema1 } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(harbor ? { tagThroughApi: (repository: string, digest: string, tag: string) => harbor.addTag(repository, digest, tag) } : {}),
    });
    Object.assign(stats, executed.stats);
  }
  return finish();
}

/**
 * Reads back what the destination holds for the tag: the digest is the identity. On Harbor through its REST API
 * (no pull recorded, no 412 from a pull policy: DESIGN.md); elsewhere the manifest GET, hashed.
 */
async function verifyOutcome(destination: Destination, outcome: ImageOutcome, policy: string | undefined): Promise<ImageReport> {
  const image = outcome.image;
  if (!outcome.ok) return { ...reportBase(image), status: 'failed', reason: outcome.reason };
  const expected = outcome.convertedTo ?? image.digest;
  const notes = [outcome.note, policy && `verified through Harbor's API: project policy "${policy}" blocks pulls until Harbor allows the image`].filter(Boolean);
  const base = { ...reportBase(image), ...(outcome.convertedTo ? { convertedTo: outcome.convertedTo } : {}), ...(notes.length ? { reason: notes.join('; ') } : {}) };
  try {
    let digest: string | undefined;
    if (destination.harbor) {
      digest = (await destination.harbor.getArtifact(image.repository, image.tag))?.digest;
    } else {
      const served = await destination.client.getManifest(image.repository, image.tag);
      // A registry serves schema1 signed with its own key: the digest is that of the payload inside.
      if (served) digest = hashBytes(expected, isSchema1(served.mediaType) ? schema1Payload(served.bytes) : served.bytes);
    }
    if (!digest) return { ...base, status: 'failed', reason: 'verification: the destination does not serve the tag after the push' };
    if (digest !== expected) return { ...base, status: 'failed', reason: `verification: the destination serves digest ${digest}` };
    return { ...base, status: 'verified' };
  } catch (err) {
    return { ...reportBase(image), status: 'failed', reason: `verification: ${errorMessage(err)}` };
  }
}

/**
 * What the destination already holds for the candidate tags, so a second run transfers nothing. Harbor: each
 * repository's artifact listing (100 a page), then one artifact read for a tag the listing does not show (it hides
 * accessories); no manifest GET, so no pull is recorded and no pull policy answers 412. A plain registry: a manifest
 * GET per tag.
 */
async function probeTags(destination: Destination, candidates: readonly Candidate[], requests: ReturnType<typeof pLimit>, known?: ReadonlySet<string>): Promise<Map<string, string>> {
  const tags = new Map<string, string>();
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
    return tags;
  }
  // A plain registry: one `tags/list` per repository, then a manifest request only for the tags it lists (a first
  // push into new repositories costs one request per repository, not one per tag).
  const gets = pLimit(16);
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
  return tags;
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

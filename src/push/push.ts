import { setMaxListeners } from 'node:events';
import type { Storage } from '../storage/storage.js';
import type { Destination } from '../destination/destination.js';
import type { ProjectSettings } from '../harbor/client.js';
import type { FaultKind, ReadFault } from '../inventory/types.js';
import { destinationRef, joinPlans, planMigration, unreadImage, type Candidate, type ImmutableImage, type Plan, type PlannedImage, type DestinationState, type RejectedImage, type Schema1Mode, type ShardedHome } from '../plan/plan.js';
import type { ImageOutcome, TransferEvent, TransferStats } from '../transfer/execute.js';
import { nameMapping, readOtherShards, readSourceBatches, type JournalView, type SourceSelection } from '../transfer/source.js';
import { ociTransport, type Transport } from '../transfer/transport.js';
import { skopeoTransport } from '../skopeo/skopeo.js';
import type { OnNotice } from '../util/notice.js';
import { DestinationError } from '../errors.js';
import { imageReport, reportOf, type ImageReport } from './image-report.js';
import { RunLedger } from './ledger.js';
import { prepareBatch, type PreparedBatch } from './prepare.js';
import { ProjectGate } from './projects.js';
import { QuotaBook } from './quota.js';
import { planNeeds, type ProjectNeeds } from '../plan/access.js';
import { readInStages } from './read-ahead.js';
import { verifyOutcome } from './verify.js';
import { BATCH_TAGS } from '../tuning.js';
import pLimit from 'p-limit';
import { BlobStore } from '../image/reader.js';
import { imageBlobDigests } from '../inventory/resolve.js';

export { imageReport, type ImageReport, type ImageStatus } from './image-report.js';

export interface PushOptions extends SourceSelection {
  readonly project: ProjectSettings;
  readonly dryRun: boolean;
  /**
   * Storage reads and Harbor project checks in flight. What goes to the registry (uploads, HEADs, mounts, manifest
   * PUTs, probes, verification) is bounded by the destination's budget (destination/budget.ts), sized at connect.
   */
  readonly requestConcurrency: number;
  /** `oci`: our own client over HTTP; `skopeo`: `dir:` layouts pushed by `skopeo copy`. */
  readonly via: 'oci' | 'skopeo';
  /** skopeo transport: where the layouts go (default beside the storage), and whether to keep them. */
  readonly workDir?: string;
  readonly keepWorkDir?: boolean;
  /**
   * The sync journal: a tag whose source link still names the digest verified at the destination is not read from
   * the storage (its report row comes from the journal); with `trust` (`--trust-state`) it is not asked about either.
   */
  readonly journal?: JournalView;
  /** Source digest → destination digest of images converted earlier (schema1), from the sync journal. */
  readonly converted?: ReadonlyMap<string, string>;
  /**
   * Destination repositories known to exist (the sync journal has tags in them): a plain registry is asked about
   * their tags directly, without a `tags/list` first, which only pays off for repositories that may be new.
   */
  readonly knownRepositories?: ReadonlySet<string>;
  /** `--schema1 keep|convert|skip` (default keep, converting when the destination refuses). */
  readonly schema1?: Schema1Mode;
  /** Tags per batch (whole repositories; BATCH_TAGS in tuning.ts). */
  readonly batchTags?: number;
  /**
   * `--shard`: how long a blob another shard uploads is waited for, counted from when this batch has nothing else
   * to send, before this run uploads it itself (SHARD_WAIT_MS).
   */
  readonly shardWaitMs?: number;
  readonly onEvent?: (event: PushEvent) => void;
  readonly onNotice?: OnNotice;
  /** `sync --delete-extra --yes`: the delete right is checked per project before any upload, and named. */
  readonly checkDelete?: boolean;
  /** SIGINT/SIGTERM: nothing new starts (an image whose blobs all landed still gets its manifests). */
  readonly signal?: AbortSignal;
  /** The grace after `signal` is over: skopeo copies under way are killed (the registry client cuts its own). */
  readonly abort?: AbortSignal;
  /**
   * Called once the source is read, with a way to read the run so far (what was not reached is unknown, as after a
   * signal): what the CLI writes to `--report` should the run stop making progress (cli/stall.ts).
   */
  readonly onUnderWay?: (sofar: () => PushResult) => void;
}

export type PushEvent =
  | { type: 'scanned'; tags: number }
  | { type: 'project'; name: string; result: 'created' | 'exists' }
  | { type: 'planned'; plan: Plan; batch: number; batches: number }
  | TransferEvent;


/** What the run learnt of the source, kept for the whole run: counts and names, never manifests. */
export interface SourceTotals {
  /** The storage's root as outputs name it (src/storage/storage.ts Storage.root). */
  readonly root: string;
  /** The storage in a sentence (Storage.describe). */
  readonly name: string;
  /** The storage itself, for a look at one link right before a deletion (src/sync/delete-extra.ts). */
  readonly storage: Storage;
  /** Directories the walk could not read: the tags below them are unknown. */
  readonly readFaults: readonly ReadFault[];
  /** Tags resolved (selected ones). */
  readonly tags: number;
  /** Tag locations in the storage before any tag selection (src/inventory/scan.ts SourceWalk.foundTags). */
  readonly foundTags: number;
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
  /** A signal stopped the run, or the destination stopped answering: what was not reached is unknown (never "gone"). */
  readonly interrupted: boolean;
  /** The destination stopped answering mid-run (destination/health.ts): the line that said so. */
  readonly destinationGone: string | undefined;
  /** Requests this run sent to the destination (registry and Harbor API), and how many were retries. */
  readonly requests: number;
  readonly retries: number;
  /** Batches of repositories the run went through. */
  readonly batches: number;
}

/**
 * `push` (and `sync`): walk the source, then a batch of whole repositories at a time: resolve → map → projects →
 * probe (push/prepare.ts) → plan → transfer, each image verified as it lands (transferBatch). The next batch is read
 * and probed while one transfers (push/read-ahead.ts); what a blob's home is carries over (a blob that landed in one
 * batch is mounted in the next), and so does which names are taken. Returns the per-image fate of every source tag;
 * throws only for problems that stop everything before work starts (exit 2/3).
 */
export async function pushStorage(destination: Destination, options: PushOptions): Promise<PushResult> {
  const started = Date.now();
  const emit = options.onEvent ?? (() => undefined);
  // A destination that stopped answering stops the run as a signal does (nothing new starts), and more: nothing at
  // all is sent to it any more (destination/health.ts).
  const gone = destination.health.signal;
  const signal = options.signal ? AbortSignal.any([options.signal, gone]) : gone;
  setMaxListeners(0, signal);
  options = { ...options, signal };
  // A Harbor in read-only mode refuses every write with 403 DENIED (src/server/middleware/readonly/readonly.go), the
  // code a quota overflow has too: said once, before the source is read, not image by image as `quota-exceeded`.
  if (destination.harborInfo?.read_only === true) {
    const what = `${destination.endpoint.host}: Harbor is in read-only mode and refuses every push`;
    const fix = "ask a Harbor administrator to turn off 'Repository Read Only' (Configuration → System Settings), then run again";
    if (!options.dryRun) throw new DestinationError('READ_ONLY', what, fix);
    options.onNotice?.({ level: 'warn', message: `warning: ${what}; ${fix}` });
  }
  const source = await readSourceBatches(options, nameMapping(options, destination), {
    concurrency: options.requestConcurrency,
    batchTags: options.batchTags ?? BATCH_TAGS,
    ...(options.journal ? { journal: options.journal } : {}),
    ...(signal ? { signal } : {}),
  });
  emit({ type: 'scanned', tags: source.walk.tagCount });
  // Harbor's garbage collection deletes artifacts no tag points at unless it runs without "delete untagged"
  // (docs/registry-behaviour.md, Harbor policies): said once, before anything is sent.
  if (destination.harbor && options.includeUntagged && !options.tagUntagged) {
    options.onNotice?.({
      level: 'warn',
      message: `warning: --include-untagged pushes manifests no tag points at by digest, and Harbor's garbage collection deletes such artifacts unless it runs without "delete untagged" (on by default): a pull by digest fails after the next collection; keep them under a tag made from the digest with --tag-untagged 'untagged-{digest12}'`,
    });
  }
  // Shards that share: which blobs the other shards upload, so each crosses the wire once (skopeo copies whole
  // images). Read when a batch first has something to upload: a sync with nothing to send never pays for it.
  const shard = options.shard;
  let others: Promise<ReadonlyMap<string, ShardedHome>> | undefined;
  const elsewhere =
    shard && shard.count > 1 && options.via === 'oci'
      ? () =>
          (others ??= readOtherShards({ ...options, shard }, nameMapping(options, destination), {
            concurrency: options.requestConcurrency,
            batchTags: options.batchTags ?? BATCH_TAGS,
            // The other shards' tags are read as they read them, except that what they read unread, this run reads:
            // which blobs they upload is in their manifests. Only what they take on trust is not read.
            ...(options.journal?.trust ? { journal: options.journal } : {}),
            ...(signal ? { signal } : {}),
          }))
      : undefined;
  const ledger = new RunLedger(source.walk);
  const projects = new ProjectGate(destination, {
    create: !options.dryRun,
    settings: options.project,
    concurrency: options.requestConcurrency,
    signal,
    onCreated: (name) => emit({ type: 'project', name, result: 'created' }),
    deleteTags: options.checkDelete ?? false,
    onNotice: options.onNotice,
  });
  // Source digest → destination digest of schema1 images converted earlier: the journal's, and those recognised.
  const converted = new Map(options.converted);
  const prepare = { destination, ledger, projects, converted, known: options.knownRepositories, signal };
  const quotas = destination.harbor
    ? new QuotaBook((project) => projects.quota(project), { everyProject: options.dryRun, onRefused: (reason) => options.onNotice?.({ level: 'error', message: `error: ${reason}; its images are skipped` }) })
    : undefined;
  const run: BatchRun = { destination, ledger, projects, quotas, converted, options, emit, storage: source.storage, batches: source.count, transport: openTransport(source.storage, destination, options, emit), planned: options.dryRun ? [] : undefined, elsewhere };

  let batches = 0;
  const result = (interrupted: boolean): PushResult => ({
    via: options.via,
    source: { root: source.storage.root, name: source.storage.describe(), storage: source.storage, readFaults: source.walk.readFaults, tags: ledger.resolvedTags, foundTags: source.walk.foundTags, faults: ledger.faults, seen: ledger.seen },
    ...(run.planned ? { plan: joinPlans(run.planned) } : {}),
    rejected: ledger.rejected,
    reports: ledger.sortedReports(),
    stats: ledger.stats,
    projectsCreated: projects.created,
    harborVersion: destination.harborVersion,
    startedAt: started,
    durationMs: Date.now() - started,
    interrupted,
    destinationGone: destination.health.gone?.message,
    batches,
    ...requestCounts(destination),
  });
  options.onUnderWay?.(() => result(true));
  try {
    // The next batch is read and probed while this one transfers; it is planned after, knowing what landed.
    const stages = readInStages(source.count, source.next, (batch) => prepareBatch(batch, prepare));
    for await (const prepared of stages.batches) {
      // Every project refused, the last batch read: nothing can move at all (exit 3), as said before any upload. A
      // dry run prints its plan all the same: it names what the account lacks.
      if (batches + 1 === source.count && !options.dryRun) projects.assertSomeAllowed();
      await transferBatch(prepared, batches, run);
      stages.used(batches++);
    }
  } finally {
    run.transport.close();
  }

  return result(signal.aborted);
}

/** What every batch of a run shares. */
interface BatchRun {
  readonly destination: Destination;
  readonly ledger: RunLedger;
  readonly projects: ProjectGate;
  /** Harbor: each batch charged to its projects' quotas before anything is sent. */
  readonly quotas: QuotaBook | undefined;
  readonly converted: ReadonlyMap<string, string>;
  readonly options: PushOptions;
  readonly emit: (event: PushEvent) => void;
  readonly storage: Storage;
  /** Batches in all. */
  readonly batches: number;
  readonly transport: Transport;
  /** `--dry-run`: every batch's plan, joined into the run's at the end; nothing is transferred. */
  readonly planned: Plan[] | undefined;
  /** `--shard`: blob digest → where another shard uploads it (readOtherShards, read once, when first needed). */
  readonly elsewhere: (() => Promise<ReadonlyMap<string, ShardedHome>>) | undefined;
}

function openTransport(storage: Storage, destination: Destination, options: PushOptions, emit: (event: PushEvent) => void): Transport {
  const { signal, abort } = options;
  if (options.via === 'oci') return ociTransport(storage, destination, { onEvent: emit, signal, ...(options.shardWaitMs !== undefined ? { shardWaitMs: options.shardWaitMs } : {}) });
  return skopeoTransport(storage, destination, { workDir: options.workDir, keepWorkDir: options.keepWorkDir ?? false, onEvent: emit, onNotice: options.onNotice ?? (() => undefined), signal, abort });
}

/** One prepared batch: reports of what cannot go, the plan, and the transfer, each image verified as it lands. */
async function transferBatch(prepared: PreparedBatch, index: number, run: BatchRun): Promise<void> {
  const { inventory, candidates, allowed, denied } = prepared;
  const { destination, ledger, projects, options } = run;
  ledger.reject(candidates.rejected);
  for (const c of denied) {
    ledger.report(imageReport({ source: c.source, destination: `${c.repository}:${c.entry.tag}`, digest: c.entry.digest, size: c.entry.size ?? 0, status: 'failed', reason: projects.refusal(c.project)! }));
  }
  // A signal before this batch started: nothing more is created, asked or sent, and its images say so.
  if (options.signal?.aborted) {
    for (const c of allowed) ledger.report(imageReport({ source: c.source, destination: `${c.repository}:${c.entry.tag}`, digest: c.entry.digest, mediaType: c.entry.mediaType, size: c.entry.size, status: 'interrupted' }));
    return;
  }
  let state: DestinationState = {
    projectExists: (project) => projects.exists(project),
    tags: prepared.tags,
    holders: ledger.holders,
    converted: run.converted,
    protectedTags: prepared.protectedTags,
    ...(options.schema1 ? { schema1: options.schema1 } : {}),
  };
  const planBatch = async (accepted: readonly Candidate[]): Promise<Plan> => {
    let planned = planMigration({ accepted, rejected: [] }, inventory.manifests, state);
    // Images the journal vouched for were not read, so which blobs they hold is unknown. A batch with blobs to send
    // that no known holder has reads their manifests (each once a run: this batch's and those held before) and plans
    // again: a blob one of them holds is mounted from it, never sent again. A sync with nothing to send reads none.
    if (!state.unreadBlobs && planned.blobs.some((b) => !b.held && !b.sharedFrom) && (ledger.holdsUnread || planned.existing.some(unreadImage))) {
      const unreadBlobs = await readImageBlobs(run.storage, [...ledger.heldUnread(), ...planned.existing.filter(unreadImage).map((image) => image.digest)]);
      ledger.readHeldBlobs(unreadBlobs);
      state = { ...state, unreadBlobs };
      planned = planMigration({ accepted, rejected: [] }, inventory.manifests, state);
    }
    // --shard: a batch with blobs to send plans again knowing which of them another shard sends.
    if (run.elsewhere && planned.blobs.some((b) => !b.held)) return planMigration({ accepted, rejected: [] }, inventory.manifests, { ...state, elsewhere: await run.elsewhere() });
    return planned;
  };
  let planned = await planBatch(allowed);
  // Harbor quotas, before the first byte: a project whose charge does not fit is planned again without its pushes.
  const quotas = run.quotas?.charge(planned, inventory.manifests) ?? [];
  const overQuota = planned.images.filter((image) => quotas.some((q) => q.refused && q.project === image.project));
  if (overQuota.length > 0) {
    const out = new Set(overQuota.map((image) => image.source));
    planned = await planBatch(allowed.filter((c) => !out.has(c.source)));
  }
  const quotaRejected = overQuota.map((image) => rejectedOf(image, run.quotas!.refusal(image.project)!));
  // Images of projects refused before planning (permission, proxy cache) show in the plan too: a dry run names them.
  const deniedRejected = denied.map((c) => ({ source: c.source, repository: c.repository, destination: `${c.repository}:${c.entry.tag}`, digest: c.entry.digest, mediaType: c.entry.mediaType, size: c.entry.size, reason: projects.refusal(c.project)!, faults: [] }));
  const access = destination.harbor ? accountNeeds(planned, prepared, run) : [];
  const plan: Plan = { ...planned, rejected: [...candidates.rejected, ...deniedRejected, ...quotaRejected], quotas, access };
  for (const image of overQuota) ledger.report(reportOf(image, 'failed', { reason: run.quotas!.refusal(image.project)! }));
  run.emit({ type: 'planned', plan, batch: index, batches: run.batches });
  for (const image of plan.existing) {
    const there = prepared.tags.get(destinationRef(image));
    const convertedTo = there !== undefined && there !== image.digest ? there : undefined;
    ledger.report(reportOf(image, 'skipped-existing', { convertedTo }));
    // A conversion leaves the schema1 `throwaway` layers unreferenced (garbage collection takes them): no holder.
    if (!convertedTo) ledger.hold(image, state.unreadBlobs);
  }
  for (const image of plan.skipped) ledger.report(reportOf(image, 'skipped', { reason: 'schema1 image (--schema1 skip)' }));
  for (const image of plan.immutable) ledger.report(reportOf(image, 'immutable', { reason: immutableReason(image) }));
  if (run.planned) {
    run.planned.push(plan);
    return;
  }
  // Each image is verified right after its tag lands, while other uploads go on; verification goes before probes.
  const afterImage = async (outcome: ImageOutcome): Promise<void> => {
    const report = await destination.budget.requests.runFirst(() => verifyOutcome(destination, outcome, projects.policy(outcome.image.project)));
    if (report.status === 'verified' && !report.convertedTo) ledger.hold(outcome.image);
    ledger.report(report);
  };
  ledger.count(await run.transport.transfer({ plan, manifests: inventory.manifests, afterImage }));
}

/**
 * The blob digests of these images, read from their manifests (as many reads at a time as the storage is worth),
 * kept for this batch only: memory stays flat.
 */
async function readImageBlobs(storage: Storage, manifests: readonly string[]): Promise<(manifest: string) => readonly string[]> {
  const store = new BlobStore(storage);
  const limit = pLimit(storage.readsInFlight);
  const read = new Map(await Promise.all([...new Set(manifests)].map((m) => limit(async () => [m, await imageBlobDigests(store, m)] as const))));
  return (manifest) => read.get(manifest) ?? [];
}

/** Why an image is not pushed: its destination tag is kept at another digest by an immutability rule. */
export function immutableReason(image: ImmutableImage): string {
  return `immutable: the destination tag holds ${image.current} and ${image.rule} keeps it there (Harbor refuses to move it); change the rule in Harbor to migrate this tag`;
}

/** Harbor: the rights this batch needs in each project beside what the account lacks (the dry run prints them). */
function accountNeeds(plan: Plan, prepared: PreparedBatch, run: BatchRun): ProjectNeeds[] {
  const { projects, options } = run;
  const deleteIn = options.checkDelete ? [...new Set(prepared.candidates.accepted.map((c) => c.project))] : [];
  const pushIn = [...new Set(prepared.denied.map((c) => c.project))];
  // A refused project that does not exist: its creation was refused.
  const createIn = pushIn.filter((project) => !projects.exists(project));
  return planNeeds(plan, { pushIn, createIn, deleteIn }, (project, right) => {
    if (right === 'create project') return createIn.includes(project);
    const rights = projects.rights(project);
    if (!rights) return false;
    return right === 'push' ? !rights.push : right === 'pull' ? !rights.pull : right === 'delete tags' ? !rights.deleteTags : false;
  });
}

function rejectedOf(image: PlannedImage, reason: string): RejectedImage {
  return { source: image.source, repository: image.repository, destination: destinationRef(image), digest: image.digest, mediaType: image.mediaType, size: image.size, reason, faults: [] };
}

function requestCounts(destination: Destination): { requests: number; retries: number } {
  return { requests: destination.client.stats.requests + (destination.harbor?.requests ?? 0), retries: destination.client.stats.retries };
}

import type { ManifestRecord } from '../image/reader.js';
import { isSchema1 } from '../image/media-types.js';
import { tagRef, type Fault, type SourceInventory, type TagEntry } from '../inventory/types.js';
import { cachedMapper, untaggedTagName, type NameMapping } from './map-names.js';
import { flattenString } from '../util/strings.js';
import type { ProjectQuota } from './quota.js';
import type { ProjectNeeds } from './access.js';

/** Version of the plan value (printed by --dry-run --output json and kept by later runs). */
export const PLAN_VERSION = 1;

export interface PlannedManifest {
  readonly digest: string;
  readonly mediaType: string;
}

export interface PlannedImage {
  /** `repo:tag` in the source storage. */
  readonly source: string;
  readonly sourceRepository: string;
  readonly tag: string;
  readonly repository: string;
  readonly project: string;
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  /** Children first; the last one is the tag's own manifest. */
  readonly manifests: readonly PlannedManifest[];
  /** When the source tag was last pushed (ISO 8601): the destination gets tags in this order (transfer/push-order.ts). */
  readonly pushedAt?: string;
  /** Digests of the blobs the destination repository needs (config and layers, all platforms). */
  readonly blobs: readonly string[];
  /** The image this one refers to (an OCI `subject`, or the digest in a cosign `sha256-<hex>.sig` tag): pushed first. */
  readonly subject?: string;
  /** Digests of layers fetched from their `urls` that the storage does not hold (Windows base layers). */
  readonly foreignLayers?: readonly string[];
  /**
   * A schema1 image: `keep` is signed and pushed as is, converted to schema2 only when the destination refuses it;
   * `convert` is always converted (`--schema1`).
   */
  readonly schema1?: 'keep' | 'convert';
}

/** An image whose destination tag an immutability rule keeps at another digest. */
export interface ImmutableImage extends PlannedImage {
  /** The digest the destination tag holds. */
  readonly current: string;
  /** The rule that protects it, described. */
  readonly rule: string;
}

export interface PlannedBlob {
  readonly digest: string;
  readonly size: number;
  /** The repository that receives the one upload of this run. */
  readonly home: string;
  /** Every other repository that needs it: a cross-repository mount from `home`. */
  readonly mounts: readonly string[];
  /**
   * `home` is a destination repository that already holds the blob (an image there at the same digest uses it):
   * nothing is uploaded, every repository that needs it mounts it from there.
   */
  readonly held?: true;
  /**
   * `--shard`: a repository of another shard that receives this blob's one upload (it comes first, in source name
   * order, among every repository of every shard that needs the blob). This run mounts it into `home` from there
   * once it has landed, and uploads it itself only when waiting would stall it (transfer/execute.ts).
   */
  readonly sharedFrom?: string;
}

export interface RejectedImage {
  readonly source: string;
  readonly repository: string | undefined;
  /** The `repo:tag` the image would have had (undefined when its name cannot be mapped). */
  readonly destination: string | undefined;
  readonly digest: string | undefined;
  /** What the source says of the image, where it could be read. */
  readonly mediaType: string | undefined;
  readonly size: number;
  readonly reason: string;
  readonly faults: readonly Fault[];
}

export interface Plan {
  readonly schemaVersion: typeof PLAN_VERSION;
  readonly kind: 'regmigrate.plan';
  /** Harbor projects the images need that do not exist yet. */
  readonly projectsToCreate: readonly string[];
  /** Images to push, in push order. */
  readonly images: readonly PlannedImage[];
  /** Images the destination already holds at the same digest. */
  readonly existing: readonly PlannedImage[];
  /** Images a rule leaves out (`--schema1 skip`). */
  readonly skipped: readonly PlannedImage[];
  /**
   * Harbor: images whose destination tag holds another digest and is protected by an immutability rule. Harbor
   * refuses to move the tag: nothing is pushed for them.
   */
  readonly immutable: readonly ImmutableImage[];
  readonly blobs: readonly PlannedBlob[];
  readonly rejected: readonly RejectedImage[];
  /** Harbor: each project's storage charge beside its quota (plan/quota.ts); a refused project's images are in `rejected`. */
  readonly quotas: readonly ProjectQuota[];
  /** Harbor: what the account must be allowed in each project, and what it lacks (plan/access.ts). */
  readonly access: readonly ProjectNeeds[];
}

export interface DestinationState {
  /** Projects known to exist (Harbor); for a plain registry, every project counts as existing. */
  readonly projectExists: (project: string) => boolean;
  /** `repo:tag` → digest the destination serves now. */
  readonly tags: ReadonlyMap<string, string>;
  /** Source digest → the digest its conversion has (schema1 → schema2), which counts as the same image. */
  readonly converted?: ReadonlyMap<string, string>;
  /** Blob digest → a destination repository known to hold it (earlier batches, images already there). */
  readonly holders?: Pick<ReadonlyMap<string, string>, 'get'>;
  /** What to do with schema1 images (`--schema1`, default keep). */
  readonly schema1?: Schema1Mode;
  /** `repo:tag` held at another digest that an immutability rule protects → the rule (Harbor). */
  readonly protectedTags?: Pick<ReadonlyMap<string, string>, 'get'>;
  /** `--shard`: blob digest → the first repository of another shard that needs it (transfer/source.ts readOtherShards). */
  readonly elsewhere?: Pick<ReadonlyMap<string, ShardedHome>, 'get'>;
  /**
   * The blob digests of an image taken from the sync journal unread (unreadImage), by its manifest digest: read
   * from its manifests when a batch has blobs to send, so that those it holds are mounted from it.
   */
  readonly unreadBlobs?: (manifest: string) => readonly string[];
}

/** An image taken from the sync journal unread (TagEntry.unread or .trusted): its plan has no manifest or blob. */
export function unreadImage(image: PlannedImage): boolean {
  return image.manifests.length === 0;
}

/** Where another shard puts a blob: its destination repository, and the source repository that orders it. */
export interface ShardedHome {
  readonly repository: string;
  readonly sourceRepository: string;
}

/** What to do with schema1 images (`--schema1`): sign and push, converting on refusal; always convert; leave out. */
export type Schema1Mode = 'keep' | 'convert' | 'skip';

export interface Candidate {
  readonly entry: TagEntry;
  /** `repo:tag` in the source: one flat string, kept by the run (taken names, tags seen, reports). */
  readonly source: string;
  readonly repository: string;
  readonly project: string;
}

export interface Candidates {
  readonly accepted: readonly Candidate[];
  readonly rejected: readonly RejectedImage[];
}

/**
 * Maps names and sets aside faulty images: what can be migrated at all. `claimed` (destination tag → source) is
 * carried from batch to batch, so two sources meeting at one name collide wherever they are.
 */
export function selectCandidates(inventory: SourceInventory, mapping: NameMapping, claimed = new Map<string, string>()): Candidates {
  const accepted: Candidate[] = [];
  const rejected: RejectedImage[] = [];
  const map = cachedMapper(mapping);
  for (const found of inventory.tags) {
    // Kept for the whole run: a flat string (util/strings.ts), shared by everything that keeps the name.
    const source = flattenString(tagRef(found));
    // --tag-untagged: from here on the entry's tag is its destination tag; `source` keeps `repo@sha256:…`.
    const entry = found.untagged && found.digest && mapping.untaggedTag ? { ...found, tag: untaggedTagName(mapping.untaggedTag, found.digest) } : found;
    const mapped = map(entry.repository);
    if (entry.faults.length > 0 || !entry.digest) {
      const first = entry.faults[0];
      rejected.push({
        source,
        repository: mapped.ok ? mapped.repository : undefined,
        destination: mapped.ok ? tagRef({ repository: mapped.repository, tag: entry.tag }) : undefined,
        digest: entry.digest,
        mediaType: entry.mediaType,
        size: entry.size,
        reason: first ? `${first.kind}: ${first.message}` : 'no manifest',
        faults: entry.faults,
      });
      continue;
    }
    if (!mapped.ok) {
      rejected.push({ source, repository: undefined, destination: undefined, digest: entry.digest, mediaType: entry.mediaType, size: entry.size, reason: `invalid-name: ${mapped.reason}`, faults: [] });
      continue;
    }
    // Two sources, one destination (`busybox` and `library/busybox`, or two --map rules meeting): both pushed to
    // the same tag would race, and flip under every sync. The first in name order keeps it; the others are faults.
    const destination = tagRef({ repository: mapped.repository, tag: entry.tag });
    const claimedBy = claimed.get(destination);
    if (claimedBy !== undefined) {
      const fault = nameCollision(source, claimedBy, destination);
      rejected.push({ source, repository: mapped.repository, destination, digest: entry.digest, mediaType: entry.mediaType, size: entry.size, reason: `${fault.kind}: ${fault.message}`, faults: [fault] });
      continue;
    }
    claimed.set(destination === source ? source : flattenString(destination), source);
    accepted.push({ entry, source, repository: mapped.repository, project: mapped.project });
  }
  return { accepted, rejected };
}

function nameCollision(source: string, claimedBy: string, destination: string): Fault & { kind: 'name-collision' } {
  return { kind: 'name-collision', message: `${source} and ${claimedBy} both map to ${destination}; ${claimedBy} is migrated, ${source} is not (use --map to give one another name)` };
}

/**
 * The name collisions selectCandidates finds, marked as faults on the tags themselves, so `scan` counts the ones a
 * push would refuse: the same order, the same rule (a faulty tag claims no name), the same message. `claimed` is
 * carried from batch to batch.
 */
export function markNameCollisions(tags: readonly TagEntry[], mapping: NameMapping, claimed = new Map<string, string>()): void {
  const map = cachedMapper(mapping);
  for (const entry of tags) {
    const mapped = map(entry.repository);
    if (entry.faults.length > 0 || !entry.digest || !mapped.ok) continue;
    const source = tagRef(entry);
    const destination = tagRef({ repository: mapped.repository, tag: entry.tag });
    const claimedBy = claimed.get(destination);
    if (claimedBy !== undefined) entry.faults.push(nameCollision(source, claimedBy, destination));
    else claimed.set(destination, source);
  }
}

/** cosign names signatures, attestations and SBOMs after the digest they belong to: `sha256-<hex>.sig`. */
const COSIGN_TAG = /^sha256-([a-f0-9]{64})\.(sig|att|sbom)$/;

function subjectOf(entry: TagEntry, manifests: ReadonlyMap<string, ManifestRecord>): { subject?: string } {
  const fromManifest = (entry.digest ? manifests.get(entry.digest)?.parsed.subject : undefined) ?? entry.subject;
  if (fromManifest) return { subject: fromManifest };
  const cosign = COSIGN_TAG.exec(entry.tag);
  return cosign ? { subject: `sha256:${cosign[1]}` } : {};
}

export function destinationRef(image: { repository: string; tag: string }): string {
  return tagRef({ repository: image.repository, tag: image.tag });
}

/**
 * The migration plan: which images to push, which are there already, and for every unique blob the one
 * repository that uploads it and the repositories that mount it. Pure: the destination's state comes in as data.
 */
export function planMigration(candidates: Candidates, manifests: ReadonlyMap<string, ManifestRecord>, state: DestinationState): Plan {
  const images: PlannedImage[] = [];
  const existing: PlannedImage[] = [];
  const skipped: PlannedImage[] = [];
  const immutable: ImmutableImage[] = [];
  const projects = new Set<string>();
  const blobRepos = new Map<string, { size: number; repos: string[]; firstSource: string }>();

  const schema1 = state.schema1 ?? 'keep';
  for (const { entry, source, repository, project } of candidates.accepted) {
    const image: PlannedImage = {
      source,
      sourceRepository: entry.repository,
      tag: entry.tag,
      repository,
      project,
      digest: entry.digest!,
      mediaType: entry.mediaType!,
      size: entry.size,
      manifests: entry.manifests.map((digest) => ({ digest, mediaType: manifests.get(digest)?.mediaType ?? '' })),
      ...(entry.pushedAt ? { pushedAt: entry.pushedAt } : {}),
      // Foreign layers the storage does not hold stay out: the manifest goes as is, clients fetch them by URL.
      blobs: entry.blobs.filter((b) => b.present).map((b) => b.digest),
      ...subjectOf(entry, manifests),
      ...(entry.blobs.some((b) => !b.present) ? { foreignLayers: entry.blobs.filter((b) => !b.present).map((b) => b.digest) } : {}),
      ...(isSchema1(entry.mediaType) && schema1 !== 'skip' ? { schema1 } : {}),
    };
    const there = state.tags.get(destinationRef(image));
    if (there !== undefined && (there === image.digest || there === state.converted?.get(image.digest))) {
      existing.push(image);
      continue;
    }
    const rule = there !== undefined ? state.protectedTags?.get(destinationRef(image)) : undefined;
    if (rule !== undefined) {
      immutable.push({ ...image, current: there!, rule });
      continue;
    }
    if (isSchema1(image.mediaType) && schema1 === 'skip') {
      skipped.push(image);
      continue;
    }
    images.push(image);
    if (!state.projectExists(project)) projects.add(project);
    for (const blob of entry.blobs) {
      if (!blob.present) continue;
      let users = blobRepos.get(blob.digest);
      if (!users) {
        users = { size: blob.size, repos: [], firstSource: entry.repository };
        blobRepos.set(blob.digest, users);
      } else if (entry.repository < users.firstSource) users.firstSource = entry.repository;
      if (!users.repos.includes(repository)) users.repos.push(repository);
    }
  }

  // Blobs the destination already holds in some repository (an image there at the same digest uses them): a new
  // repository on a base 300 others hold mounts the base from one of them instead of receiving it again.
  const holders = new Map<string, string>();
  const heldIn = new Set<string>();
  for (const image of existing) {
    for (const digest of unreadImage(image) && state.unreadBlobs ? state.unreadBlobs(image.digest) : image.blobs) {
      if (!holders.has(digest)) holders.set(digest, image.repository);
      heldIn.add(`${image.repository}@${digest}`);
    }
  }
  const blobs: PlannedBlob[] = [...blobRepos].map(([digest, { size, repos, firstSource }]) => {
    // A repository that needs the blob and holds it already (another tag of the same image) is the best home.
    const holder = repos.find((r) => heldIn.has(`${r}@${digest}`)) ?? holders.get(digest) ?? state.holders?.get(digest);
    // The holder is the home: a repository that needs it and holds it already has nothing to receive.
    if (holder) return { digest, size, home: holder, mounts: repos.filter((r) => r !== holder), held: true };
    // Another shard's repository comes first among all that need it: that shard uploads it, this one mounts it.
    // Every shard walks the same storage in source name order, so all of them agree on where it lands.
    const other = state.elsewhere?.get(digest);
    if (other && other.sourceRepository < firstSource) return { digest, size, home: repos[0]!, mounts: repos.slice(1), sharedFrom: other.repository };
    return { digest, size, home: repos[0]!, mounts: repos.slice(1) };
  });
  // Largest first: long uploads start early, so the pool does not end waiting on one big layer.
  blobs.sort((a, b) => b.size - a.size || (a.digest < b.digest ? -1 : 1));
  return {
    schemaVersion: PLAN_VERSION,
    kind: 'regmigrate.plan',
    projectsToCreate: [...projects].sort(),
    images,
    existing,
    skipped,
    immutable,
    blobs,
    rejected: candidates.rejected,
    quotas: [],
    access: [],
  };
}

/** The fields of a Plan that are lists, each with how the batches' lists join: a field added to Plan and not here fails to compile. */
type PlanLists = { readonly [K in keyof Plan as Plan[K] extends readonly unknown[] ? K : never]: (parts: readonly Plan[]) => Plan[K] };

const JOIN_LISTS: PlanLists = {
  projectsToCreate: (parts) => [...new Set(parts.flatMap((p) => p.projectsToCreate))].sort(),
  images: (parts) => parts.flatMap((p) => p.images),
  existing: (parts) => parts.flatMap((p) => p.existing),
  skipped: (parts) => parts.flatMap((p) => p.skipped),
  immutable: (parts) => parts.flatMap((p) => p.immutable),
  blobs: (parts) => parts.flatMap((p) => p.blobs),
  rejected: (parts) => parts.flatMap((p) => p.rejected),
  // A project's charges add up over the batches; its quota is the one read first.
  quotas: (parts) => {
    const byProject = new Map<string, ProjectQuota>();
    for (const q of parts.flatMap((p) => p.quotas)) {
      const seen = byProject.get(q.project);
      byProject.set(q.project, seen ? { ...seen, charge: seen.charge + q.charge, refused: seen.refused || q.refused } : q);
    }
    return [...byProject.values()].sort((a, b) => (a.project < b.project ? -1 : 1));
  },
  access: (parts) => {
    const byProject = new Map<string, { needs: Set<string>; missing: Set<string> }>();
    for (const a of parts.flatMap((p) => p.access)) {
      const seen = byProject.get(a.project) ?? { needs: new Set<string>(), missing: new Set<string>() };
      for (const n of a.needs) seen.needs.add(n);
      for (const m of a.missing) seen.missing.add(m);
      byProject.set(a.project, seen);
    }
    const order = ['create project', 'push', 'pull', 'delete tags'];
    const sorted = (set: Set<string>) => order.filter((r) => set.has(r));
    return [...byProject].sort(([a], [b]) => (a < b ? -1 : 1)).map(([project, { needs, missing }]) => ({ project, needs: sorted(needs), missing: sorted(missing) }));
  },
};

/** One plan of the batches a run was planned in (a dry run prints the whole run's): every list of every batch. */
export function joinPlans(parts: readonly Plan[]): Plan {
  return {
    schemaVersion: PLAN_VERSION,
    kind: 'regmigrate.plan',
    projectsToCreate: JOIN_LISTS.projectsToCreate(parts),
    images: JOIN_LISTS.images(parts),
    existing: JOIN_LISTS.existing(parts),
    skipped: JOIN_LISTS.skipped(parts),
    immutable: JOIN_LISTS.immutable(parts),
    blobs: JOIN_LISTS.blobs(parts),
    rejected: JOIN_LISTS.rejected(parts),
    quotas: JOIN_LISTS.quotas(parts),
    access: JOIN_LISTS.access(parts),
  };
}

export interface PlanTotals {
  readonly images: number;
  readonly existing: number;
  readonly rejected: number;
  readonly blobsToUpload: number;
  readonly bytesToUpload: number;
  readonly mounts: number;
}

export function planTotals(plan: Plan): PlanTotals {
  return {
    images: plan.images.length,
    existing: plan.existing.length,
    rejected: plan.rejected.length,
    // A held blob is mounted from the repository that holds it, a shared one from where another shard sends it:
    // nothing of either is uploaded by this run (unless the wait for the other shard runs out).
    blobsToUpload: plan.blobs.filter((b) => !b.held && !b.sharedFrom).length,
    bytesToUpload: plan.blobs.reduce((sum, b) => sum + (b.held || b.sharedFrom ? 0 : b.size), 0),
    mounts: plan.blobs.reduce((sum, b) => sum + b.mounts.length + (b.sharedFrom ? 1 : 0), 0),
  };
}

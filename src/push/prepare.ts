import type { Destination } from '../destination/destination.js';
import { tagRef, type SourceInventory } from '../inventory/types.js';
import type { Candidate, Candidates } from '../plan/plan.js';
import type { SourceBatch } from '../transfer/source.js';
import { recogniseConversions } from './converted.js';
import type { RunLedger } from './ledger.js';
import { findProtectedTags } from './immutable.js';
import { probeTags } from './probe.js';
import type { ProjectGate } from './projects.js';
import { Interrupted } from '../util/stop.js';

/** One batch, read and asked about: ready to plan once the batch before it has landed. */
export interface PreparedBatch {
  readonly inventory: SourceInventory;
  readonly candidates: Candidates;
  /** Candidates whose project takes them (or trusted from the journal). */
  readonly allowed: readonly Candidate[];
  /** Candidates in a project the account may not push to. */
  readonly denied: readonly Candidate[];
  /** `repo:tag` → digest the destination holds (probed, or trusted from the journal). */
  readonly tags: ReadonlyMap<string, string>;
  /** Harbor: `repo:tag` held at another digest and protected by an immutability rule → the rule (push/immutable.ts). */
  readonly protectedTags: ReadonlyMap<string, string>;
}

export interface PrepareContext {
  readonly destination: Destination;
  readonly ledger: RunLedger;
  readonly projects: ProjectGate;
  /** Source digest → destination digest of schema1 images converted earlier: those recognised here are added. */
  readonly converted: Map<string, string>;
  /** Destination repositories known to exist (PushOptions.knownRepositories). */
  readonly known?: ReadonlySet<string> | undefined;
  readonly signal?: AbortSignal | undefined;
}

/**
 * A batch read from the source → its projects checked, and what the destination holds of it asked. A tag taken from
 * the journal unread whose digest the destination does not hold (deleted or re-pointed there since) is read from
 * the storage in full after all, to be pushed as any other.
 */
export async function prepareBatch(batch: SourceBatch, ctx: PrepareContext): Promise<PreparedBatch> {
  const { destination, projects, signal } = ctx;
  try {
    await projects.ensure(batch.candidates.accepted);
  } catch (err) {
    // The run is stopping (the destination stopped answering while projects were looked up): the batch's images
    // are reported interrupted when it comes to be transferred (push.ts transferBatch), not thrown.
    if (!(err instanceof Interrupted)) throw err;
  }
  const tags = new Map<string, string>();
  let probed = split(batch.candidates, projects);
  for (const c of probed.allowed) if (c.entry.trusted) tags.set(tagRef({ repository: c.repository, tag: c.entry.tag }), c.entry.digest!);
  if (!signal?.aborted) for (const [ref, digest] of await probeTags(destination, probed.toProbe, ctx.known)) tags.set(ref, digest);
  const held = (c: Candidate): boolean => {
    const there = tags.get(tagRef({ repository: c.repository, tag: c.entry.tag }));
    return there !== undefined && (there === c.entry.digest || there === ctx.converted.get(c.entry.digest!));
  };
  const stale = signal?.aborted ? [] : probed.allowed.filter((c) => c.entry.unread && !held(c));
  const { inventory, candidates } = stale.length > 0 ? await batch.readInFull(stale) : batch;
  if (stale.length > 0) probed = split(candidates, projects);
  ctx.ledger.read(inventory, candidates);
  // A tag that holds our conversion of a schema1 image counts as there (without a journal to say so).
  if (!signal?.aborted && !destination.harbor) await recogniseConversions(destination.client, probed.toProbe, inventory.manifests, tags, ctx.converted, destination.budget.requests);
  const protectedTags = signal?.aborted ? new Map<string, string>() : await findProtectedTags(destination, projects, probed.toProbe, tags, ctx.converted);
  return { inventory, candidates, allowed: probed.allowed, denied: probed.denied, tags, protectedTags };
}

/** Candidates a project refuses, those it takes, and of these the ones to ask the destination about. */
function split(candidates: Candidates, projects: ProjectGate): { allowed: Candidate[]; denied: Candidate[]; toProbe: Candidate[] } {
  const allowed: Candidate[] = [];
  const denied: Candidate[] = [];
  for (const c of candidates.accepted) (projects.refusal(c.project) !== undefined && !c.entry.trusted ? denied : allowed).push(c);
  return { allowed, denied, toProbe: allowed.filter((c) => !c.entry.trusted && projects.exists(c.project)) };
}

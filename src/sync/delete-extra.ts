import pLimit from 'p-limit';
import { errorMessage } from '../errors.js';
import { canDelete } from '../harbor/access.js';
import { splitRef } from '../inventory/types.js';
import type { Destination } from '../destination/destination.js';
import type { Storage } from '../storage/storage.js';
import { DELETE_EXTRA_TAG_READS } from '../tuning.js';

/** What the source says of a tag's link right before a deletion: gone, there, or nothing certain (and why). */
export type SourceLinkState = { readonly state: 'absent' } | { readonly state: 'present' } | { readonly state: 'unknown'; readonly reason: string };

/**
 * The source link of `repo:tag` (or `repo@digest`, untagged), asked of the storage itself whatever its kind:
 * `absent` only when the storage answers that it does not exist (src/storage/storage.ts ReadProblem); a link that
 * cannot be read (EACCES, EIO, ESTALE, a tar cut short, a 403 or 5xx) or is not what a link should be is not proof
 * that the tag is gone.
 */
export async function sourceLinkState(storage: Storage, source: string): Promise<SourceLinkState> {
  const { repository, tag } = splitRef(source);
  const fresh = { fresh: true };
  const link = tag.startsWith('sha256:') ? await storage.readRevisionLink(repository, tag, fresh) : await storage.readTagLink(repository, tag, fresh);
  if (link.ok) return { state: 'present' };
  if (link.reason === 'absent') return { state: 'absent' };
  return { state: 'unknown', reason: `${link.location} ${link.detail}` };
}

export interface Deletion {
  readonly destination: string;
  readonly digest: string;
  readonly source: string;
  readonly status: 'would-delete' | 'deleted' | 'failed' | 'kept';
  readonly reason?: string;
  /**
   * Destination tags that stay and point at the same manifest: a plain registry could delete this tag only by
   * deleting that manifest, which takes them too. The tag is kept (a warning, not a failure) and stays in the
   * journal, so it goes with them once their source tags are gone as well.
   */
  readonly sharedWith?: readonly string[];
  /**
   * The limit this run's deletions exceed (`--max-delete 100`, or half of the tags the journal holds for this
   * selection when no --max-delete was given): `--yes` deletes none of them (status `failed`), a dry run's
   * `would-delete` says that `--yes` would refuse.
   */
  readonly overLimit?: string;
}

/** A destination tag the journal says came from a source tag that this run found gone. */
export interface GoneTag {
  readonly ref: string;
  /** What the destination holds: the source digest, or its conversion. */
  readonly digest: string;
  readonly source: string;
}

/**
 * Decides, before anything is deleted, what `--delete-extra` will do with each gone tag: `would-delete` only when
 * `--yes` can really delete it alone, else `kept` with the reason. On Harbor a tag is deleted by itself through
 * the API (src/server/v2.0/handler/artifact.go DeleteTag removes the tag, the artifact stays). A plain registry has
 * no tag deletion: DELETE /v2/<name>/manifests/<digest> deletes the manifest and untags every tag pointing at it
 * (distribution registry/handlers/manifests.go DeleteManifest: manifests.Delete, then tagService.Lookup and Untag),
 * so a tag whose manifest is shared by a tag that stays cannot be deleted; the ones that are all gone go together.
 */
export async function planDeletions(destination: Destination, gone: readonly GoneTag[], storage: Storage): Promise<Deletion[]> {
  const harbor = destination.harbor;
  const repositoryTags = new Map<string, Promise<Map<string, string | undefined>>>();
  // A plain registry: every tag of the repository and its digest, read once for all its gone tags.
  const tagsOf = (repository: string): Promise<Map<string, string | undefined>> => {
    let tags = repositoryTags.get(repository);
    if (!tags) repositoryTags.set(repository, (tags = readRepositoryTags(destination, repository)));
    return tags;
  };
  const checked: Array<{ tag: GoneTag; deletion?: Deletion }> = [];
  for (const tag of gone) {
    const { repository, tag: name } = splitRef(tag.ref);
    const base = { destination: tag.ref, digest: tag.digest, source: tag.source };
    // Right before deleting, look once more at the source link itself: absent, not merely unreadable or back.
    const link = await sourceLinkState(storage, tag.source);
    if (link.state !== 'absent') {
      checked.push({ tag, deletion: { ...base, status: 'kept', reason: link.state === 'present' ? 'the source tag is back' : `the source link is not known to be gone: ${link.reason}` } });
      continue;
    }
    try {
      // On Harbor through the API: no pull recorded, no 412 from a pull policy.
      const current = harbor ? (await harbor.getArtifact(repository, name))?.digest : (await tagsOf(repository)).get(name);
      // Gone already, or re-pointed by someone else since: not ours to delete any more.
      if (current !== tag.digest) checked.push({ tag, deletion: { ...base, status: 'kept', reason: current ? `now points at ${current}` : 'already absent' } });
      else checked.push({ tag });
    } catch (err) {
      checked.push({ tag, deletion: { ...base, status: 'failed', reason: errorMessage(err) } });
    }
  }
  const doomed = new Set(checked.filter((c) => !c.deletion).map((c) => c.tag.ref));
  const deletions: Deletion[] = [];
  for (const { tag, deletion } of checked) {
    if (deletion) {
      deletions.push(deletion);
      continue;
    }
    const base = { destination: tag.ref, digest: tag.digest, source: tag.source };
    if (harbor) {
      deletions.push({ ...base, status: 'would-delete' });
      continue;
    }
    const { repository, tag: name } = splitRef(tag.ref);
    const sharing = [...(await tagsOf(repository))].filter(([other, digest]) => other !== name && digest === tag.digest).map(([other]) => other);
    const staying = sharing.filter((other) => !doomed.has(`${repository}:${other}`));
    if (staying.length > 0) {
      const one = staying.length === 1;
      const reason = `${one ? 'tag' : 'tags'} ${staying.join(', ')} of the destination ${one ? 'shares its manifest and stays' : 'share its manifest and stay'}; a plain registry deletes a tag only by deleting its manifest, which would delete ${one ? 'it' : 'them'} too`;
      deletions.push({ ...base, status: 'kept', reason, sharedWith: staying });
    } else {
      deletions.push({ ...base, status: 'would-delete', ...(sharing.length ? { reason: `its manifest goes, with ${sharing.join(', ')} (also gone from the source)` } : {}) });
    }
  }
  return deletions;
}

/**
 * Deletes what `planDeletions` said would be deleted, after checking the delete right (maintainer and up on
 * Harbor) once per repository. On a plain registry the manifest of tags that go together is deleted once.
 */
export async function applyDeletions(destination: Destination, planned: readonly Deletion[]): Promise<Deletion[]> {
  const rights = new Map<string, Promise<boolean | undefined>>();
  const manifests = new Map<string, Promise<void>>();
  const out: Deletion[] = [];
  for (const deletion of planned) {
    if (deletion.status !== 'would-delete') {
      out.push(deletion);
      continue;
    }
    const { repository, tag } = splitRef(deletion.destination);
    try {
      // The delete right first: a refusal says so before anything is touched.
      let right = rights.get(repository);
      if (!right) rights.set(repository, (right = canDelete(destination.client.auth, repository).catch(() => undefined)));
      if ((await right) === false) {
        const project = repository.split('/')[0]!;
        const user = destination.credentials?.username ?? 'anonymous';
        out.push({ ...deletion, status: 'failed', reason: `${user} may not delete tags in project "${project}": deleting needs the maintainer role or higher` });
        continue;
      }
      if (destination.harbor) {
        await destination.harbor.deleteTag(repository, deletion.digest, tag);
      } else {
        const key = `${repository}@${deletion.digest}`;
        let done = manifests.get(key);
        if (!done) manifests.set(key, (done = destination.client.deleteManifest(repository, deletion.digest)));
        await done;
      }
      out.push({ ...deletion, status: 'deleted' });
    } catch (err) {
      out.push({ ...deletion, status: 'failed', reason: errorMessage(err) });
    }
  }
  return out;
}

async function readRepositoryTags(destination: Destination, repository: string): Promise<Map<string, string | undefined>> {
  const client = destination.client;
  const limit = pLimit(DELETE_EXTRA_TAG_READS);
  const names = await client.listTags(repository);
  const digests = await Promise.all(names.map((name) => limit(async () => (await client.probeManifest(repository, name))?.digest)));
  return new Map(names.map((name, i) => [name, digests[i]]));
}

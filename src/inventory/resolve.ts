import { checkTag } from '../storage/digest.js';
import type { LinkRead } from '../storage/storage.js';
import type { TagLocation } from '../storage/walk.js';
import type { BlobEntry, Fault, TagEntry } from './types.js';
import type { BlobStore, ManifestRecord } from '../image/reader.js';

/** Indexes may nest (index → index → manifest); deeper than this is a loop or garbage. */
const MAX_DEPTH = 4;

interface Walk {
  readonly manifests: string[];
  readonly seen: Set<string>;
  readonly blobs: Map<string, BlobEntry>;
  readonly faults: Fault[];
  readonly platforms: string[];
}

/** Says whether a tag whose link names `digest` may be taken on trust (not resolved). */
export type TrustHook = (repository: string, tag: string, digest: string) => boolean;

/**
 * Resolves one tag: link → manifest → (children →) blobs, recording every fault instead of throwing, so one bad
 * tag never stops a scan. Blob existence is checked against `data` blobs, never `_layers` links (GC leaves those).
 * Undefined when it is not a tag at all (a tag directory without `current/link`, docs/registry-behaviour.md,
 * Storage layout).
 */
export async function resolveTag(store: BlobStore, location: TagLocation, trust?: TrustHook): Promise<TagEntry | undefined> {
  const { repository, tag } = location;
  const faults: Fault[] = [];
  const nameProblem = store.checkName(repository) ?? (location.untagged ? undefined : checkTag(tag));
  if (nameProblem) faults.push({ kind: 'invalid-name', message: nameProblem });

  const link = location.untagged ? await store.storage.readRevisionLink(repository, tag) : await store.storage.readTagLink(repository, tag);
  if (!link.ok && link.reason === 'absent') return undefined;
  const entry = await resolveLinked(store, location, link, faults, trust);
  // When the tag was last pushed: distribution rewrites `current/link` on every push, so its time says (no registry
  // API does). Unknown when the storage cannot tell (a tar entry without a time).
  return link.pushedAt ? { ...entry, pushedAt: link.pushedAt.toISOString() } : entry;
}

async function resolveLinked(store: BlobStore, location: TagLocation, link: LinkRead, faults: Fault[], trust: TrustHook | undefined): Promise<TagEntry> {
  const { repository, tag } = location;
  if (!link.ok) {
    const kind = link.reason === 'unreadable' ? 'unreadable' : 'invalid-link';
    faults.push({ kind, message: `tag link ${link.location} ${link.detail}` });
    return emptyEntry(repository, tag, undefined, faults);
  }

  if (faults.length === 0 && trust?.(repository, tag, link.digest)) {
    return { ...emptyEntry(repository, tag, link.digest, faults), trusted: true, ...(location.untagged ? { untagged: true } : {}) };
  }

  const root = await store.manifest(link.digest);
  if (!root.ok) {
    faults.push(manifestFault(link.digest, root.reason, root.detail, false));
    return emptyEntry(repository, tag, link.digest, faults);
  }

  const walk: Walk = { manifests: [], seen: new Set(), blobs: new Map(), faults, platforms: [] };
  await walkManifest(store, root.record, walk, 0);
  const blobs = [...walk.blobs.values()];
  return {
    ...(location.untagged ? { untagged: true } : {}),
    repository,
    tag,
    digest: link.digest,
    mediaType: root.record.mediaType,
    platforms: walk.platforms,
    manifests: walk.manifests,
    blobs,
    size: blobs.reduce((sum, blob) => sum + blob.size, 0),
    faults,
  };
}

function emptyEntry(repository: string, tag: string, digest: string | undefined, faults: Fault[]): TagEntry {
  return { repository, tag, digest, mediaType: undefined, platforms: [], manifests: [], blobs: [], size: 0, faults };
}

function manifestFault(digest: string, reason: string, detail: string, child: boolean): Fault {
  const what = child ? 'child manifest' : 'manifest';
  switch (reason) {
    case 'absent':
      return { kind: child ? 'missing-child' : 'missing-manifest', digest, message: `${what} ${digest} is missing (${detail})` };
    case 'corrupt':
      return { kind: 'corrupt-blob', digest, message: `${what} ${digest} is corrupt: ${detail}` };
    case 'unreadable':
      return { kind: 'unreadable', digest, message: `${what} ${digest}: ${detail}` };
    default:
      return { kind: 'invalid-manifest', digest, message: `${what} ${digest} is invalid: ${detail}` };
  }
}

/** Post-order walk: children are recorded before their parent, the order they must be pushed in. */
async function walkManifest(store: BlobStore, record: ManifestRecord, walk: Walk, depth: number): Promise<void> {
  if (walk.seen.has(record.digest)) return;
  walk.seen.add(record.digest);
  const { parsed } = record;

  if (parsed.kind === 'index') {
    if (depth >= MAX_DEPTH) {
      walk.faults.push({ kind: 'invalid-manifest', digest: record.digest, message: `index ${record.digest} nests deeper than ${MAX_DEPTH} levels` });
      return;
    }
    for (const child of parsed.children) {
      const load = await store.manifest(child.digest);
      if (!load.ok) {
        walk.faults.push(manifestFault(child.digest, load.reason, load.detail, true));
        continue;
      }
      if (depth === 0 && child.platform) walk.platforms.push(child.platform);
      await walkManifest(store, load.record, walk, depth + 1);
    }
  } else {
    for (const ref of parsed.blobs) {
      if (walk.blobs.has(ref.digest)) continue;
      const st = await store.blob(ref.digest);
      if (st.ok) {
        if (ref.size !== undefined && ref.size !== st.size) {
          walk.faults.push({
            kind: 'corrupt-blob',
            digest: ref.digest,
            message: `${ref.role} ${ref.digest} is ${st.size} bytes on disk, the manifest says ${ref.size}`,
          });
        }
        walk.blobs.set(ref.digest, { digest: ref.digest, size: st.size, mediaType: ref.mediaType, present: true, foreign: ref.foreign });
      } else if (ref.foreign && st.reason === 'absent') {
        // Windows base layers are fetched from their `urls`, never stored: not a fault (docs/registry-behaviour.md, Manifests).
        walk.blobs.set(ref.digest, { digest: ref.digest, size: ref.size ?? 0, mediaType: ref.mediaType, present: false, foreign: true });
      } else {
        walk.faults.push(
          st.reason === 'absent'
            ? { kind: 'missing-blob', digest: ref.digest, message: `${ref.role} blob ${ref.digest} is missing (${st.location} ${st.detail})` }
            : { kind: 'unreadable', digest: ref.digest, message: `${ref.role} blob ${ref.digest}: ${st.location} ${st.detail}` },
        );
      }
    }
  }
  walk.manifests.push(record.digest);
}

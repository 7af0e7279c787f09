import type { ManifestRecord } from '../image/reader.js';
import type { ReadFault } from '../storage/storage.js';

export type { ReadFault };

export type FaultKind =
  | 'missing-manifest'
  | 'missing-blob'
  | 'missing-child'
  | 'invalid-manifest'
  | 'invalid-link'
  | 'invalid-name'
  | 'corrupt-blob'
  | 'unreadable'
  | 'name-collision';

export const FAULT_KINDS: readonly FaultKind[] = [
  'missing-manifest',
  'missing-blob',
  'missing-child',
  'invalid-manifest',
  'invalid-link',
  'invalid-name',
  'corrupt-blob',
  'unreadable',
  'name-collision',
];

export interface Fault {
  readonly kind: FaultKind;
  /** One line: what is wrong, naming the digest or file. */
  readonly message: string;
  /** The offending digest, where there is one. */
  readonly digest?: string;
}

export interface BlobEntry {
  readonly digest: string;
  /** Size on disk, or the descriptor's size for an absent foreign layer. */
  readonly size: number;
  readonly mediaType: string | undefined;
  /** False only for a foreign layer whose data the storage does not hold (it is fetched from its `urls`). */
  readonly present: boolean;
  readonly foreign: boolean;
}

export interface TagEntry {
  readonly repository: string;
  readonly tag: string;
  /** The tag's manifest digest; undefined when the link itself is bad. */
  readonly digest: string | undefined;
  readonly mediaType: string | undefined;
  readonly platforms: readonly string[];
  /** Every manifest of the image, children before parents; the last is the tag's own. */
  readonly manifests: readonly string[];
  /** Unique config and layer blobs of the image (all children together). */
  readonly blobs: readonly BlobEntry[];
  /** Sum of the unique blobs' sizes. */
  readonly size: number;
  readonly faults: Fault[];
  /** Taken on trust from a sync state journal: the link was read, the image was not resolved. */
  readonly trusted?: boolean;
  /** A manifest no tag points at (`--include-untagged`): `tag` holds its digest, and it is pushed by digest. */
  readonly untagged?: boolean;
  /** When the tag was last pushed (the mtime of its `current/link`, from the file or its tar header), ISO 8601. */
  readonly pushedAt?: string;
}

export interface SourceInventory {
  /** The storage as outputs name it (src/storage/storage.ts Storage.root). */
  readonly root: string;
  readonly tags: readonly TagEntry[];
  /** Every healthy manifest reached, by digest, with its exact bytes. */
  readonly manifests: ReadonlyMap<string, ManifestRecord>;
  /** How many manifests in `revisions` no tag reaches. */
  readonly untaggedCount: number;
  /**
   * Directories the walk could not read: the tags below them are unknown. Reported as `unreadable` faults, and no
   * repository under one is ever taken for deleted.
   */
  readonly readFaults: readonly ReadFault[];
  /** Tags a tag selection left out (`--tag-include`, `--keep-latest`, …): still in the source, never "gone". */
  readonly deselected?: readonly TagEntry[];
  /** Tag locations in the whole storage, before any selection (set by a whole scan). */
  readonly foundTags?: number;
}

/** Is `repository` under a directory the walk could not read? */
export function readIncomplete(readFaults: readonly ReadFault[], repository: string): boolean {
  return readFaults.some((f) => f.prefix === '' || repository === f.prefix || repository.startsWith(`${f.prefix}/`) || (!f.repository && f.prefix.startsWith(`${repository}/`)));
}

export interface InventorySummary {
  readonly repositories: number;
  readonly tags: number;
  readonly faultyTags: number;
  readonly uniqueManifests: number;
  readonly uniqueBlobs: number;
  readonly totalBytes: number;
  /** Manifests in `revisions` that no tag reaches (counted always, migrated with --include-untagged). */
  readonly untaggedManifests: number;
  readonly faults: Readonly<Record<FaultKind, number>>;
  /** Directories that could not be read (their tags are unknown); counted in `faults.unreadable` too. */
  readonly unreadableDirectories: number;
}

/** `repo:tag`, or `repo@sha256:…` for a manifest addressed by digest. */
export function tagRef(tag: { repository: string; tag: string }): string {
  return tag.tag.startsWith('sha256:') ? `${tag.repository}@${tag.tag}` : `${tag.repository}:${tag.tag}`;
}

/** The inverse of tagRef: `repo:tag` splits at the last `:`, `repo@sha256:…` at the `@`. */
export function splitRef(ref: string): { repository: string; tag: string } {
  const at = ref.indexOf('@sha256:');
  if (at >= 0) return { repository: ref.slice(0, at), tag: ref.slice(at + 1) };
  const colon = ref.lastIndexOf(':');
  return { repository: ref.slice(0, colon), tag: ref.slice(colon + 1) };
}

/** What the destination serves for one tag. */
export interface DestinationTag {
  readonly digest: string;
  readonly mediaType: string | undefined;
}

/** The destination's side of a diff: `repo:tag` → what it serves. */
export type DestinationTags = Map<string, DestinationTag>;

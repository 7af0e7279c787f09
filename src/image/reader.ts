import { createHash } from 'node:crypto';
import { checkRepositoryName, splitDigest } from '../storage/digest.js';
import type { BlobStat, SourceBlobReader, Storage } from '../storage/storage.js';
import type { ManifestKind } from './media-types.js';
import { parseManifest, type ParsedManifest } from './parse.js';
import { HASH_BLOCK_BYTES } from '../tuning.js';

/** Registries refuse manifests above 4 MiB (distribution's `maxManifestBodySize`). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface ManifestRecord {
  readonly digest: string;
  readonly kind: ManifestKind;
  readonly mediaType: string;
  /** The exact stored bytes: what gets pushed. */
  readonly bytes: Buffer;
  readonly parsed: ParsedManifest;
}

export type ManifestLoad =
  | { ok: true; record: ManifestRecord }
  | { ok: false; reason: 'absent' | 'invalid' | 'corrupt' | 'unreadable'; detail: string };


export function hashBytes(digest: string, bytes: Buffer): string {
  const [algorithm] = splitDigest(digest);
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

/**
 * Read-only access to the blob store with a cache per digest, so a base layer shared by thousands of tags is
 * looked at once and a manifest shared by many tags is read and parsed once. The cache holds the answers as
 * promises: tags resolved at the same time share one read.
 */
export class BlobStore {
  readonly storage: Storage;
  readonly #manifests = new Map<string, Promise<ManifestLoad>>();
  /** The manifests read whole and valid so far, at hand without waiting. */
  readonly #records = new Map<string, ManifestRecord>();
  readonly #blobs = new Map<string, Promise<BlobStat>>();
  readonly #names = new Map<string, string | undefined>();

  constructor(storage: Storage) {
    this.storage = storage;
  }

  /** Distribution's name grammar, checked once per repository (a repository has many tags). */
  checkName(repository: string): string | undefined {
    if (!this.#names.has(repository)) this.#names.set(repository, checkRepositoryName(repository));
    return this.#names.get(repository);
  }

  manifest(digest: string): Promise<ManifestLoad> {
    let load = this.#manifests.get(digest);
    if (!load) {
      load = this.#loadManifest(digest);
      this.#manifests.set(digest, load);
    }
    return load;
  }

  /** A manifest `manifest()` has read and found valid, or undefined. */
  record(digest: string): ManifestRecord | undefined {
    return this.#records.get(digest);
  }

  /** The storage's own answer (src/storage/storage.ts BlobStat), asked once per digest. */
  blob(digest: string): Promise<BlobStat> {
    let result = this.#blobs.get(digest);
    if (!result) {
      result = this.storage.statBlob(digest);
      this.#blobs.set(digest, result);
    }
    return result;
  }

  async #loadManifest(digest: string): Promise<ManifestLoad> {
    const read = await this.storage.readManifest(digest, MAX_MANIFEST_BYTES);
    if (!read.ok) {
      if (read.reason === 'too-big') return { ok: false, reason: 'invalid', detail: `manifest is ${read.size ?? 'over 4 MiB of'} bytes, registries refuse more than 4 MiB` };
      return { ok: false, reason: read.reason, detail: `${read.location} ${read.detail}` };
    }
    const bytes = read.bytes;
    const actual = hashBytes(digest, bytes);
    if (actual !== digest) return { ok: false, reason: 'corrupt', detail: `manifest data hashes to ${actual}` };
    const parsed = parseManifest(bytes);
    if (!parsed.ok) return { ok: false, reason: 'invalid', detail: parsed.reason };
    const record: ManifestRecord = { digest, kind: parsed.manifest.kind, mediaType: parsed.manifest.mediaType, bytes, parsed: parsed.manifest };
    this.#records.set(digest, record);
    return { ok: true, record };
  }
}

/** Streams a blob through its digest's hash (bounded memory) and returns the digest it really has. */
export async function hashBlob(blob: SourceBlobReader): Promise<string> {
  const [algorithm] = splitDigest(blob.digest);
  const hash = createHash(algorithm);
  for await (const chunk of blob.open(undefined, HASH_BLOCK_BYTES)) hash.update(chunk);
  return `${algorithm}:${hash.digest('hex')}`;
}

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readSmall, statData } from '../storage/source.js';
import { checkRepositoryName, splitDigest } from '../storage/digest.js';
import { blobDataPath, type StorageLayout } from '../storage/layout.js';
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

export type BlobStat = { ok: true; size: number } | { ok: false; reason: 'absent' | 'unreadable'; detail: string };

export function hashBytes(digest: string, bytes: Buffer): string {
  const [algorithm] = splitDigest(digest);
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

/**
 * Read-only access to the blob store with a cache per digest, so a base layer shared by thousands of tags is
 * stat'ed once and a manifest shared by many tags is read and parsed once. Opens files read-only, always.
 */
export class BlobStore {
  readonly layout: StorageLayout;
  readonly #manifests = new Map<string, ManifestLoad>();
  readonly #blobs = new Map<string, BlobStat>();
  readonly #names = new Map<string, string | undefined>();

  constructor(layout: StorageLayout) {
    this.layout = layout;
  }

  /** Distribution's name grammar, checked once per repository (a repository has many tags). */
  checkName(repository: string): string | undefined {
    if (!this.#names.has(repository)) this.#names.set(repository, checkRepositoryName(repository));
    return this.#names.get(repository);
  }

  dataPath(digest: string): string {
    return blobDataPath(this.layout, digest);
  }

  manifest(digest: string): ManifestLoad {
    let load = this.#manifests.get(digest);
    if (!load) {
      load = this.#loadManifest(digest);
      this.#manifests.set(digest, load);
    }
    return load;
  }

  blob(digest: string): BlobStat {
    let result = this.#blobs.get(digest);
    if (!result) {
      result = this.#statBlob(digest);
      this.#blobs.set(digest, result);
    }
    return result;
  }

  #statBlob(digest: string): BlobStat {
    const file = this.dataPath(digest);
    const st = statData(this.layout, file);
    if (st.ok) return st;
    switch (st.code) {
      case 'ENOENT':
      case 'ENOTDIR':
        return { ok: false, reason: 'absent', detail: `${file} does not exist` };
      case 'ENOTFILE':
        return { ok: false, reason: 'unreadable', detail: `${file} is not a regular file` };
      case 'ESYMLINK':
        return { ok: false, reason: 'unreadable', detail: `${file} is a symbolic link (symbolic links in the storage are never followed)` };
      case 'ETRUNCATED':
        return { ok: false, reason: 'unreadable', detail: `${file} is cut off: the tar ends inside it` };
      case 'ECUT':
        return { ok: false, reason: 'unreadable', detail: `${file} is not in the tar, which is cut short` };
      default:
        return { ok: false, reason: 'unreadable', detail: `${file} cannot be read (${st.code})` };
    }
  }

  #loadManifest(digest: string): ManifestLoad {
    const file = this.dataPath(digest);
    const read = readSmall(this.layout, file, MAX_MANIFEST_BYTES);
    if (!read.ok) {
      switch (read.code) {
        case 'ENOENT':
        case 'ENOTDIR':
          return { ok: false, reason: 'absent', detail: `${file} does not exist` };
        case 'ETOOBIG':
          return { ok: false, reason: 'invalid', detail: `manifest is ${read.size} bytes, registries refuse more than 4 MiB` };
        case 'ENOTFILE':
          return { ok: false, reason: 'unreadable', detail: `${file} is not a regular file` };
        case 'ELOOP':
          return { ok: false, reason: 'unreadable', detail: `${file} is a symbolic link (not followed)` };
        case 'ETRUNCATED':
          return { ok: false, reason: 'unreadable', detail: `${file} is cut off: the tar ends inside it` };
        case 'ECUT':
          return { ok: false, reason: 'unreadable', detail: `${file} is not in the tar, which is cut short` };
        default:
          return { ok: false, reason: 'unreadable', detail: `${file} cannot be read (${read.code})` };
      }
    }
    const bytes = read.bytes;
    const actual = hashBytes(digest, bytes);
    if (actual !== digest) return { ok: false, reason: 'corrupt', detail: `manifest data hashes to ${actual}` };
    const parsed = parseManifest(bytes);
    if (!parsed.ok) return { ok: false, reason: 'invalid', detail: parsed.reason };
    return {
      ok: true,
      record: { digest, kind: parsed.manifest.kind, mediaType: parsed.manifest.mediaType, bytes, parsed: parsed.manifest },
    };
  }
}

/** Streams a blob through its digest's hash (bounded memory) and returns the digest it really has. */
export async function hashFile(file: string, algorithm: string, start = 0, size?: number): Promise<string> {
  const hash = createHash(algorithm);
  const range = size === undefined ? {} : size === 0 ? { start, end: start - 1 } : { start, end: start + size - 1 };
  const stream = createReadStream(file, { highWaterMark: HASH_BLOCK_BYTES, ...range });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return `${algorithm}:${hash.digest('hex')}`;
}

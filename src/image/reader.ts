import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { splitDigest } from '../storage/digest.js';
import { blobDataPath, type StorageLayout } from '../storage/layout.js';
import type { ManifestKind } from './media-types.js';
import { parseManifest, type ParsedManifest } from './parse.js';

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

export type BlobStat = { ok: true; size: number; path: string } | { ok: false; reason: 'absent' | 'unreadable'; detail: string };

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
  readonly #manifests = new Map<string, Promise<ManifestLoad>>();
  readonly #blobs = new Map<string, Promise<BlobStat>>();

  constructor(layout: StorageLayout) {
    this.layout = layout;
  }

  dataPath(digest: string): string {
    return blobDataPath(this.layout, digest);
  }

  manifest(digest: string): Promise<ManifestLoad> {
    let load = this.#manifests.get(digest);
    if (!load) {
      load = this.#loadManifest(digest);
      this.#manifests.set(digest, load);
    }
    return load;
  }

  blob(digest: string): Promise<BlobStat> {
    let result = this.#blobs.get(digest);
    if (!result) {
      result = this.#statBlob(digest);
      this.#blobs.set(digest, result);
    }
    return result;
  }

  async #statBlob(digest: string): Promise<BlobStat> {
    const file = this.dataPath(digest);
    try {
      const st = await stat(file);
      if (!st.isFile()) return { ok: false, reason: 'unreadable', detail: `${file} is not a regular file` };
      return { ok: true, size: st.size, path: file };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return { ok: false, reason: 'absent', detail: `${file} does not exist` };
      return { ok: false, reason: 'unreadable', detail: `${file} cannot be read (${code ?? 'error'})` };
    }
  }

  async #loadManifest(digest: string): Promise<ManifestLoad> {
    const file = this.dataPath(digest);
    let bytes: Buffer;
    try {
      const handle = await open(file, 'r');
      try {
        const st = await handle.stat();
        if (!st.isFile()) return { ok: false, reason: 'unreadable', detail: `${file} is not a regular file` };
        if (st.size > MAX_MANIFEST_BYTES) {
          return { ok: false, reason: 'invalid', detail: `manifest is ${st.size} bytes, registries refuse more than 4 MiB` };
        }
        bytes = await handle.readFile();
      } finally {
        await handle.close();
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return { ok: false, reason: 'absent', detail: `${file} does not exist` };
      return { ok: false, reason: 'unreadable', detail: `${file} cannot be read (${code ?? 'error'})` };
    }
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
export async function hashFile(file: string, algorithm: string): Promise<string> {
  const hash = createHash(algorithm);
  const stream = createReadStream(file, { highWaterMark: 1024 * 1024 });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return `${algorithm}:${hash.digest('hex')}`;
}

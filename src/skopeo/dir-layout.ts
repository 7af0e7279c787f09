import { createHash } from 'node:crypto';
import { constants as fsConstants, createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { SourceBlobReader } from '../storage/storage.js';
import { copyFile, link, mkdir, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { PlannedImage } from '../plan/plan.js';
import { splitDigest } from '../storage/digest.js';
import { HASH_BLOCK_BYTES } from '../tuning.js';
import { hashBlob } from '../image/reader.js';

/** skopeo's `dir:` transport marker (docs/registry-behaviour.md, skopeo dir: layout). */
export const DIR_VERSION = 'Directory Transport Version: 1.1\n';

/**
 * Where a layout file's bytes are in the storage: its own local file when the storage has one (hard-linked, or
 * copied across filesystems), else a reader they are copied from (a range of a tar, a download).
 */
export interface LayoutSource {
  readonly localPath: string | undefined;
  readonly reader: SourceBlobReader;
}

export interface LayoutFile {
  /** File name inside the image directory. */
  readonly name: string;
  readonly source: LayoutSource;
  /**
   * Bytes to write instead (a schema1 manifest, signed for skopeo to push), and how to tell an existing file
   * already holds an equivalent (signatures differ run to run, the payload does not).
   */
  readonly content?: { readonly bytes: Buffer; readonly same: (existing: Buffer) => boolean };
}

/**
 * The files of one image's `dir:` layout: `manifest.json` = the tag's manifest; for a multi-arch image each child
 * manifest as `<hex>.manifest.json`; every config and layer blob (of all children) as `<hex>`.
 */
export function layoutFiles(image: PlannedImage, source: (digest: string) => LayoutSource, top?: LayoutFile['content']): LayoutFile[] {
  const files: LayoutFile[] = [{ name: 'manifest.json', source: source(image.digest), ...(top ? { content: top } : {}) }];
  for (const manifest of image.manifests.slice(0, -1)) files.push({ name: `${splitDigest(manifest.digest)[1]}.manifest.json`, source: source(manifest.digest) });
  for (const digest of image.blobs) files.push({ name: splitDigest(digest)[1], source: source(digest) });
  return files;
}

/** `<out>/<destination repository>:<tag>`: nested names become nested directories. */
export function imageDirectory(out: string, image: { repository: string; tag: string }): string {
  // An untagged manifest's directory is named <repository>@<hex> (no ':' from the digest).
  const leaf = image.tag.startsWith('sha256:') ? `${image.repository}@${image.tag.slice(7)}` : `${image.repository}:${image.tag}`;
  return path.join(out, ...leaf.split('/'));
}

export interface LinkStats {
  linked: number;
  copied: number;
  kept: number;
  removed: number;
}

/** Errors that mean "no hard link here": another filesystem, a filesystem without links, too many links. */
const NO_LINK = new Set(['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP']);

/**
 * Places files by hard link, falling back to a copy (a reflink where the filesystem can) when linking is not
 * possible, and says so once. The source is only ever read.
 */
export class Linker {
  readonly stats: LinkStats = { linked: 0, copied: 0, kept: 0, removed: 0 };
  #linkable = true;
  readonly #onFallback: (reason: string) => void;

  constructor(onFallback: (reason: string) => void) {
    this.#onFallback = onFallback;
  }

  async place(from: LayoutSource, target: string): Promise<void> {
    const source = from.localPath;
    if (source === undefined) {
      // No local file (a range of a tar, an object): always a copy; an existing one is kept if it holds the bytes.
      const existing = await stat(target).catch(() => undefined);
      if (existing && (await holdsDigest(target, existing.size, from.reader))) {
        this.stats.kept++;
        return;
      }
      if (existing) await unlink(target);
      await copyVerified(from.reader, target);
      this.stats.copied++;
      return;
    }
    const [src, existing] = await Promise.all([stat(source), stat(target).catch(() => undefined)]);
    if (existing) {
      // Same inode: our earlier link. Not linkable and the right bytes: our earlier copy. Anything else is stale.
      if (existing.ino === src.ino && existing.dev === src.dev) {
        this.stats.kept++;
        return;
      }
      if (!this.#linkable && (await holdsDigest(target, existing.size, from.reader))) {
        this.stats.kept++;
        return;
      }
      await unlink(target);
    }
    if (this.#linkable) {
      try {
        await link(source, target);
        this.stats.linked++;
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (!NO_LINK.has(code)) throw err;
        // EMLINK is about one file (a base layer linked 65,000 times): copy it, keep linking the rest.
        if (code !== 'EMLINK' && this.#linkable) {
          this.#linkable = false;
          this.#onFallback(`cannot hard-link from the storage into ${path.dirname(target)} (${code}): copying instead`);
        }
      }
    }
    await copyFile(source, target, fsConstants.COPYFILE_FICLONE);
    this.stats.copied++;
  }
}

/**
 * Copies a blob out of the storage into `target`, hashing it on the way: a blob whose bytes do not match its digest
 * (a corrupt layer of the same size, which only a hash shows) is not left in the layout, and its image fails.
 */
async function copyVerified(blob: SourceBlobReader, target: string): Promise<void> {
  const [algorithm] = splitDigest(blob.digest);
  const hash = createHash(algorithm);
  await pipeline(async function* () {
    for await (const chunk of blob.open()) {
      hash.update(chunk);
      yield chunk;
    }
  }, createWriteStream(target));
  const actual = `${algorithm}:${hash.digest('hex')}`;
  if (actual !== blob.digest) {
    await unlink(target).catch(() => undefined);
    throw new Error(`corrupt-blob: blob ${blob.digest}: its data in the storage hashes to ${actual}`);
  }
}

/**
 * Whether a file already in the layout holds the bytes of the blob it is named for. A copy (unlike a hard link, the
 * storage's own file) may have been changed since it was written, and a changed one can keep its size: it is read
 * through and hashed, which costs a read of the file where copying it again costs a read and a write.
 */
async function holdsDigest(file: string, size: number, blob: SourceBlobReader): Promise<boolean> {
  if (size !== blob.size) return false;
  const copy: SourceBlobReader = { digest: blob.digest, size, open: () => createReadStream(file, { highWaterMark: HASH_BLOCK_BYTES }) };
  return (await hashBlob(copy).catch(() => undefined)) === blob.digest;
}

/**
 * Writes (or brings up to date) one image directory: correct entries are kept, stale ones replaced, files that
 * do not belong removed.
 */
export async function writeImageDirectory(dir: string, files: readonly LayoutFile[], linker: Linker): Promise<void> {
  await mkdir(dir, { recursive: true });
  const wanted = new Set(['version', ...files.map((f) => f.name)]);
  for (const name of await readdir(dir)) {
    if (!wanted.has(name)) {
      await rm(path.join(dir, name), { recursive: true, force: true });
      linker.stats.removed++;
    }
  }
  const versionFile = path.join(dir, 'version');
  const current = await readFile(versionFile, 'utf8').catch(() => undefined);
  if (current !== DIR_VERSION) await writeFile(versionFile, DIR_VERSION);
  for (const file of files) {
    const target = path.join(dir, file.name);
    if (file.content) {
      const existing = await readFile(target).catch(() => undefined);
      if (existing && file.content.same(existing)) {
        linker.stats.kept++;
        continue;
      }
      if (existing) await unlink(target);
      await writeFile(target, file.content.bytes);
      linker.stats.copied++;
      continue;
    }
    await linker.place(file.source, target);
  }
}

/** Removes an image's layout (one that failed half-written): skopeo must not find it; the next run writes it whole. */
export async function removeImageDirectory(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

import { close, closeSync, openSync, lstatSync, accessSync, createReadStream, open, read, readSync, constants as fsConstants } from 'node:fs';
import { Readable } from 'node:stream';
import { errnoCode, readSmallFileSync } from './files.js';
import type { StorageLayout } from './layout.js';
import { readTarEntry } from './tar-index.js';
import { UPLOAD_BLOCK_BYTES } from '../tuning.js';

/**
 * File access that works the same on a storage directory and on a tar of one: the rest of regmigrate names files
 * by their path under the storage (`<v2>/repositories/…`, `<v2>/blobs/…`) and never asks which kind it has.
 */

const tarFds = new Map<string, number>();

function tarFd(file: string): number {
  let fd = tarFds.get(file);
  if (fd === undefined) {
    fd = openSync(file, 'r');
    tarFds.set(file, fd);
  }
  return fd;
}

/** `<v2>/a/b` → `a/b` for a tar layout. */
function relative(layout: StorageLayout, file: string): string {
  return file.slice(layout.v2.length + 1);
}

export type SmallRead = { ok: true; bytes: Buffer } | { ok: false; code: string; size?: number };

export function readSmall(layout: StorageLayout | undefined, file: string, limit: number): SmallRead {
  if (layout?.tar) return readTarEntry(layout.tar, tarFd(layout.tar.file), relative(layout, file), limit);
  return readSmallFileSync(file, limit);
}

export type DataStat = { ok: true; size: number } | { ok: false; code: string };

/** Size of a data file, checking that it can be read. */
export function statData(layout: StorageLayout, file: string): DataStat {
  if (layout.tar) {
    const entry = layout.tar.entries.get(relative(layout, file));
    if (!entry) return { ok: false, code: layout.tar.truncatedAt ? 'ECUT' : 'ENOENT' };
    if (entry.truncated) return { ok: false, code: 'ETRUNCATED' };
    return { ok: true, size: entry.size };
  }
  try {
    // lstat: a `data` that is a symbolic link is never followed (it could point anywhere on the host).
    const st = lstatSync(file, { throwIfNoEntry: false });
    if (!st) return { ok: false, code: 'ENOENT' };
    if (st.isSymbolicLink()) return { ok: false, code: 'ESYMLINK' };
    if (!st.isFile()) return { ok: false, code: 'ENOTFILE' };
    // stat succeeds on a file we may not read (mode 000, another owner): find out now, not halfway through a push.
    accessSync(file, fsConstants.R_OK);
    return { ok: true, size: st.size };
  } catch (err) {
    return { ok: false, code: errnoCode(err) };
  }
}

/**
 * A file's modification time, or undefined when it cannot be looked at. In a tar it is the time in the entry's
 * header, which `tar -c` copies from the file; the index keeps it for `current/link` entries only
 * (src/storage/tar-index.ts).
 */
export function modifiedAt(layout: StorageLayout, file: string): Date | undefined {
  if (layout.tar) {
    const mtime = layout.tar.entries.get(relative(layout, file))?.mtime;
    return mtime !== undefined ? new Date(mtime * 1000) : undefined;
  }
  try {
    return lstatSync(file).mtime;
  } catch {
    return undefined;
  }
}

/** Where a blob's bytes are: a whole file (a directory storage, linkable), or a range of the tar. */
export interface BlobSource {
  readonly file: string;
  readonly start: number;
  readonly size: number;
  /** A file of its own: can be hard-linked. */
  readonly whole: boolean;
}

export function dataSource(layout: StorageLayout, file: string, size: number): BlobSource {
  if (layout.tar) {
    const entry = layout.tar.entries.get(relative(layout, file));
    return { file: layout.tar.file, start: entry?.offset ?? 0, size: entry?.size ?? size, whole: false };
  }
  return { file, start: 0, size, whole: true };
}

/**
 * A blob's bytes for an upload, read afresh from the storage at each `open` or `stream` (each attempt, each chunk):
 * `range` is inclusive and relative to the blob. The shape is the registry client's BlobReader (src/registry/blobs.ts).
 */
export function blobReader(
  source: BlobSource,
  digest: string,
): {
  digest: string;
  size: number;
  open(range?: { start: number; end: number }): AsyncIterable<Buffer>;
  stream(range: { start: number; end: number }, onBytes?: (n: number) => void): Readable;
  bytes(range: { start: number; end: number }): Buffer;
} {
  return {
    digest,
    size: source.size,
    open: (range) => readRange(source.file, source.start + (range?.start ?? 0), source.start + (range?.end ?? source.size - 1)),
    stream: (range, onBytes) => new FileRange(source.file, source.start + range.start, source.start + range.end, onBytes),
    bytes: (range) => readRangeSync(source.file, source.start + range.start, source.start + range.end),
  };
}

/** The bytes `start..end` (inclusive) of a file at once, for a small blob; an error when the file holds fewer. */
function readRangeSync(file: string, start: number, end: number): Buffer {
  const expected = end - start + 1;
  const bytes = Buffer.allocUnsafeSlow(expected);
  const fd = openSync(file, 'r');
  let read = 0;
  try {
    while (read < expected) {
      const n = readSync(fd, bytes, read, expected - read, start + read);
      if (n === 0) break;
      read += n;
    }
  } finally {
    closeSync(fd);
  }
  if (read !== expected) throw changed(file, read, expected);
  return bytes;
}

/** The bytes `start..end` (inclusive) of a file, or an error when the file holds fewer. */
async function* readRange(file: string, start: number, end: number): AsyncGenerator<Buffer> {
  let read = 0;
  // The block size and why: tuning.ts UPLOAD_BLOCK_BYTES.
  for await (const chunk of createReadStream(file, { start, end, highWaterMark: UPLOAD_BLOCK_BYTES })) {
    read += (chunk as Buffer).length;
    yield chunk as Buffer;
  }
  const expected = end - start + 1;
  // A blob that shrank while being read would otherwise end in a confusing socket error.
  if (read !== expected) throw changed(file, read, expected);
}

function changed(file: string, read: number, expected: number): Error {
  return new Error(`${file} changed while being read: ${read} bytes instead of ${expected}`);
}

/**
 * The bytes `start..end` (inclusive) of a file as one stream, read block by block straight into the buffers the
 * socket is given: no generator or stream between the file and the request, and `onBytes` told of each block as it
 * is read. Fails like readRange when the file holds fewer bytes.
 */
class FileRange extends Readable {
  readonly #file: string;
  readonly #start: number;
  readonly #end: number;
  readonly #onBytes: ((n: number) => void) | undefined;
  #position: number;
  #fd: number | undefined;

  constructor(file: string, start: number, end: number, onBytes?: (n: number) => void) {
    super({ highWaterMark: UPLOAD_BLOCK_BYTES });
    this.#file = file;
    this.#start = start;
    this.#end = end;
    this.#position = start;
    this.#onBytes = onBytes;
  }

  override _construct(callback: (err?: Error | null) => void): void {
    open(this.#file, 'r', (err, fd) => {
      if (!err) this.#fd = fd;
      callback(err);
    });
  }

  override _read(): void {
    const wanted = Math.min(UPLOAD_BLOCK_BYTES, this.#end - this.#position + 1);
    if (wanted <= 0) {
      this.push(null);
      return;
    }
    // A block of its own, not a slice of a shared pool: the socket may hold it until it is written.
    const block = Buffer.allocUnsafeSlow(wanted);
    read(this.#fd!, block, 0, wanted, this.#position, (err, n) => {
      if (err) return this.destroy(err);
      if (n === 0) return this.destroy(changed(this.#file, this.#position - this.#start, this.#end - this.#start + 1));
      this.#position += n;
      this.#onBytes?.(n);
      this.push(n === wanted ? block : block.subarray(0, n));
    });
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd === undefined) callback(err);
    else close(fd, () => callback(err));
  }
}

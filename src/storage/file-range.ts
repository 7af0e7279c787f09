import { close, closeSync, createReadStream, open, openSync, read, readSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { SourceBlobReader } from './storage.js';
import { UPLOAD_BLOCK_BYTES } from '../tuning.js';

/**
 * A blob that is a byte range of a local file: a whole `data` file of a directory storage, or an entry of a tar.
 * Read afresh at each `open`, `stream` or `bytes` (each attempt, each chunk); `range` is inclusive and relative to
 * the blob.
 */
export function fileRangeReader(file: string, start: number, size: number, digest: string): SourceBlobReader {
  return {
    digest,
    size,
    open: (range, blockBytes) => readRange(file, start + (range?.start ?? 0), start + (range?.end ?? size - 1), blockBytes ?? UPLOAD_BLOCK_BYTES),
    stream: (range, onBytes) => new FileRange(file, start + range.start, start + range.end, onBytes),
    bytes: (range) => readRangeSync(file, start + range.start, start + range.end),
  };
}

/** The bytes `start..end` (inclusive) of a file at once, for a small blob; an error when the file holds fewer. */
function readRangeSync(file: string, start: number, end: number): Buffer {
  const expected = end - start + 1;
  const bytes = Buffer.allocUnsafeSlow(expected);
  const fd = openSync(file, 'r');
  let done = 0;
  try {
    while (done < expected) {
      const n = readSync(fd, bytes, done, expected - done, start + done);
      if (n === 0) break;
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  if (done !== expected) throw changed(file, done, expected);
  return bytes;
}

/** The bytes `start..end` (inclusive) of a file, or an error when the file holds fewer. */
async function* readRange(file: string, start: number, end: number, blockBytes: number): AsyncGenerator<Buffer> {
  let done = 0;
  // The block size and why: tuning.ts UPLOAD_BLOCK_BYTES (HASH_BLOCK_BYTES when hashing).
  for await (const chunk of createReadStream(file, { start, end, highWaterMark: blockBytes })) {
    done += (chunk as Buffer).length;
    yield chunk as Buffer;
  }
  const expected = end - start + 1;
  // A blob that shrank while being read would otherwise end in a confusing socket error.
  if (done !== expected) throw changed(file, done, expected);
}

function changed(file: string, done: number, expected: number): Error {
  return new Error(`${file} changed while being read: ${done} bytes instead of ${expected}`);
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

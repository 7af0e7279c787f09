import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
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
    stream: (range, onBytes, blockBytes) => fileBlocks(file, start + range.start, start + range.end, onBytes, blockBytes),
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
 * The bytes `start..end` (inclusive) of a file as the blocks of a request body, each read when the request asks for
 * it, into two buffers taken in turn. A fresh buffer for each block was memory outside the heap that V8 counts
 * towards its next full collection: on a 2 GiB layer, with a small heap, it ran one every few dozen MiB and the
 * pages freed were faulted in again (bench/cpu.ts: 1.2–2.5 s of CPU per GiB from one run to the next).
 *
 * A buffer is read into again two blocks later, once the socket is done with it: undici asks for the next block
 * of an iterable body only after `socket.write` of this one returned true or the socket drained
 * (node_modules/undici/lib/dispatcher/client-h1.js, writeIterable and AsyncWriter.write). Writes leave in order, and
 * every block but the last is a whole block, larger than a socket's high-water mark (16 KiB; 64 KiB from Node 22)
 * whenever there are two, so a write returns true only when everything before it has gone: the block before this
 * one is written when the one after it is asked for. A consumer that keeps blocks must copy them. Fails like
 * readRange when the file holds fewer bytes.
 */
async function* fileBlocks(file: string, start: number, end: number, onBytes?: (n: number) => void, maxBlockBytes = UPLOAD_BLOCK_BYTES): AsyncGenerator<Buffer> {
  const size = end - start + 1;
  const blockBytes = Math.min(maxBlockBytes, size);
  const buffers = [Buffer.allocUnsafeSlow(blockBytes), size > blockBytes ? Buffer.allocUnsafeSlow(blockBytes) : undefined];
  const handle = await open(file, 'r');
  try {
    for (let position = start, turn = 0; position <= end; turn ^= 1) {
      const block = buffers[turn]!;
      const wanted = Math.min(blockBytes, end - position + 1);
      // Whole blocks, whatever a read returns: only the last block may be shorter than the rest.
      let filled = 0;
      while (filled < wanted) {
        const { bytesRead } = await handle.read(block, filled, wanted - filled, position + filled);
        if (bytesRead === 0) throw changed(file, position + filled - start, size);
        filled += bytesRead;
      }
      position += filled;
      onBytes?.(filled);
      yield filled === block.length ? block : block.subarray(0, filled);
    }
  } finally {
    await handle.close();
  }
}

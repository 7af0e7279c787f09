import { once } from 'node:events';
import type { Writable } from 'node:stream';

/**
 * Writes pieces to a stream in batches of about 64 KiB, waiting for `drain` when the stream asks us to:
 * a 50,000-tag JSON document is never built as one string.
 */
export async function writePieces(out: Writable, pieces: Iterable<string>): Promise<void> {
  for (const chunk of gather(pieces)) if (!out.write(chunk)) await once(out, 'drain');
}

/** Small pieces gathered into chunks of about 64 KiB: one write each, and no document as one string. */
export function* gather(pieces: Iterable<string>, size = 65536): Generator<string> {
  let buffer = '';
  for (const piece of pieces) {
    buffer += piece;
    if (buffer.length >= size) {
      yield buffer;
      buffer = '';
    }
  }
  if (buffer) yield buffer;
}

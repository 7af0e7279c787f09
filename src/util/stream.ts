import { once } from 'node:events';
import type { Writable } from 'node:stream';

/**
 * Writes pieces to a stream in batches of about 64 KiB, waiting for `drain` when the stream asks us to:
 * a 50,000-tag JSON document is never built as one string.
 */
export async function writePieces(out: Writable, pieces: Iterable<string>): Promise<void> {
  let buffer = '';
  for (const piece of pieces) {
    buffer += piece;
    if (buffer.length >= 65536) {
      if (!out.write(buffer)) await once(out, 'drain');
      buffer = '';
    }
  }
  if (buffer && !out.write(buffer)) await once(out, 'drain');
}

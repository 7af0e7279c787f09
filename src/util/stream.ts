import type { Writable } from 'node:stream';

/**
 * Writes pieces to a stream in batches of about 64 KiB, waiting for `drain` when the stream asks us to:
 * a 50,000-tag JSON document is never built as one string. A stream that failed or was closed by its reader takes
 * no more: the rest is dropped, and the failure is the stream's `error` listener's to report (cli/output.ts).
 */
export async function writePieces(out: Writable, pieces: Iterable<string>): Promise<void> {
  for (const chunk of gather(pieces)) {
    if (out.destroyed) return;
    if (!out.write(chunk)) await drained(out);
  }
}

/** Resolves when `out` drains, or fails, or closes: a stream that errored never drains. */
function drained(out: Writable): Promise<void> {
  if (out.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      out.off('drain', done);
      out.off('error', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('error', done);
    out.on('close', done);
  });
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

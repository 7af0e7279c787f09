import { closeSync, fstatSync, openSync, readSync, constants as fsConstants } from 'node:fs';

export function errnoCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? 'error';
}

/**
 * Reads a small file with no symlink following at the last component, refusing anything larger than `limit`
 * before reading it. Synchronous on purpose: resolving a 50,000-tag storage is ~200,000 tiny reads of files
 * that are nearly always in the page cache, and a thread-pool round trip per read costs four times the read.
 */
const SMALL_READ = 4096;
const scratch = Buffer.alloc(SMALL_READ + 1);

export type SmallRead = { ok: true; bytes: Buffer; mtime?: Date } | { ok: false; code: string; size?: number; mtime?: Date };

/** `withTime`: also the file's modification time, from the open file (a link's push time, src/storage/directory.ts). */
export function readSmallFileSync(file: string, limit: number, withTime = false): SmallRead {
  let fd: number;
  try {
    fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (err) {
    return { ok: false, code: errnoCode(err) };
  }
  try {
    if (limit <= SMALL_READ) {
      // Link files: one read says both the content and whether it is too large, saving a fstat per tag (50,000
      // of them on a large registry). A directory fails the read with EISDIR. The result is copied out of a
      // scratch buffer: a slice of Node's shared pool would keep 8 KiB alive per retained read.
      const n = readSync(fd, scratch, 0, limit + 1, 0);
      if (n > limit) {
        const st = fstatSync(fd);
        return withTime ? { ok: false, code: 'ETOOBIG', size: st.size, mtime: st.mtime } : { ok: false, code: 'ETOOBIG', size: st.size };
      }
      const bytes = Buffer.from(scratch.subarray(0, n));
      return withTime ? { ok: true, bytes, mtime: fstatSync(fd).mtime } : { ok: true, bytes };
    }
    const st = fstatSync(fd);
    if (!st.isFile()) return { ok: false, code: 'ENOTFILE' };
    if (st.size > limit) return { ok: false, code: 'ETOOBIG', size: st.size };
    // Not from the shared pool: manifests are kept for the whole run, and a pooled slice pins its 8 KiB chunk.
    const bytes = Buffer.allocUnsafeSlow(st.size);
    let read = 0;
    while (read < st.size) {
      const n = readSync(fd, bytes, read, st.size - read, read);
      if (n === 0) break;
      read += n;
    }
    return { ok: true, bytes: read === st.size ? bytes : bytes.subarray(0, read) };
  } catch (err) {
    return { ok: false, code: errnoCode(err) };
  } finally {
    closeSync(fd);
  }
}


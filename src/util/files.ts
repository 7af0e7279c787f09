import { accessSync, closeSync, constants, fsyncSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { gather } from './stream.js';
import { OutputError, UsageError } from '../errors.js';

/**
 * Writes `file` whole or not at all: a temp file beside it, flushed to disk, renamed over the old one, and the
 * directory flushed so the rename itself survives a crash. A reader (a scrape, the next sync) never sees half a file.
 * Failures are OutputErrors naming the file.
 */
export function writeFileAtomic(file: string, text: string | Iterable<string>, what: string, mode = 0o644): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    const fd = openSync(tmp, 'w', mode);
    try {
      for (const chunk of typeof text === 'string' ? [text] : gather(text)) writeWhole(fd, chunk);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // never created
    }
    throw new OutputError(`${what} ${file}: could not be written (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  try {
    const dir = openSync(path.dirname(file), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  } catch {
    // some filesystems refuse fsync on a directory: the rename is done either way
  }
}

/**
 * write(2) may write less than asked and say so only by its count (a file size limit, a full disk): the rest is
 * written until it errors, so a cut-off file is never renamed into place.
 */
export function writeWhole(fd: number, chunk: string): void {
  const bytes = Buffer.from(chunk);
  for (let offset = 0; offset < bytes.length; ) offset += writeSync(fd, bytes, offset);
}

/**
 * Before any work: can `file` be written where it is asked for? Its directory must exist and be writable, and the
 * file itself, if there, writable. Hours of results must never be lost to a typo found at the end (exit 2).
 */
export function assertWritable(file: string, option: string): void {
  const dir = path.dirname(path.resolve(file));
  try {
    if (!statSync(dir).isDirectory()) throw new UsageError(`${option} ${file}: ${dir} is not a directory`);
    accessSync(dir, constants.W_OK);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new UsageError(`${option} ${file}: its directory ${dir} ${code === 'ENOENT' ? 'does not exist' : `cannot be written (${code})`}`, 'create it first, or choose another place');
  }
  try {
    accessSync(file, constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw new UsageError(`${option} ${file}: cannot be written (${code ?? 'error'})`);
  }
  // access(2) says yes to a directory, and to /proc for root, yet a file is written neither there nor in place of a
  // directory: try the first step writeFileAtomic takes, a temp file beside it, and take it away again.
  try {
    if (statSync(file).isDirectory()) throw new UsageError(`${option} ${file}: is a directory`, 'give the name of a file, not of a directory');
  } catch (err) {
    if (err instanceof UsageError) throw err;
  }
  const probe = `${file}.${process.pid}.tmp`;
  try {
    closeSync(openSync(probe, 'wx'));
    unlinkSync(probe);
  } catch (err) {
    throw new UsageError(`${option} ${file}: cannot be written (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 'choose another place');
  }
}

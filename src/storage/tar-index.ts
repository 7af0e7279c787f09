import { closeSync, fstatSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { UsageError } from '../errors.js';

/**
 * Random access into an uncompressed tar of a registry storage (`tar -cpf docker.tar docker`): one pass over the
 * headers (never the data) builds `path → (offset, size)`; blobs are then read by byte range, nothing is
 * extracted. Handles ustar (with its 155-byte prefix), pax extended headers (`path`, `size`, `linkpath`: long
 * repository paths pass 100 characters), GNU long names (`L`, `K`) and base-256 sizes, and hard links. A tar cut
 * short keeps what it holds, and says what is missing. The modification time of each tag's `current/link` is kept
 * too: it is the tag's push time (src/inventory/resolve.ts). Our own small reader: tar-stream and node-tar parse
 * streams, not random access.
 */
export interface TarEntry {
  readonly offset: number;
  readonly size: number;
  /** The data runs past the end of the file (a truncated tar): only `available` bytes exist. */
  readonly truncated?: boolean;
  /** Modification time in seconds since the epoch (fractional from a pax `mtime`); kept for `current/link` entries only, absent when the header has none (0). */
  readonly mtime?: number;
}

export interface TarIndex {
  readonly file: string;
  /** Entries by path relative to the storage's `docker/registry/v2`. */
  readonly entries: Map<string, TarEntry>;
  /**
   * Set when the archive is not whole: an entry's data runs past the end of the file, a header is cut or damaged,
   * or the file ends without the end-of-archive blocks (a copy cut exactly between two entries). A one-line
   * description naming the byte offset: whatever came after it in the original archive is unknown, so no command
   * may take a tag missing from this tar for a tag gone from the registry.
   */
  readonly truncatedAt: string | undefined;
}

/**
 * 2: entries carry the mtime of `current/link` files; 3: a file without end-of-archive blocks is recorded as cut.
 * An index of an older version is rebuilt.
 */
const INDEX_VERSION = 3;
const BLOCK = 512;

function cString(buf: Buffer, start: number, length: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString('utf8', start, end === -1 || end > start + length ? start + length : end);
}

function parseSize(buf: Buffer): number {
  // GNU base-256 for sizes that do not fit 11 octal digits (files over 8 GiB).
  if (buf[124]! & 0x80) {
    let value = 0;
    for (let i = 125; i < 136; i++) value = value * 256 + buf[i]!;
    return value;
  }
  const text = cString(buf, 124, 12).trim();
  return text ? parseInt(text, 8) : 0;
}

/**
 * The header's `mtime` (ustar: 12 bytes of octal seconds at 136; GNU base-256 when the first byte's high bit is
 * set), or a pax `mtime` record (decimal seconds with a fraction: `mtime=1700000000.123456789`), which overrides it.
 * A time of 0 or before is no time: archivers that strip times (reproducible builds) write 0.
 */
function parseMtime(buf: Buffer, pax: Record<string, string>): number | undefined {
  let value: number;
  if (pax.mtime !== undefined) value = Number(pax.mtime);
  else if (buf[136]! & 0x80) {
    // Base-256, big-endian two's complement; a 0xff first byte is a negative (pre-1970) time.
    if (buf[136] === 0xff) return undefined;
    value = buf[136]! & 0x7f;
    for (let i = 137; i < 148; i++) value = value * 256 + buf[i]!;
  } else {
    const text = cString(buf, 136, 12).trim();
    value = text ? parseInt(text, 8) : 0;
  }
  // Past 8.64e12 s a JavaScript Date is invalid: garbage, not a time.
  return Number.isFinite(value) && value > 0 && value < 8.64e12 ? value : undefined;
}

/** Only a tag's `current/link` needs its time (the push time): the index stays small for the blob entries. */
function keepsTime(name: string): boolean {
  return name.endsWith('/current/link');
}

function checksumOk(buf: Buffer): boolean {
  const stored = parseInt(cString(buf, 148, 8).trim(), 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : buf[i]!;
  return stored === sum;
}

function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space === -1) break;
    const length = parseInt(data.toString('utf8', pos, space), 10);
    if (!length) break;
    const record = data.toString('utf8', space + 1, pos + length - 1);
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    pos += length;
  }
  return out;
}

function readAt(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let read = 0;
  while (read < length) {
    const n = readSync(fd, buf, read, length - read, offset + read);
    if (n === 0) break;
    read += n;
  }
  return read === length ? buf : buf.subarray(0, read);
}

/** Is this a tar (or a gzip'd one, which is refused)? */
export function sniffArchive(file: string): 'tar' | 'empty-tar' | 'gzip' | 'other' {
  const fd = openSync(file, 'r');
  try {
    const head = readAt(fd, 0, BLOCK);
    if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
    // A tar with no entries is its end-of-archive marker alone: zero blocks (`tar -cf x.tar --files-from /dev/null`).
    if (head.length === BLOCK && head.every((b) => b === 0)) return 'empty-tar';
    if (head.length === BLOCK && head.toString('latin1', 257, 262) === 'ustar') return 'tar';
    if (head.length === BLOCK && checksumOk(head)) return 'tar';
    return 'other';
  } finally {
    closeSync(fd);
  }
}

/** The part of an archive path before `repositories/` or `blobs/`: `docker/registry/v2/`, `v2/`, or nothing. */
function storagePrefix(paths: Iterable<string>): string | undefined {
  for (const p of paths) {
    for (const marker of ['repositories/', 'blobs/sha256/']) {
      for (let at = p.indexOf(marker); at !== -1; at = p.indexOf(marker, at + 1)) {
        if (at === 0 || p[at - 1] === '/') return p.slice(0, at);
      }
    }
  }
  return undefined;
}

function normalize(name: string): string {
  return name.replace(/^(\.\/)+/, '').replace(/^\/+/, '');
}

function scan(file: string): { raw: Map<string, TarEntry>; truncatedAt: string | undefined } {
  const fd = openSync(file, 'r');
  const size = fstatSync(fd).size;
  const raw = new Map<string, TarEntry>();
  const links: Array<[string, string, number | undefined]> = [];
  let truncatedAt: string | undefined;
  let pos = 0;
  // The end-of-archive marker: a zero block where a header would be. A file that runs out without one was cut.
  let ended = false;
  let lastHeader = 0;
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: Record<string, string> = {};
  try {
    while (pos + BLOCK <= size) {
      const header = readAt(fd, pos, BLOCK);
      lastHeader = pos;
      if (header.every((b) => b === 0)) {
        ended = true;
        break;
      }
      if (!checksumOk(header)) {
        truncatedAt = `a damaged header at byte ${pos}`;
        break;
      }
      const type = String.fromCharCode(header[156]!) || '0';
      const entrySize = pax.size !== undefined ? Number(pax.size) : parseSize(header);
      const dataStart = pos + BLOCK;
      const next = dataStart + Math.ceil(entrySize / BLOCK) * BLOCK;
      const ustar = header.toString('latin1', 257, 262) === 'ustar';
      const prefix = ustar ? cString(header, 345, 155) : '';
      const name = normalize(pax.path ?? longName ?? (prefix ? `${prefix}/${cString(header, 0, 100)}` : cString(header, 0, 100)));
      const linkName = normalize(pax.linkpath ?? longLink ?? cString(header, 157, 100));
      if (type === 'x' || type === 'L' || type === 'K') {
        const data = readAt(fd, dataStart, entrySize);
        if (type === 'x') pax = parsePax(data);
        else if (type === 'L') longName = cString(data, 0, data.length);
        else longLink = cString(data, 0, data.length);
        pos = next;
        continue;
      }
      if (type === '0' || type === '\0' || type === '7') {
        const truncated = dataStart + entrySize > size;
        const mtime = keepsTime(name) ? parseMtime(header, pax) : undefined;
        raw.set(name, { offset: dataStart, size: entrySize, ...(truncated ? { truncated: true } : {}), ...(mtime !== undefined ? { mtime } : {}) });
        if (truncated) truncatedAt = `it ends at byte ${size}, inside ${name} (${size - dataStart} of ${entrySize} bytes)`;
      } else if (type === '1') {
        links.push([name, linkName, keepsTime(name) ? parseMtime(header, pax) : undefined]);
      }
      pax = {};
      longName = undefined;
      longLink = undefined;
      pos = next;
    }
    if (!truncatedAt && !ended) {
      truncatedAt =
        pos > size
          ? `it ends at byte ${size}, inside the extended header at byte ${lastHeader}`
          : pos < size
            ? `it ends at byte ${size}, ${size - pos} bytes into the header at byte ${pos}`
            : `it ends at byte ${size} without the end-of-archive blocks`;
    }
  } finally {
    closeSync(fd);
  }
  // Hard links inside the archive point at an earlier entry: the same bytes. The link's own header has the time.
  for (const [name, target, mtime] of links) {
    const entry = raw.get(target);
    if (!entry) continue;
    const { mtime: _, ...bytes } = entry;
    raw.set(name, mtime !== undefined ? { ...bytes, mtime } : bytes);
  }
  return { raw, truncatedAt };
}

/**
 * The index of `file`, from `<file>.regmigrate-index` when it was made from this very tar (same size and
 * modification time), else by a pass over the headers, saved there for the next run when the directory allows.
 */
export function openTar(file: string): TarIndex {
  const kind = sniffArchive(file);
  if (kind === 'gzip') {
    throw new UsageError(`${file} is gzip-compressed: it cannot be read by byte range`, `decompress it first (gunzip -k ${file}); layers are gzip already, so tar -cf without -z loses nothing`, 'NOT_A_STORAGE');
  }
  if (kind === 'empty-tar') throw new UsageError(`${file}: an empty tar archive (no entries): no registry storage in it`, 'give the registry root or an uncompressed tar of it (tar -cf docker.tar docker)', 'NOT_A_STORAGE');
  if (kind !== 'tar') throw new UsageError(`${file}: not a directory nor a tar archive`, 'give the registry root or an uncompressed tar of it', 'NOT_A_STORAGE');
  const st = statSync(file);
  const cache = `${file}.regmigrate-index`;
  try {
    const saved = JSON.parse(readFileSync(cache, 'utf8')) as { version: number; size: number; mtimeMs: number; truncatedAt: string | null; entries: Array<[string, number, number, number, number?]> };
    if (saved.version === INDEX_VERSION && saved.size === st.size && saved.mtimeMs === st.mtimeMs) {
      return {
        file,
        entries: new Map(saved.entries.map(([p, offset, size, truncated, mtime]) => [p, { offset, size, ...(truncated ? { truncated: true } : {}), ...(mtime !== undefined ? { mtime } : {}) }])),
        truncatedAt: saved.truncatedAt ?? undefined,
      };
    }
  } catch {
    // no index yet, or an unreadable one: build it
  }
  const { raw, truncatedAt } = scan(file);
  const prefix = storagePrefix(raw.keys());
  if (prefix === undefined) throw new UsageError(`${file}: a tar, but not of a registry storage (no repositories/ or blobs/ inside)`, 'make it from the registry root: tar -cf docker.tar docker', 'NOT_A_STORAGE');
  const entries = new Map<string, TarEntry>();
  for (const [p, entry] of raw) if (p.startsWith(prefix)) entries.set(p.slice(prefix.length), entry);
  try {
    writeFileSync(
      cache,
      JSON.stringify({ version: INDEX_VERSION, size: st.size, mtimeMs: st.mtimeMs, truncatedAt: truncatedAt ?? null, entries: [...entries].map(([p, e]) => (e.mtime !== undefined ? [p, e.offset, e.size, e.truncated ? 1 : 0, e.mtime] : [p, e.offset, e.size, e.truncated ? 1 : 0])) }),
    );
  } catch {
    // a read-only place: the index lives for this run only
  }
  return { file, entries, truncatedAt };
}

/** Bytes of an entry, or why not. */
export function readTarEntry(index: TarIndex, fd: number, path: string, limit: number): { ok: true; bytes: Buffer } | { ok: false; code: string; size?: number } {
  const entry = index.entries.get(path);
  // Not in a tar that is cut: it may have been in the part that is missing, so it is not known to be absent.
  if (!entry) return { ok: false, code: index.truncatedAt ? 'ECUT' : 'ENOENT' };
  if (entry.truncated) return { ok: false, code: 'ETRUNCATED' };
  if (entry.size > limit) return { ok: false, code: 'ETOOBIG', size: entry.size };
  return { ok: true, bytes: readAt(fd, entry.offset, entry.size) };
}

import { constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { readSmall } from './source.js';
import { openTar, type TarIndex } from './tar-index.js';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { isDigest, splitDigest } from './digest.js';

/**
 * Where the parts of a distribution filesystem storage live (docs/registry-behaviour.md, Storage layout). `v2` is the
 * `docker/registry/v2` directory; the user may point us at it or at any parent down from the registry root.
 */
export interface StorageLayout {
  /** What the user gave, resolved. */
  readonly given: string;
  /** The `docker/registry/v2` directory. */
  readonly v2: string;
  readonly repositories: string;
  readonly blobs: string;
  /** Set when the storage is an uncompressed tar of one: paths under `v2` are then entries of the archive. */
  readonly tar?: TarIndex;
}

const SUFFIXES = ['docker/registry/v2', 'registry/v2', 'v2', ''];

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Accepts `/var/lib/registry`, `…/docker`, `…/docker/registry` or `…/docker/registry/v2`. */
export async function locateStorage(given: string): Promise<StorageLayout> {
  const resolved = path.resolve(given);
  let st;
  try {
    st = await stat(resolved);
  } catch {
    throw new UsageError(`${given}: no such file or directory`, 'give the registry root, e.g. /var/lib/registry', 'NOT_A_STORAGE');
  }
  if (st.isFile()) {
    // A tar of the storage (`tar -cf docker.tar docker`), read in place by byte range.
    const tar = openTar(resolved);
    const v2 = `${resolved}#`;
    return { given: resolved, v2, repositories: path.join(v2, 'repositories'), blobs: path.join(v2, 'blobs'), tar };
  }
  if (!st.isDirectory()) {
    throw new UsageError(`${given}: not a directory`, 'give the registry root, e.g. /var/lib/registry', 'NOT_A_STORAGE');
  }
  for (const suffix of SUFFIXES) {
    const v2 = suffix ? path.join(resolved, suffix) : resolved;
    if (suffix && !(await isDirectory(v2))) continue;
    const repositories = path.join(v2, 'repositories');
    const blobs = path.join(v2, 'blobs');
    if ((await isDirectory(repositories)) || (await isDirectory(blobs))) {
      if (!suffix && path.basename(v2) !== 'v2') continue;
      try {
        await access(v2, fsConstants.R_OK | fsConstants.X_OK);
      } catch {
        throw new UsageError(`${given}: storage is not readable by this user`, 'run as a user that can read the registry storage', 'NOT_A_STORAGE');
      }
      return { given: resolved, v2, repositories, blobs };
    }
  }
  const enclosing = await enclosingStorage(resolved);
  throw new UsageError(
    `${given}: not a registry storage (no docker/registry/v2/repositories or blobs below it)`,
    enclosing
      ? `it is inside one: give its root, ${enclosing}`
      : 'give the registry root (rootdirectory in the registry config, e.g. /var/lib/registry)',
    'NOT_A_STORAGE',
  );
}

/**
 * A path inside a storage (`…/v2/repositories`, `…/v2/repositories/library`): the registry root above it, for the
 * hint. A `v2` directory holding `repositories` or `blobs` marks the storage; its root is above `docker/registry`.
 */
async function enclosingStorage(resolved: string): Promise<string | undefined> {
  for (let dir = path.dirname(resolved); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (path.basename(dir) !== 'v2') continue;
    if (!(await isDirectory(path.join(dir, 'repositories'))) && !(await isDirectory(path.join(dir, 'blobs')))) continue;
    const suffix = `${path.sep}docker${path.sep}registry${path.sep}v2`;
    return dir.endsWith(suffix) ? dir.slice(0, -suffix.length) || path.sep : dir;
  }
  return undefined;
}

/** `blobs/<alg>/<2 hex>/<hex>/data`: the only place with the two-character fan-out. */
export function blobDataPath(layout: StorageLayout, digest: string): string {
  const [algorithm, hex] = splitDigest(digest);
  return path.join(layout.blobs, algorithm, hex.slice(0, 2), hex, 'data');
}

export type LinkRead = { ok: true; digest: string } | { ok: false; reason: 'absent' | 'invalid' | 'unreadable'; detail: string };

const MAX_LINK_BYTES = 1024;

/**
 * A link file holds exactly `sha256:<hex>` with no newline; older writers and hand edits add whitespace, which we
 * accept. Anything else is invalid. Symlinks are not followed: a link pointing outside the storage is refused.
 */
export function readLink(file: string, layout?: StorageLayout): LinkRead {
  const read = readSmall(layout, file, MAX_LINK_BYTES);
  if (!read.ok) {
    switch (read.code) {
      case 'ENOENT':
      case 'ENOTDIR':
        return { ok: false, reason: 'absent', detail: 'does not exist' };
      case 'ELOOP':
        return { ok: false, reason: 'invalid', detail: 'is a symbolic link (not followed)' };
      case 'ENOTFILE':
      case 'EISDIR':
        return { ok: false, reason: 'invalid', detail: 'is not a regular file' };
      case 'ETOOBIG':
        return { ok: false, reason: 'invalid', detail: `is ${read.size} bytes, not a digest` };
      case 'ETRUNCATED':
        return { ok: false, reason: 'unreadable', detail: 'is cut off: the tar ends inside it' };
      case 'ECUT':
        return { ok: false, reason: 'unreadable', detail: 'is not in the tar, which is cut short' };
      default:
        return { ok: false, reason: 'unreadable', detail: `cannot be read (${read.code})` };
    }
  }
  const text = read.bytes.toString('latin1').trim();
  if (!isDigest(text)) {
    const shown = JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
    return { ok: false, reason: 'invalid', detail: `holds ${shown}, not sha256:<64 hex>` };
  }
  return { ok: true, digest: text };
}

/** The registry's root directory (`rootdirectory`): `v2` less its `docker/registry/v2`, whatever level was given. */
export function registryRoot(layout: StorageLayout): string {
  const suffix = `${path.sep}docker${path.sep}registry${path.sep}v2`;
  return layout.v2.endsWith(suffix) ? layout.v2.slice(0, -suffix.length) || path.sep : layout.given;
}

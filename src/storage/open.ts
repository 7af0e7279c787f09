import { stat } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { openDirectoryStorage } from './directory.js';
import type { Storage } from './storage.js';
import { openTarStorage } from './tar.js';

/**
 * The storage the user named, whatever its kind: the registry root or any directory down to `docker/registry/v2`,
 * or an uncompressed tar of the storage (read in place). The only place that tells the backends apart.
 */
export async function openStorage(given: string): Promise<Storage> {
  const resolved = path.resolve(given);
  let st;
  try {
    st = await stat(resolved);
  } catch {
    throw new UsageError(`${given}: no such file or directory`, 'give the registry root, e.g. /var/lib/registry', 'NOT_A_STORAGE');
  }
  // A tar of the storage (`tar -cf docker.tar docker`), read in place by byte range.
  if (st.isFile()) return openTarStorage(resolved);
  if (!st.isDirectory()) throw new UsageError(`${given}: not a directory`, 'give the registry root, e.g. /var/lib/registry', 'NOT_A_STORAGE');
  return openDirectoryStorage(given, resolved);
}

import { stat } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { openDirectoryStorage } from './directory.js';
import { parseS3Url } from './s3/location.js';
import { openS3Storage, type S3ReachOptions } from './s3/open.js';
import type { Storage } from './storage.js';
import { openTarStorage } from './tar.js';

/** How to reach a storage that is not local: a bucket's endpoint, region and certificates. */
export type StorageOptions = S3ReachOptions;

export { s3EndpointProblem } from './s3/open.js';
export { s3RegionProblem } from './s3/region.js';

/** What is wrong with a bucket's location as given (`s3://BUCKET/ROOTDIRECTORY`), or undefined. */
export function objectStorageProblem(given: string): string | undefined {
  try {
    parseS3Url(given);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Whether `given` names a bucket (`s3://BUCKET/ROOTDIRECTORY`) rather than a local path. */
export function isObjectStorage(given: string): boolean {
  return given.startsWith('s3://');
}

/**
 * The storage the user named, whatever its kind: the registry root or any directory down to `docker/registry/v2`,
 * an uncompressed tar of the storage (read in place), or `s3://BUCKET/ROOTDIRECTORY` (the registry's s3 driver
 * `rootdirectory`, with or without `docker/registry/v2`). The only place that tells the backends apart.
 */
export async function openStorage(given: string, options: StorageOptions = {}): Promise<Storage> {
  if (isObjectStorage(given)) return openS3Storage(given, options);
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

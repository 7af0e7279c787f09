import { UsageError } from '../../errors.js';

export interface S3Location {
  readonly bucket: string;
  /** distribution's `rootdirectory` as given, without leading or trailing slashes ('' for the bucket's root). */
  readonly root: string;
  /** The key prefix of the storage's `docker/registry/v2/`, whether or not the URL named it. */
  readonly v2Prefix: string;
}

/**
 * `s3://BUCKET/ROOTDIRECTORY`, where ROOTDIRECTORY is the s3 driver's `rootdirectory` (the driver writes keys
 * under it without its leading slash: registry/storage/driver/s3-aws/s3.go, s3Path) and may go on down to
 * `docker/registry/v2`, as a directory root may.
 */
export function parseS3Url(text: string): S3Location {
  const match = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(text);
  // Bucket names as AWS allows them (3–63 of a-z 0-9 . -); S3-compatible stores accept the same or more.
  if (!match || !/^[A-Za-z0-9._-]{1,255}$/.test(match[1]!)) {
    throw new UsageError(`${text}: not an S3 location`, 'give it as s3://BUCKET or s3://BUCKET/ROOTDIRECTORY (the registry s3 driver\'s rootdirectory)');
  }
  const root = (match[2] ?? '').replace(/\/{2,}/g, '/').replace(/^\/+|\/+$/g, '');
  const base = root.replace(/(^|\/)docker\/registry\/v2$/, '');
  return { bucket: match[1]!, root: base, v2Prefix: `${base ? `${base}/` : ''}docker/registry/v2/` };
}

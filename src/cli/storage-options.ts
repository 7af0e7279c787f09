import type { Command } from 'commander';
import { isObjectStorage, type StorageOptions } from '../storage/open.js';
import { parseS3Url } from '../storage/s3/location.js';
import { s3EndpointProblem } from '../storage/s3/open.js';
import type { OptionProblems } from './options.js';

/** How to reach a bucket: `--s3-endpoint`, `--s3-region`, and `--ca-file` for the endpoint's certificate. */
export interface StorageFlags {
  s3Endpoint?: string;
  s3Region?: string;
  caFile?: string;
}

/** A region as AWS and S3-compatible stores name them (`eu-west-1`, `us-gov-west-1`, MinIO's `us-east-1`, RGW zonegroups). */
const REGION_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

export function s3RegionProblem(value: string): string | undefined {
  return REGION_RE.test(value) ? undefined : 'is not a region name (like eu-west-1)';
}

/**
 * The source options of every command that reads a storage. Credentials are never options: the bucket is read with
 * what the AWS credential chain finds (docs/s3.md). `--ca-file` is the destination's too where a command has one.
 */
export function addStorageOptions(command: Command): Command {
  command
    .option('--s3-endpoint <url>', 'with an s3:// source: the S3-compatible endpoint (MinIO, Ceph RGW, GCS); path-style requests')
    .option('--s3-region <region>', 'with an s3:// source: the bucket\'s region (default: AWS_REGION, the profile\'s, us-east-1)');
  if (!command.options.some((o) => o.long === '--ca-file')) command.option('--ca-file <file>', 'with an s3:// source: extra CA certificate(s) to trust for the endpoint (PEM)');
  return command;
}

/** The options as the storage takes them, each problem added (checked before any I/O). */
export function normalizeStorageOptions(root: string, flags: StorageFlags, problems: OptionProblems, env: NodeJS.ProcessEnv): StorageOptions | undefined {
  if (!isObjectStorage(root)) {
    if (flags.s3Endpoint !== undefined || flags.s3Region !== undefined) problems.add(`--s3-endpoint and --s3-region go with an s3:// source, not ${root}`);
    return undefined;
  }
  try {
    parseS3Url(root);
  } catch (err) {
    problems.add((err as Error).message);
  }
  if (flags.s3Endpoint !== undefined) {
    const problem = s3EndpointProblem(flags.s3Endpoint);
    if (problem) problems.add(`--s3-endpoint "${flags.s3Endpoint}" ${problem}`);
  }
  if (flags.s3Region !== undefined) {
    const problem = s3RegionProblem(flags.s3Region);
    if (problem) problems.add(`--s3-region "${flags.s3Region}" ${problem}`);
  }
  return { endpoint: flags.s3Endpoint, region: flags.s3Region, caFile: flags.caFile, env };
}

import type { Command } from 'commander';
import { isObjectStorage, objectStorageProblem, s3EndpointProblem, s3RegionProblem, type StorageOptions } from '../storage/open.js';
import type { OptionProblems } from './options.js';

/** The `[root]` argument of every command that reads a storage, in its help. */
export const ROOT_ARGUMENT = 'registry storage root (e.g. /var/lib/registry), its docker/registry/v2 directory, an uncompressed tar of it, or s3://BUCKET/ROOTDIRECTORY';

/** How to reach a bucket: `--s3-endpoint`, `--s3-region`, and `--ca-file` for the endpoint's certificate. */
export interface StorageFlags {
  s3Endpoint?: string;
  s3Region?: string;
  caFile?: string;
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
  const where = objectStorageProblem(root);
  if (where) problems.add(where);
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

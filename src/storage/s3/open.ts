import type { Dispatcher } from 'undici';
import { UsageError } from '../../errors.js';
import { S3SourceClient } from './client.js';
import { awsCredentialChain, type CredentialSource } from './credentials.js';
import { createS3Dispatcher, readS3CaBundles } from './dispatcher.js';
import { parseS3Url, type S3Location } from './location.js';
import { resolveS3Region } from './region.js';
import { S3Storage } from './storage.js';
import { TIMEOUT_SECONDS } from '../../tuning.js';
import type { StopSignals } from '../../util/stop.js';
import { DEFAULT_S3_RETRY } from './http.js';

/** How to reach a bucket: what `--s3-endpoint`, `--s3-region` and `--ca-file` (or their config keys) say. */
export interface S3ReachOptions {
  /** Path-style requests to this URL (MinIO, Ceph RGW, GCS); without it, AWS S3 in the region. */
  readonly endpoint?: string | undefined;
  readonly region?: string | undefined;
  /** PEM certificates to trust for the endpoint, in addition to AWS_CA_BUNDLE and the system's. */
  readonly caFile?: string | undefined;
  readonly env?: NodeJS.ProcessEnv;
  /**
   * The run's stop signals (util/stop.ts): at `stop` a failed read is not retried and a backoff wait ends (the read
   * is Interrupted); at `abort` reads under way are cut. Without them a stopping run waits out a SlowDown storm.
   */
  readonly signals?: StopSignals | undefined;
}

/** What `--s3-endpoint` may be: an http(s) URL with no query, or why not. */
export function s3EndpointProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a URL (like https://minio.example.com:9000)';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'is not an http:// or https:// URL';
  if (url.search || url.hash || url.username || url.password) return 'must be a plain URL, without a query, fragment or credentials';
  return undefined;
}

/**
 * One credential chain and one connection pool per store for the whole process: a command opens its storage more
 * than once (a check before the destination is asked anything, then the run), and the chain may ask STS or the
 * instance metadata service each time it is made.
 */
const chains = new WeakMap<NodeJS.ProcessEnv, CredentialSource>();
const pools = new Map<string, Dispatcher>();

/**
 * `s3://BUCKET/ROOTDIRECTORY`, checked before any work: the bucket answers a listing with these credentials, and
 * holds a registry storage (`docker/registry/v2/repositories/` or `blobs/`) under the root. Every refusal is one
 * line naming the bucket (errors.ts S3Error, exit 2).
 */
export async function openS3Storage(url: string, options: S3ReachOptions = {}): Promise<S3Storage> {
  const env = options.env ?? process.env;
  const location = parseS3Url(url);
  const region = resolveS3Region(options.region, env).region;
  // Read even for an http:// endpoint (a bundle that cannot be read is still a mistake to name), but only trusted where
  // TLS is spoken: the secure context built from the system's roots and a bundle costs ~130 ms of CPU per run.
  const bundles = readS3CaBundles(options.caFile, env);
  const ca = options.endpoint && new URL(options.endpoint).protocol === 'http:' ? [] : bundles;
  const poolKey = `${options.endpoint ?? region}|${ca.join('')}`;
  let dispatcher = pools.get(poolKey);
  if (!dispatcher) pools.set(poolKey, (dispatcher = createS3Dispatcher({ timeoutMs: TIMEOUT_SECONDS * 1000, ca })));
  let credentials = chains.get(env);
  if (!credentials) chains.set(env, (credentials = awsCredentialChain(env)));
  const signals = options.signals;
  const client = new S3SourceClient({
    bucket: location.bucket,
    endpoint: options.endpoint,
    region,
    credentials,
    dispatcher,
    ...(signals ? { retry: { ...DEFAULT_S3_RETRY, signal: signals.stop }, abort: signals.abort } : {}),
  });
  await checkStorage(client, location, url);
  return new S3Storage(client, location, options.endpoint);
}

/** The root holds `docker/registry/v2/` with `repositories/` or `blobs/` in it; else what it does hold, for the hint. */
async function checkStorage(client: S3SourceClient, location: S3Location, url: string): Promise<void> {
  const top = await client.listPage({ prefix: location.v2Prefix, delimiter: '/' });
  if (top.prefixes.some((p) => p === `${location.v2Prefix}repositories/` || p === `${location.v2Prefix}blobs/`)) return;
  const root = location.root ? `${location.root}/` : '';
  const beside = await client.listPage({ prefix: root, delimiter: '/', maxKeys: 20 });
  const names = [...beside.prefixes, ...beside.objects.map((o) => o.key)].map((k) => k.slice(root.length));
  throw new UsageError(
    `${url}: not a registry storage (no ${location.v2Prefix}repositories/ or blobs/ in bucket ${location.bucket})`,
    names.length === 0
      ? `s3://${location.bucket}/${root} is empty: give the registry's s3 rootdirectory, as s3://${location.bucket}/ROOTDIRECTORY`
      : `s3://${location.bucket}/${root} holds ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''}: give the registry's s3 rootdirectory, as s3://${location.bucket}/ROOTDIRECTORY`,
    'NOT_A_STORAGE',
  );
}

import { readFileSync } from 'node:fs';
import { createSecureContext, rootCertificates } from 'node:tls';
import { Agent } from 'undici';
import { UsageError } from '../../errors.js';
import { CONNECT_TIMEOUT_MS, KEEP_ALIVE_MS, S3_CONNECTIONS } from '../../tuning.js';

export interface S3DispatcherOptions {
  /** Connections kept to the store (default S3_CONNECTIONS). */
  readonly connections?: number;
  /** Milliseconds without response headers or body bytes before a connection counts as dead. */
  readonly timeoutMs: number;
  /** PEM certificates trusted in addition to the system's (`--ca-file`, AWS_CA_BUNDLE). */
  readonly ca?: readonly string[];
}

/**
 * The certificates a private endpoint needs: `--ca-file`, and the bundle AWS tools take from AWS_CA_BUNDLE. Both
 * are added to the system's roots rather than replacing them, so a bundle made for a private endpoint does not cut
 * off AWS STS or IMDS.
 */
export function readS3CaBundles(caFile: string | undefined, env: NodeJS.ProcessEnv): string[] {
  const sources: Array<readonly [string, string]> = [];
  if (caFile) sources.push(['--ca-file', caFile]);
  if (env.AWS_CA_BUNDLE) sources.push(['AWS_CA_BUNDLE', env.AWS_CA_BUNDLE]);
  return sources.map(([from, file]) => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`${from} ${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  });
}

/** The connection pool for one store: keep-alive connections, many at once (listings and small GETs dominate a scan). */
export function createS3Dispatcher(options: S3DispatcherOptions): Agent {
  const ca = options.ca ?? [];
  // One secure context for every connection: building one from ~140 root certificates per connection is slow.
  const secureContext = ca.length > 0 ? createSecureContext({ ca: [...rootCertificates, ...ca] }) : undefined;
  return new Agent({
    connections: options.connections ?? S3_CONNECTIONS,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    keepAliveTimeout: KEEP_ALIVE_MS,
    connect: { timeout: Math.min(options.timeoutMs, CONNECT_TIMEOUT_MS), ...(secureContext ? { secureContext } : {}) },
  });
}

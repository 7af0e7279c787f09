import { readFileSync } from 'node:fs';
import { createSecureContext, rootCertificates } from 'node:tls';
import { Agent } from 'undici';
import { UsageError } from '../errors.js';
import { CONNECT_TIMEOUT_MS, CONNECTIONS_PER_HOST, KEEP_ALIVE_MS } from '../tuning.js';

export interface TlsOptions {
  /** Skip certificate verification (`--insecure`). */
  readonly insecure: boolean;
  /** Extra CA bundle (`--ca-file`), trusted in addition to the system CAs. */
  readonly caFile: string | undefined;
}

export interface DispatcherOptions extends TlsOptions {
  /** Milliseconds to wait for response headers or between body bytes before calling the connection dead. */
  readonly timeoutMs: number;
  readonly connections?: number;
}

export function readCaFile(caFile: string): string {
  try {
    return readFileSync(caFile, 'utf8');
  } catch (err) {
    throw new UsageError(`--ca-file ${caFile}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** One connection pool per run; TLS verification stays on unless `--insecure`. */
export function createDispatcher(options: DispatcherOptions): Agent {
  // One secure context for every connection: building one from ~140 root certificates per connection is slow.
  const secureContext = options.caFile ? createSecureContext({ ca: [...rootCertificates, readCaFile(options.caFile)] }) : undefined;
  return new Agent({
    connections: options.connections ?? CONNECTIONS_PER_HOST,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    keepAliveTimeout: KEEP_ALIVE_MS,
    connect: {
      timeout: Math.min(options.timeoutMs, CONNECT_TIMEOUT_MS),
      rejectUnauthorized: !options.insecure,
      ...(secureContext ? { secureContext } : {}),
    },
  });
}

import type { Command } from 'commander';
import { text } from 'node:stream/consumers';
import { parseEndpoint, type Endpoint } from '../registry/endpoint.js';
import type { DestinationOptions } from '../destination/destination.js';
import { parseSize } from '../util/format.js';
import type { CliContext } from './context.js';
import { OptionProblems, parseWholeOption } from './options.js';
import { UsageError } from '../errors.js';
import { readFileSync } from 'node:fs';
import { writeJsonLog } from '../report/log.js';
import { CONTACT_TIMEOUT_MS, RETRY_ATTEMPTS, RETRY_BASE_DELAY_MS, RETRY_MAX_DELAY_MS, TIMEOUT_SECONDS } from '../tuning.js';

export interface DestinationFlags {
  to?: string;
  username?: string;
  passwordStdin?: boolean;
  dockerConfig?: string;
  insecure?: boolean;
  caFile?: string;
  timeout?: string;
  retries?: string;
  chunkSize?: string;
  limitRate?: string;
}

/** The options every command that talks to a destination shares; `uploads`: those only a command that uploads takes. */
export function addDestinationOptions(command: Command, uploads = true): Command {
  command
    .option('--to <host>', 'destination registry or Harbor: host[:port], https://host or http://host (required)')
    .option('--username <user>', 'destination user (robot accounts: robot$name); password from --password-stdin')
    .option('--password-stdin', 'read the password from standard input')
    .option('--docker-config <path>', 'docker config.json (or its directory) to take credentials from')
    .option('--insecure', 'do not verify the destination TLS certificate')
    .option('--ca-file <file>', 'extra CA certificate(s) to trust for the destination, and for an s3:// source\'s endpoint (PEM)')
    .option('--timeout <seconds>', `seconds without progress before a connection counts as dead (default ${TIMEOUT_SECONDS}; the first contact waits at most ${CONTACT_TIMEOUT_MS / 1000})`)
    .option('--retries <n>', `attempts for a transient failure (429, 5xx, reset) before giving up (default ${RETRY_ATTEMPTS})`);
  if (!uploads) return command;
  return command
    .option('--chunk-size <size>', 'upload blobs in chunks of this size (e.g. 16MiB), for proxies with body limits')
    .option('--limit-rate <rate>', 'cap the upload bandwidth of the whole run (e.g. 50MiB/s; per shard with --shards)');
}

export interface NormalizedDestination {
  readonly endpoint: Endpoint | undefined;
  readonly options: Omit<DestinationOptions, 'endpoint' | 'credentials'> & { passwordStdin: boolean; username: string | undefined; dockerConfig: string | undefined };
}

/**
 * What is wrong with a `--ca-file`, if anything. Node's TLS takes a file without a PEM certificate silently and then
 * fails the handshake as if no CA had been given: a wrong file (a key, a DER file, an empty one) is named up front.
 */
function caFileProblem(file: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'latin1');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    return code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not a PEM file' : `cannot be read (${code})`;
  }
  return text.includes('-----BEGIN CERTIFICATE-----') ? undefined : 'holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)';
}

export function normalizeDestination(flags: DestinationFlags, problems: OptionProblems): NormalizedDestination {
  let endpoint: Endpoint | undefined;
  if (flags.to === undefined) problems.add('--to is required: the destination registry or Harbor (host[:port], https://host), on the command line or as destination.to in --config');
  else {
    try {
      endpoint = parseEndpoint(flags.to);
    } catch (err) {
      problems.add((err as Error).message);
    }
  }
  let chunkSize: number | undefined;
  if (flags.chunkSize !== undefined) {
    chunkSize = parseSize(flags.chunkSize);
    if (chunkSize === undefined || chunkSize < 1024 * 1024) problems.add(`--chunk-size must be a size of at least 1MiB (like 16MiB), not "${flags.chunkSize}"`);
  }
  if (flags.caFile !== undefined) {
    const problem = caFileProblem(flags.caFile);
    if (problem) problems.add(`--ca-file ${flags.caFile}: ${problem}`);
  }
  if (flags.passwordStdin && !flags.username) problems.add('--password-stdin needs --username');
  if (flags.username && !flags.passwordStdin) problems.add('--username needs --password-stdin (a password on the command line would show in the process list)');
  let limitRate: number | undefined;
  if (flags.limitRate !== undefined) {
    limitRate = parseSize(flags.limitRate.replace(/\/s$/i, ''));
    if (limitRate === undefined || limitRate < 1024) problems.add(`--limit-rate must be a rate of at least 1KiB/s (like 50MiB/s), not "${flags.limitRate}"`);
  }
  const timeoutSeconds = parseWholeOption('timeout', flags.timeout, TIMEOUT_SECONDS, problems);
  const attempts = parseWholeOption('retries', flags.retries, RETRY_ATTEMPTS, problems);
  return {
    endpoint,
    options: {
      insecure: flags.insecure ?? false,
      caFile: flags.caFile,
      timeoutMs: timeoutSeconds * 1000,
      chunkSize,
      ...(limitRate !== undefined ? { limitRate } : {}),
      retry: { attempts, baseDelayMs: RETRY_BASE_DELAY_MS, maxDelayMs: RETRY_MAX_DELAY_MS },
      passwordStdin: flags.passwordStdin ?? false,
      username: flags.username,
      dockerConfig: flags.dockerConfig,
    },
  };
}

/** Reads the password from stdin (one line; the trailing newline is not part of it). */
export async function buildDestinationOptions(normalized: NormalizedDestination, ctx: CliContext): Promise<DestinationOptions> {
  const { endpoint, options } = normalized;
  if (!endpoint) throw new UsageError('--to is required');
  let password: string | undefined;
  if (options.passwordStdin) {
    password = (await text(ctx.stdin)).replace(/\r?\n$/, '');
    if (password === '') throw new UsageError('--password-stdin: standard input was empty');
  }
  return {
    endpoint,
    credentials: {
      username: options.username,
      password,
      env: ctx.env,
      dockerConfig: options.dockerConfig,
      onWarning: (message) => ctx.stderr.write(`regmigrate: warning: ${message}\n`),
    },
    insecure: options.insecure,
    caFile: options.caFile,
    timeoutMs: options.timeoutMs,
    chunkSize: options.chunkSize,
    ...(options.limitRate !== undefined ? { limitRate: options.limitRate } : {}),
    ...(options.retry ? { retry: options.retry } : {}),
    onNotice: ({ level, message }) => {
      if (ctx.logFormat === 'json') writeJsonLog(ctx.stderr, { level, event: 'notice', message });
      else ctx.stderr.write(`regmigrate: ${message}\n`);
    },
  };
}

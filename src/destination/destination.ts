import { setMaxListeners } from 'node:events';
import { setTimeout as wait } from 'node:timers/promises';
import type { Agent } from 'undici';
import { DestinationError, errorMessage } from '../errors.js';
import { HarborClient } from '../harbor/client.js';
import { DEFAULT_RETRY, RegistryClient, type RetryPolicy } from '../registry/client.js';
import type { Credentials } from '../registry/credentials.js';
import type { Endpoint } from '../registry/endpoint.js';
import { resolveCredentials, type CredentialSources } from './credentials.js';
import { createDispatcher, type TlsOptions } from './dispatcher.js';
import { RegistryError } from '../registry/errors.js';
import type { SystemInfo } from '../harbor/schema.js';
import { RateLimiter } from '../util/rate-limit.js';
import { createBudget, DEFAULT_BUDGET, type BudgetSizes, type DestinationBudget } from './budget.js';
import { DestinationHealth } from './health.js';
import type { StopSignals } from '../util/stop.js';
import type { OnNotice } from '../util/notice.js';
import { CONTACT_TIMEOUT_MS, uploadBlockBytes } from '../tuning.js';

export interface DestinationOptions extends TlsOptions {
  readonly endpoint: Endpoint;
  readonly credentials: CredentialSources;
  readonly timeoutMs: number;
  readonly chunkSize: number | undefined;
  readonly retry?: RetryPolicy;
  /** `--limit-rate`, bytes per second for all uploads of the run together. */
  readonly limitRate?: number;
  /** SIGINT/SIGTERM: retries and their waits end at `stop`, requests under way at `abort`. */
  readonly stop?: StopSignals;
  /** A line for the operator while the first contact is retried (a registry still starting, a flaky link). */
  readonly onNotice?: OnNotice;
  /** Uploads and requests in flight at once for the whole run (a transfer's `--concurrency`, `--max-requests`); defaults otherwise. */
  readonly budget?: BudgetSizes;
}

export interface Destination {
  readonly endpoint: Endpoint;
  readonly client: RegistryClient;
  /** Set when the destination is Harbor (`/api/v2.0/systeminfo` answers with an `auth_mode`). */
  readonly harbor: HarborClient | undefined;
  readonly harborVersion: string | undefined;
  readonly harborInfo: SystemInfo | undefined;
  /** For transports that run another program (skopeo's authfile). Never printed. */
  readonly credentials: Credentials | undefined;
  readonly tls: TlsOptions;
  /** The shared bandwidth cap, when one is set. */
  readonly limiter: RateLimiter | undefined;
  /** What the run keeps in flight here, shared by all its batches and stages. */
  readonly budget: DestinationBudget;
  /** Whether it still answers: once it is declared gone, nothing more is sent (health.ts). */
  readonly health: DestinationHealth;
  close(): Promise<void>;
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|DEPTH_ZERO|HOSTNAME/;


/**
 * Credentials, connection pool, a `GET /v2/` and Harbor detection: everything that must work before any work
 * starts. Failures here are exit 3 (unreachable or refused), with the reason in one line.
 */
export async function connectDestination(options: DestinationOptions): Promise<Destination> {
  const credentials = await resolveCredentials(options.endpoint.host, options.credentials);
  const sizes = options.budget ?? DEFAULT_BUDGET;
  const budget = createBudget(sizes);
  const health = new DestinationHealth({ host: options.endpoint.host, next: budget });
  // A stopping run, or a destination gone: a `Retry-After` holds nothing back any more, and retries end.
  const stopped = options.stop ? AbortSignal.any([options.stop.stop, health.signal]) : health.signal;
  // Every backoff wait under way listens on it: hundreds at once are normal, not a leak.
  setMaxListeners(0, stopped);
  stopped.addEventListener('abort', () => budget.lift(), { once: true });
  // A connection for every slot the budgets may grow to: a request beyond the pool would wait inside undici, unseen.
  const connections = Math.max(32, capOf(sizes.requests) + capOf(sizes.uploads));
  const dispatcher: Agent = createDispatcher({ insecure: options.insecure, caFile: options.caFile, timeoutMs: options.timeoutMs, connections });
  const limiter = options.limitRate !== undefined ? new RateLimiter(options.limitRate) : undefined;
  const retry = budgetedRetry(options.retry ?? DEFAULT_RETRY, budget, stopped);
  const client = new RegistryClient({
    endpoint: options.endpoint,
    credentials,
    dispatcher,
    feedback: health,
    ...(limiter ? { throttle: limiter } : {}),
    ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
    // Two blocks per upload that may run at once, within tuning.ts UPLOAD_BUFFER_BYTES.
    blockBytes: uploadBlockBytes(capOf(sizes.uploads)),
    retry,
    ...(options.stop ? { abort: options.stop.abort } : {}),
  });
  const close = async (): Promise<void> => {
    // A pending `Retry-After` hold must not keep a finished run's process alive.
    budget.lift();
    await dispatcher.close().catch(() => undefined);
  };
  // Retries of the first contact take seconds of silence: say once that they are happening, and why.
  const attempts = options.retry?.attempts ?? DEFAULT_RETRY.attempts;
  const contactMs = Math.min(CONTACT_TIMEOUT_MS, options.timeoutMs);
  let told = false;
  const ping = async (): Promise<void> => {
    try {
      await client.ping(contactMs);
    } catch (err) {
      if (!told && attempts > 1 && err instanceof RegistryError && err.failure === 'transient') {
        told = true;
        options.onNotice?.({ level: 'warn', message: `${options.endpoint.origin} did not answer (${err.message}); retrying, up to ${attempts} attempts in all, each waiting up to ${contactMs / 1000} s for an answer` });
      }
      throw err;
    }
  };
  try {
    await client.retrying(ping);
  } catch (err) {
    await close();
    throw explainConnectFailure(options.endpoint, err, credentials !== undefined);
  }
  const harborClient = new HarborClient(options.endpoint, credentials, dispatcher, retry, { feedback: health, ...(options.stop ? { abort: options.stop.abort } : {}) });
  let info: SystemInfo | undefined;
  try {
    info = await harborClient.systemInfo();
  } catch (err) {
    // Not a 404: a Harbor that failed to answer even after retries. Going on as if it were a plain registry would
    // create no projects and delete manifests instead of tags.
    await close();
    throw new DestinationError('DESTINATION_UNREACHABLE', `${options.endpoint.origin}: Harbor's /api/v2.0/systeminfo did not answer: ${errorMessage(err)}`, 'try again when Harbor is healthy', err);
  }
  health.arm();
  // Harbor tells its version only to a logged-in caller; `auth_mode` is there for anyone.
  const harborVersion = info ? (info.harbor_version ?? 'version hidden from anonymous callers') : undefined;
  return {
    endpoint: options.endpoint,
    client,
    harbor: info ? harborClient : undefined,
    harborInfo: info,
    harborVersion,
    credentials,
    tls: { insecure: options.insecure, caFile: options.caFile },
    limiter,
    budget,
    health,
    close,
  };
}

function capOf(limits: BudgetSizes['requests']): number {
  return typeof limits === 'number' ? limits : limits.cap;
}

/**
 * The retry policy of every request to the destination: between attempts the budget parks the step's slot, and
 * the retry goes when a `Retry-After` has passed and the (halved) budget has room for it (destination/budget.ts).
 */
function budgetedRetry(policy: RetryPolicy, budget: DestinationBudget, signal: AbortSignal | undefined): RetryPolicy {
  const given = policy.wait;
  // The policy's own wait when it has one (tests record delays); else a sleep that a stopping run ends at once.
  const sleep = given ?? ((ms: number) => wait(ms, undefined, signal ? { signal } : {}).catch(() => undefined));
  return { ...policy, ...(signal ? { signal } : {}), wait: (ms) => budget.pauseForRetry(ms, sleep, signal) };
}

function explainConnectFailure(endpoint: Endpoint, err: unknown, haveCredentials: boolean): Error {
  if (err instanceof DestinationError) return err;
  if (err instanceof RegistryError) {
    if (err.failure === 'auth') {
      return new DestinationError(
        'AUTH_REFUSED',
        `${endpoint.host} refused access: ${err.message}`,
        haveCredentials ? 'check the username and password' : 'give credentials: --username with --password-stdin, REGMIGRATE_USERNAME/REGMIGRATE_PASSWORD, or docker login',
      );
    }
    const cause = (err.cause as { cause?: { code?: string } } | undefined)?.cause?.code ?? (err.cause as { code?: string } | undefined)?.code ?? '';
    // An https:// URL to a server that speaks plain HTTP: OpenSSL reads the HTTP reply as a TLS record and says
    // `ERR_SSL_WRONG_VERSION_NUMBER … ssl3_record.c:350`. A docker-registry without `http.tls` in its config is such
    // a server: distribution's registry/registry.go (ListenAndServe) wraps its listener in TLS only when it is set.
    if (endpoint.secure && /WRONG_VERSION_NUMBER|wrong version number/i.test(`${cause} ${err.message}`)) {
      return new DestinationError('DESTINATION_UNREACHABLE', `${endpoint.origin} speaks plain HTTP, not HTTPS`, `use --to http://${endpoint.host}`, err);
    }
    // The reverse: plain HTTP (http://, or a loopback host, which defaults to it) to a server that speaks HTTPS. Go's
    // TLS server answers it itself, src/net/http/server.go (conn.serve, on a tls.RecordHeaderError that looks like
    // HTTP): `HTTP/1.0 400 Bad Request … Client sent an HTTP request to an HTTPS server.` — docker-registry with
    // `http.tls`; nginx in front of Harbor answers `400 The plain HTTP request was sent to HTTPS port`.
    if (!endpoint.secure && err.status === 400 && /HTTP request to an HTTPS server|plain HTTP request was sent to HTTPS port/i.test(err.message)) {
      return new DestinationError('DESTINATION_UNREACHABLE', `${endpoint.origin} speaks HTTPS, not plain HTTP`, `use --to https://${endpoint.host}`, err);
    }
    if (TLS_CODES.test(cause) || TLS_CODES.test(err.message)) {
      return new DestinationError(
        'DESTINATION_UNREACHABLE',
        `${endpoint.origin}: TLS certificate not trusted (${cause || err.message})`,
        'give the CA that signed it with --ca-file, or --insecure to skip verification',
        err,
      );
    }
    if (err.status === undefined) {
      return new DestinationError('DESTINATION_UNREACHABLE', `${endpoint.origin} is unreachable: ${err.message}`, 'check --to, the network and that the registry runs', err);
    }
    // A registry answers `GET /v2/` with 200 or 401; 404 is a server that is none (docs/registry-behaviour.md, Push).
    if (err.status === 404) {
      return new DestinationError('DESTINATION_UNREACHABLE', `${endpoint.origin} is not a registry: ${err.message}`, 'check --to: it must be the registry (Harbor) host, whose GET /v2/ answers 200 or 401', err);
    }
    return new DestinationError('DESTINATION_UNREACHABLE', `${endpoint.origin} is not a working registry: ${err.message}`, 'check --to: it must be the registry (Harbor) host', err);
  }
  return new DestinationError('DESTINATION_UNREACHABLE', `${endpoint.origin}: ${errorMessage(err)}`);
}

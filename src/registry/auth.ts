import { request, type Dispatcher } from 'undici';
import * as z from 'zod';
import { DestinationError } from '../errors.js';
import { parseChallenge, type Challenge } from './challenge.js';
import type { Credentials } from './credentials.js';
import type { Endpoint } from './endpoint.js';
import { classifyNetworkError, classifyStatus, parseErrorBody, RegistryError } from './errors.js';
import { TOKEN_REFRESH_MARGIN_MS } from '../tuning.js';

/** Token response (docs/registry-behaviour.md, Auth). Harbor sends `access_token: ""`: prefer a non-empty `token`. */
const TokenResponse = z.looseObject({
  token: z.string().optional(),
  access_token: z.string().optional(),
  expires_in: z.number().optional(),
  issued_at: z.string().optional(),
});

interface CachedToken {
  readonly value: string;
  /** The token's `access` claim, when it is a JWT that has one: what the token service really granted. */
  readonly access: readonly GrantedAccess[] | undefined;
  /** Refresh after this instant (ms since epoch), well before the token really expires. */
  readonly refreshAt: number;
}

/** One entry of a registry token's `access` claim (distribution's token spec; Harbor's src/pkg/token/claims/v2). */
export interface GrantedAccess {
  readonly type: string;
  readonly name: string;
  readonly actions: readonly string[];
}

const AccessClaim = z.looseObject({
  access: z.array(z.looseObject({ type: z.string(), name: z.string(), actions: z.array(z.string()).nullable().optional() })).nullable().optional(),
});

/**
 * The `access` claim of a JWT, read without checking its signature: the registry checks that; we only want to know
 * what was granted. Harbor replaces the requested actions by what the account holds (src/core/service/token/
 * creator.go), so this says, before any upload, whether a push can work. Undefined for opaque tokens.
 */
export function decodeAccess(token: string): GrantedAccess[] | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  try {
    const parsed = AccessClaim.safeParse(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')));
    if (!parsed.success || !parsed.data.access) return undefined;
    return parsed.data.access.map((a) => ({ type: a.type, name: a.name, actions: a.actions ?? [] }));
  } catch {
    return undefined;
  }
}

export function basicAuthorization(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

/** Authenticator.authorizationNow's answer when only the token service can tell. */
export const TOKEN_NEEDED = Symbol('token needed');

/**
 * Answers "what Authorization header goes on a request for these scopes": none until the registry has
 * challenged us, then Basic, or a Bearer token per scope set, cached until shortly before it expires.
 * Harbor's tokens live 30 minutes by default and a migration runs for hours: refresh is routine here.
 */
export class Authenticator {
  readonly #credentials: Credentials | undefined;
  readonly #dispatcher: Dispatcher;
  #challenge: Challenge | undefined;
  readonly #tokens = new Map<string, CachedToken>();
  readonly #pending = new Map<string, Promise<CachedToken>>();
  /** Token requests made: tests count them. */
  tokenRequests = 0;

  readonly #endpoint: Endpoint | undefined;
  /** Cuts a token fetch under way, as it cuts the request waiting for the token. */
  readonly #abort: AbortSignal | undefined;

  constructor(credentials: Credentials | undefined, dispatcher: Dispatcher, endpoint?: Endpoint, abort?: AbortSignal) {
    this.#credentials = credentials;
    this.#dispatcher = dispatcher;
    this.#endpoint = endpoint;
    this.#abort = abort;
  }

  /**
   * Basic credentials go to a token realm only over https, or over http to the destination's own host when the
   * destination itself is plain http (a test or lab registry). A realm elsewhere in clear would read the password.
   */
  #mayReceiveCredentials(realm: URL): boolean {
    if (realm.protocol === 'https:') return true;
    const endpoint = this.#endpoint;
    return endpoint !== undefined && !endpoint.secure && realm.hostname === new URL(endpoint.origin).hostname;
  }

  get scheme(): string | undefined {
    return this.#challenge?.scheme;
  }

  /**
   * Learns from a 401's `WWW-Authenticate`. A Basic challenge after Bearer worked is Harbor refusing an expired
   * token (it answers `Basic realm="harbor"` then): we keep Bearer and fetch a new token.
   */
  learn(header: string | undefined): void {
    const challenge = parseChallenge(header);
    if (!challenge) return;
    if (challenge.scheme === 'basic' && this.#challenge?.scheme === 'bearer') return;
    if (challenge.scheme === 'bearer' && !challenge.params.realm) return;
    this.#challenge = challenge;
  }

  /** Drops the cached token for these scopes (after a 401 on a token we thought valid). */
  invalidate(scopes: readonly string[]): void {
    this.#tokens.delete(scopeKey(scopes));
  }

  /**
   * The actions a token for these scopes grants on `repository`, or undefined when that cannot be known (Basic
   * auth, anonymous registries, opaque tokens): then only trying tells.
   */
  async granted(scopes: readonly string[], repository: string): Promise<readonly string[] | undefined> {
    if (this.#challenge?.scheme !== 'bearer') return undefined;
    await this.authorization(scopes);
    const access = this.#tokens.get(scopeKey(scopes))?.access;
    if (!access) return undefined;
    return access.filter((a) => a.type === 'repository' && a.name === repository).flatMap((a) => a.actions);
  }

  /**
   * The Authorization header for these scopes when it is known without asking the token service (none yet, Basic,
   * a token still fresh), so the request goes out without waiting a turn; TOKEN_NEEDED when it is not.
   */
  authorizationNow(scopes: readonly string[]): string | undefined | typeof TOKEN_NEEDED {
    const challenge = this.#challenge;
    if (!challenge) return undefined;
    if (challenge.scheme === 'basic') return this.#credentials ? basicAuthorization(this.#credentials) : undefined;
    if (challenge.scheme !== 'bearer') return undefined;
    const cached = this.#tokens.get(scopeKey(scopes));
    return cached && Date.now() < cached.refreshAt ? `Bearer ${cached.value}` : TOKEN_NEEDED;
  }

  async authorization(scopes: readonly string[]): Promise<string | undefined> {
    const now = this.authorizationNow(scopes);
    if (now !== TOKEN_NEEDED) return now;
    const challenge = this.#challenge!;
    const key = scopeKey(scopes);
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = this.#fetchToken(challenge, scopes).finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    const token = await pending;
    this.#tokens.set(key, token);
    return `Bearer ${token.value}`;
  }

  async #fetchToken(challenge: Challenge, scopes: readonly string[]): Promise<CachedToken> {
    const realm = challenge.params.realm!;
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new DestinationError('AUTH_REFUSED', `the registry's token realm "${realm}" is not a URL`);
    }
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#credentials) {
      if (!this.#mayReceiveCredentials(url)) {
        throw new DestinationError(
          'AUTH_REFUSED',
          `the registry sends us to the token service ${url.origin}, over plain http on another host: credentials are not sent there`,
          'configure the registry with an https token realm (Harbor: set external_url to https://…)',
        );
      }
      headers.authorization = basicAuthorization(this.#credentials);
    }
    this.tokenRequests++;
    const requestedAt = Date.now();
    let response;
    try {
      response = await request(url, { method: 'GET', headers, dispatcher: this.#dispatcher, ...(this.#abort ? { signal: this.#abort } : {}) });
    } catch (err) {
      throw new RegistryError(
        `token service ${url.origin}${url.pathname} unreachable: ${(err as Error).message}`,
        { method: 'GET', path: url.pathname, status: undefined, registryCode: undefined, failure: classifyNetworkError(err), requestId: undefined, retryAfterMs: undefined },
        err,
      );
    }
    const text = await response.body.text();
    if (response.statusCode !== 200) {
      const { code, message } = parseErrorBody(text);
      if (response.statusCode === 401 || response.statusCode === 403) {
        throw new DestinationError(
          'AUTH_REFUSED',
          `token service refused the credentials${this.#credentials ? ` from ${this.#credentials.source}` : ' (none given)'}: ${response.statusCode}${message ? ` ${message}` : ''}`,
          'check the username and password (robot accounts are named robot$name)',
        );
      }
      throw new RegistryError(`token service answered ${response.statusCode}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`, {
        method: 'GET',
        path: url.pathname,
        status: response.statusCode,
        registryCode: code,
        failure: classifyStatus(response.statusCode),
        requestId: headerValue(response.headers['x-request-id']),
        retryAfterMs: undefined,
      });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new DestinationError('AUTH_REFUSED', `token service at ${url.origin}${url.pathname} did not answer JSON`);
    }
    const parsed = TokenResponse.safeParse(json);
    const value = parsed.success ? parsed.data.token || parsed.data.access_token : undefined;
    if (!value) throw new DestinationError('AUTH_REFUSED', `token service at ${url.origin}${url.pathname} answered without a token`);
    const lifetimeMs = (parsed.success && parsed.data.expires_in ? parsed.data.expires_in : 60) * 1000;
    // Refresh early: a quarter of the lifetime, at most 30 s, so a request never carries an expiring token.
    const margin = Math.min(TOKEN_REFRESH_MARGIN_MS, lifetimeMs / 4);
    return { value, access: decodeAccess(value), refreshAt: requestedAt + lifetimeMs - margin };
  }
}

function scopeKey(scopes: readonly string[]): string {
  return [...scopes].sort().join(' ');
}

export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

import { UsageError } from '../errors.js';

export interface Endpoint {
  /** `https://harbor.example:8443` */
  readonly origin: string;
  /** `harbor.example:8443`: the key for credentials and tokens. */
  readonly host: string;
  readonly secure: boolean;
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || hostname === '::1' || /^127(?:\.\d{1,3}){3}$/.test(hostname);
}

/**
 * `--to` accepts `host[:port]`, `http://host`, `https://host`. A bare host means HTTPS, except loopback hosts
 * (a registry on this machine), which are plain HTTP unless `https://` is written.
 */
/** The text of `--to` as it may be shown: any `user:password@` is cut out, so an error never echoes a secret. */
function shown(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/@\s]*@/i, (_, scheme: string | undefined) => `${scheme ?? ''}<credentials removed>@`);
}

export function parseEndpoint(raw: string): Endpoint {
  const value = shown(raw);
  if (value !== raw) {
    throw new UsageError(`--to "${value}": credentials are not accepted in the destination`, 'use --username with --password-stdin, REGMIGRATE_USERNAME/REGMIGRATE_PASSWORD, or a docker config');
  }
  const trimmed = value.trim().replace(/\/+$/, '');
  if (trimmed === '') throw new UsageError('--to is empty', 'give the destination as host[:port] or https://host');
  if (/^[a-z][a-z0-9+.-]*:\/*$/i.test(trimmed)) throw new UsageError(`--to "${value}" names no host`, 'give the destination as host[:port] or https://host');
  const explicit = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed);
  let url: URL;
  try {
    url = new URL(explicit ? trimmed : `https://${trimmed}`);
  } catch {
    throw new UsageError(`--to "${value}" is not a host or URL`, 'give the destination as host[:port] or https://host');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--to "${value}": only http:// and https:// destinations are supported`);
  }
  if (url.pathname !== '/' || url.search || url.username || url.password) {
    throw new UsageError(`--to "${value}" must be a host, without path, query or credentials`, 'use --username and --password-stdin for credentials');
  }
  const secure = explicit ? url.protocol === 'https:' : !isLoopback(url.hostname);
  const origin = `${secure ? 'https' : 'http'}://${url.host}`;
  return { origin, host: url.host, secure };
}

import { childEnv } from '../util/child-env.js';
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import * as z from 'zod';
import { UsageError } from '../errors.js';
import type { Credentials } from '../registry/credentials.js';

const DockerConfig = z.looseObject({
  auths: z
    .record(
      z.string(),
      z.looseObject({
        auth: z.string().optional(),
        username: z.string().optional(),
        password: z.string().optional(),
        identitytoken: z.string().optional(),
      }),
    )
    .optional(),
  credHelpers: z.record(z.string(), z.string()).optional(),
  credsStore: z.string().optional(),
});
type DockerConfig = z.infer<typeof DockerConfig>;

const HelperReply = z.looseObject({ Username: z.string(), Secret: z.string() });

export interface CredentialSources {
  /** `--username`, with the password read from stdin (`--password-stdin`). */
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly env: NodeJS.ProcessEnv;
  /** `--docker-config`: a config.json or the directory holding it; default $DOCKER_CONFIG or ~/.docker. */
  readonly dockerConfig: string | undefined;
  /** Told when credentials come from a file other users can read. */
  readonly onWarning?: (message: string) => void;
}

/** The keys docker writes for a host: `host`, `https://host`, `http://host`, with or without a path. */
function hostOfKey(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
}

function dockerConfigPath(sources: CredentialSources): string {
  const given = sources.dockerConfig ?? sources.env.DOCKER_CONFIG;
  if (given) return given.endsWith('.json') ? given : path.join(given, 'config.json');
  return path.join(homedir(), '.docker', 'config.json');
}

function readDockerConfig(file: string, explicit: boolean): DockerConfig | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (explicit) throw new UsageError(`docker config ${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError(`docker config ${file}: not valid JSON`);
  }
  const parsed = DockerConfig.safeParse(json);
  if (!parsed.success) throw new UsageError(`docker config ${file}: unexpected structure (${parsed.error.issues[0]?.message ?? 'invalid'})`);
  return parsed.data;
}

/** `docker-credential-<helper> get` with the server on stdin, as docker does. */
async function fromHelper(helper: string, host: string): Promise<Credentials | undefined> {
  if (!/^[a-zA-Z0-9_.-]+$/.test(helper)) throw new UsageError(`docker config names an invalid credential helper "${helper}"`);
  const program = `docker-credential-${helper}`;
  for (const server of [host, `https://${host}`]) {
    const result = await (await loadExeca())(program, ['get'], { input: server, reject: false, timeout: 30_000, env: childEnv(), extendEnv: false });
    if (result.exitCode === undefined) {
      throw new UsageError(`credential helper ${program} is not installed`, `install it or remove "${helper}" from the docker config`);
    }
    if (result.exitCode === 0) {
      const parsed = HelperReply.safeParse(JSON.parse(String(result.stdout)));
      if (parsed.success) return { username: parsed.data.Username, password: parsed.data.Secret, source: program };
    }
  }
  return undefined;
}

/**
 * Credentials for `host`, first found wins: --username + --password-stdin; REGMIGRATE_USERNAME/_PASSWORD; the
 * docker config (credHelpers for the host, auths, then credsStore). Undefined means anonymous.
 */
export async function resolveCredentials(host: string, sources: CredentialSources): Promise<Credentials | undefined> {
  if (sources.username !== undefined || sources.password !== undefined) {
    if (!sources.username || sources.password === undefined) {
      throw new UsageError('--username and --password-stdin go together', 'echo "$PASSWORD" | regmigrate ... --username USER --password-stdin');
    }
    return { username: sources.username, password: sources.password, source: '--username/--password-stdin' };
  }
  const envUser = sources.env.REGMIGRATE_USERNAME;
  const envPass = sources.env.REGMIGRATE_PASSWORD;
  if (envUser || envPass) {
    if (!envUser || envPass === undefined) throw new UsageError('REGMIGRATE_USERNAME and REGMIGRATE_PASSWORD must be set together');
    return { username: envUser, password: envPass, source: 'REGMIGRATE_USERNAME/REGMIGRATE_PASSWORD' };
  }
  const explicit = sources.dockerConfig !== undefined;
  const file = dockerConfigPath(sources);
  const config = readDockerConfig(file, explicit);
  if (!config) return undefined;
  try {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) sources.onWarning?.(`${file} is readable by other users (mode ${mode.toString(8).padStart(4, '0')}); chmod 600 it`);
  } catch {
    // read a moment ago; if it is gone now, there is nothing to warn about
  }
  for (const [key, helper] of Object.entries(config.credHelpers ?? {})) {
    if (hostOfKey(key) === host) return fromHelper(helper, host);
  }
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    if (hostOfKey(key) !== host) continue;
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon <= 0) throw new UsageError(`docker config ${file}: auths["${key}"].auth is not base64 of user:password`);
      return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), source: file };
    }
    if (entry.username && entry.password !== undefined) return { username: entry.username, password: entry.password, source: file };
  }
  if (config.credsStore) return fromHelper(config.credsStore, host);
  return undefined;
}

/** execa is loaded when a helper is run: a run without one does not pay for loading it. */
async function loadExeca(): Promise<typeof import('execa').execa> {
  return (await import('execa')).execa;
}

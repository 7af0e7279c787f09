/**
 * Credentials for reading a bucket, found as every AWS tool finds them. The search is the AWS SDK's own default
 * chain (`@aws-sdk/credential-provider-node`): environment, SSO, shared credentials and config files with
 * `AWS_PROFILE` (static keys, `source_profile` role chains, `credential_process`), web identity
 * (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, EKS IRSA), container credentials (ECS, EKS Pod Identity) and
 * the instance metadata service (IMDSv2). Only the search comes from the SDK: requests to the store are signed here
 * (sigv4.ts) and sent with undici, which costs a fifth of the SDK's client CPU per request.
 *
 * The SDK is loaded on first use (~40 ms), so runs that read no bucket never load it. Which source answered is kept
 * for error messages ("credentials from profile \"ci\""); secrets never leave this module except into a signature.
 */
import type { SigningCredentials } from './sigv4.js';

export interface CredentialSource {
  /** The credentials to sign with now: cached, and fetched again shortly before temporary ones expire. */
  get(): Promise<SigningCredentials>;
  /** Where the credentials came from, for messages: never a secret, at most the access key's last four characters. */
  describe(): string;
}

/** Credentials given as values (tests, or a config file's keys): `description` says where they came from. */
export function staticCredentials(credentials: SigningCredentials, description: string): CredentialSource {
  const described = `${description} (access key ${maskKey(credentials.accessKeyId)})`;
  return { get: async () => credentials, describe: () => described };
}

/** The access key as `aws configure list` shows it: only the last four characters. */
export function maskKey(accessKeyId: string): string {
  return `…${accessKeyId.slice(-4)}`;
}

/** The SDK's names for the sources it used (`$source` on the credentials it returns), most telling first. */
const SOURCES: ReadonlyArray<readonly [string, (profile: string, env: NodeJS.ProcessEnv) => string]> = [
  ['CREDENTIALS_ENV_VARS_STS_WEB_ID_TOKEN', (_, env) => `web identity (AWS_WEB_IDENTITY_TOKEN_FILE, role ${env.AWS_ROLE_ARN ?? '?'})`],
  ['CREDENTIALS_PROFILE_STS_WEB_ID_TOKEN', (p) => `web identity of profile "${p}"`],
  ['CREDENTIALS_STS_ASSUME_ROLE_WEB_ID', (_, env) => `web identity (role ${env.AWS_ROLE_ARN ?? '?'})`],
  ['CREDENTIALS_PROFILE_SOURCE_PROFILE', (p) => `profile "${p}" (a role assumed through source_profile)`],
  ['CREDENTIALS_PROFILE_NAMED_PROVIDER', (p) => `profile "${p}" (credential_source)`],
  ['CREDENTIALS_PROFILE_PROCESS', (p) => `profile "${p}" (credential_process)`],
  ['CREDENTIALS_PROCESS', (p) => `profile "${p}" (credential_process)`],
  ['CREDENTIALS_PROFILE_SSO', (p) => `profile "${p}" (IAM Identity Center)`],
  ['CREDENTIALS_PROFILE_SSO_LEGACY', (p) => `profile "${p}" (IAM Identity Center)`],
  ['CREDENTIALS_SSO', (p) => `profile "${p}" (IAM Identity Center)`],
  ['CREDENTIALS_SSO_LEGACY', (p) => `profile "${p}" (IAM Identity Center)`],
  ['CREDENTIALS_PROFILE_LOGIN', (p) => `profile "${p}" (aws login)`],
  ['CREDENTIALS_LOGIN', (p) => `profile "${p}" (aws login)`],
  ['CREDENTIALS_PROFILE', (p) => `profile "${p}" (shared credentials and config files)`],
  ['CREDENTIALS_ENV_VARS', () => 'the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)'],
  ['CREDENTIALS_HTTP', () => 'the container credentials endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI)'],
  ['CREDENTIALS_IMDS', () => 'the instance metadata service (IMDS)'],
];

interface SdkCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string | undefined;
  readonly expiration?: Date | undefined;
  readonly $source?: Record<string, unknown> | undefined;
}

/** Temporary credentials are fetched again this long before they expire (the SDK's own margin is the same 5 minutes). */
const REFRESH_MARGIN_MS = 5 * 60_000;

/** Thrown when no source has credentials, or a source failed (an STS refusal, an unreadable token file). */
export class CredentialsUnavailable extends Error {}

/**
 * The AWS default chain. `env` is read for the profile's name and the role's ARN in messages; the SDK itself reads
 * `process.env` (AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, AWS_EC2_METADATA_DISABLED, …).
 */
export function awsCredentialChain(env: NodeJS.ProcessEnv): CredentialSource {
  const profile = env.AWS_PROFILE || 'default';
  let provider: (() => Promise<SdkCredentials>) | undefined;
  let cached: { credentials: SdkCredentials; description: string } | undefined;
  let pending: Promise<SdkCredentials> | undefined;

  const fetchCredentials = async (): Promise<SdkCredentials> => {
    if (!provider) {
      const { defaultProvider } = await import('@aws-sdk/credential-provider-node');
      // A logger that says nothing: the SDK's default warns on the console (two sources set at once), and a
      // warning there would end up between a machine format's lines on stdout.
      const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
      // The profile is left to the SDK: given explicitly, even as "default", it skips the environment's keys.
      provider = defaultProvider({ logger: quiet }) as () => Promise<SdkCredentials>;
    }
    try {
      return await provider();
    } catch (err) {
      throw new CredentialsUnavailable(describeFailure(err), { cause: err });
    }
  };

  return {
    async get() {
      const now = Date.now();
      if (cached && (!cached.credentials.expiration || cached.credentials.expiration.getTime() - now > REFRESH_MARGIN_MS)) return cached.credentials;
      pending ??= fetchCredentials().finally(() => (pending = undefined));
      const credentials = await pending;
      cached = { credentials, description: describeSource(credentials, profile, env) };
      return credentials;
    },
    describe: () => cached?.description ?? 'the AWS default credential chain (no credentials found yet)',
  };
}

function describeSource(credentials: SdkCredentials, profile: string, env: NodeJS.ProcessEnv): string {
  const features = credentials.$source ?? {};
  const found = SOURCES.find(([name]) => name in features);
  // Every source of the chain marks its credentials but the container and instance metadata providers of
  // @smithy/credential-provider-imds, which the chain asks last: an unmarked answer came from one of them.
  const remote = env.AWS_CONTAINER_CREDENTIALS_FULL_URI || env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI ? 'CREDENTIALS_HTTP' : 'CREDENTIALS_IMDS';
  const where = (found ?? SOURCES.find(([name]) => name === remote)!)[1](profile, env);
  return `${where} (access key ${maskKey(credentials.accessKeyId)})`;
}

/** One line: the SDK's messages name what it looked at, never a secret; only the first line is kept (some add a paragraph). */
function describeFailure(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return `no usable AWS credentials: ${message.split('\n')[0]!.trim()}`;
}

/** Where the chain looks, in its order: the hint under a CredentialsUnavailable. */
export const CREDENTIAL_CHAIN_HINT =
  'credentials are looked for in the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), the profile AWS_PROFILE (default: "default") in ~/.aws/credentials and ~/.aws/config, web identity (AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN), container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI) and instance metadata, in that order';

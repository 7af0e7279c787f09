/**
 * The read-only S3 client against a real S3 server (Ceph RGW, started by the test) and, for what a healthy server
 * never does, through a fault proxy in front of it. The server checks every SigV4 signature, so each successful
 * request here is also a check of the signer.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { execa } from 'execa';
import { Agent, type Dispatcher } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { S3SourceClient, type S3RetryPolicy } from '../src/storage/s3/client.js';
import { awsCredentialChain, staticCredentials, type CredentialSource } from '../src/storage/s3/credentials.js';
import { createS3Dispatcher, readS3CaBundles } from '../src/storage/s3/dispatcher.js';
import { S3Error } from '../src/storage/s3/errors.js';
import { parseS3Url } from '../src/storage/s3/location.js';
import { UsageError } from '../src/errors.js';
import { resolveS3Region } from '../src/storage/s3/region.js';
import { launchRgw } from '../fixtures/rgw-process.js';
import { startAwsIdentityServer } from './helpers/aws-identity.js';
import { startRgw, type RunningRgw } from './helpers/rgw.js';
import { startS3FaultProxy, type S3FaultProxy } from './helpers/s3-fault-proxy.js';
import { s3Writer, type S3Writer } from './helpers/s3-writer.js';
import { tempDir } from './helpers/tmp.js';

const BUCKET = 'source';
const ROOT = 'reg/docker/registry/v2/';
const MANY = 1050;

let rgw: RunningRgw;
let writer: S3Writer;
let proxy: S3FaultProxy;
const dispatcher = new Agent({ connections: 16 });
const delays: number[] = [];
/** Retries without sleeping: the delays are recorded instead. */
const FAST_RETRY: S3RetryPolicy = { attempts: 4, baseDelayMs: 100, maxDelayMs: 1000, wait: async (ms) => void delays.push(ms) };
const big = Buffer.alloc(3 * 1024 * 1024 + 17);
for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 9)) & 0xff;

function client(options: { endpoint?: string; bucket?: string; credentials?: CredentialSource; retry?: S3RetryPolicy; dispatcher?: Dispatcher } = {}): S3SourceClient {
  return new S3SourceClient({
    bucket: options.bucket ?? BUCKET,
    endpoint: options.endpoint ?? rgw.endpoint,
    region: rgw.region,
    credentials: options.credentials ?? staticCredentials({ accessKeyId: rgw.accessKey, secretAccessKey: rgw.secretKey }, 'the test'),
    dispatcher: options.dispatcher ?? dispatcher,
    retry: options.retry ?? FAST_RETRY,
  });
}

async function failure(promise: Promise<unknown>): Promise<S3Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof S3Error)) throw new Error(`expected an S3Error, got ${String(err)}`);
  return err;
}

async function keysOf(c: S3SourceClient, prefix: string, maxKeys?: number): Promise<{ keys: string[]; pages: number }> {
  const keys: string[] = [];
  let pages = 0;
  for await (const page of c.list({ prefix, ...(maxKeys ? { maxKeys } : {}) })) {
    pages++;
    keys.push(...page.objects.map((o) => o.key));
  }
  return { keys, pages };
}

const manyKeys = Array.from({ length: MANY }, (_, i) => `many/k${String(i).padStart(4, '0')}`);
const tree: Record<string, string> = {
  [`${ROOT}repositories/library/alpine/_manifests/tags/3.19/current/link`]: 'sha256:aaaa',
  [`${ROOT}repositories/library/alpine/_manifests/tags/latest/current/link`]: 'sha256:aaaa',
  [`${ROOT}repositories/library/alpine/_manifests/revisions/sha256/aaaa/link`]: 'sha256:aaaa',
  [`${ROOT}repositories/team/api/_manifests/tags/1.0/current/link`]: 'sha256:bbbb',
  [`${ROOT}repositories/team/api+x/_manifests/tags/odd key é/current/link`]: 'sha256:cccc',
  [`${ROOT}blobs/sha256/aa/aaaa/data`]: '{"schemaVersion":2}',
};

beforeAll(async () => {
  rgw = await startRgw();
  writer = s3Writer(rgw);
  proxy = await startS3FaultProxy(rgw.endpoint);
  await writer.createBucket(BUCKET);
  const puts = [...Object.entries(tree), ...manyKeys.map((k) => [k, k] as const), ['big/object', big] as const];
  for (let i = 0; i < puts.length; i += 64) await Promise.all(puts.slice(i, i + 64).map(([k, v]) => writer.put(BUCKET, k, v)));
});

afterAll(async () => {
  await dispatcher.close();
});

afterEach(() => {
  proxy.reset();
  delays.length = 0;
});

describe('listing', () => {
  it('with a delimiter gives one level: the "directories" as prefixes, the keys at that level as objects', async () => {
    const c = client();
    const repos = await c.listPage({ prefix: `${ROOT}repositories/`, delimiter: '/' });
    expect(repos.prefixes).toEqual([`${ROOT}repositories/library/`, `${ROOT}repositories/team/`]);
    expect(repos.objects).toEqual([]);
    const tags = await c.listPage({ prefix: `${ROOT}repositories/library/alpine/_manifests/tags/`, delimiter: '/' });
    expect(tags.prefixes.map((p) => p.split('/').at(-2))).toEqual(['3.19', 'latest']);
    const level = await c.listPage({ prefix: `${ROOT}repositories/library/alpine/_manifests/tags/3.19/current/`, delimiter: '/' });
    expect(level.objects.map((o) => [o.key.split('/').at(-1), o.size])).toEqual([['link', 'sha256:aaaa'.length]]);
  });

  it('keys with characters XML and URLs treat specially come back as they were written', async () => {
    const { keys } = await keysOf(client(), `${ROOT}repositories/team/`);
    expect(keys).toContain(`${ROOT}repositories/team/api+x/_manifests/tags/odd key é/current/link`);
    expect(keys).toContain(`${ROOT}repositories/team/api/_manifests/tags/1.0/current/link`);
  });

  it('pages through more than 1,000 keys: 1,000 a page by default, one request a page', async () => {
    const c = client();
    const { keys, pages } = await keysOf(c, 'many/');
    expect(keys).toEqual(manyKeys);
    expect(pages).toBe(2);
    expect(c.stats.requests.list).toBe(2);
  });

  it('pages with a small max-keys follow the continuation token to the end, in order, each key once', async () => {
    const c = client();
    const { keys, pages } = await keysOf(c, 'many/', 97);
    expect(keys).toEqual(manyKeys);
    expect(pages).toBe(Math.ceil(MANY / 97));
  });

  it('starts after a key', async () => {
    const page = await client().listPage({ prefix: 'many/', startAfter: 'many/k1040' });
    expect(page.objects.map((o) => o.key)).toEqual(manyKeys.slice(1041));
    expect(page.nextContinuationToken).toBeUndefined();
  });

  it('gives each object its size', async () => {
    const page = await client().listPage({ prefix: 'big/' });
    expect(page.objects.map((o) => [o.key, o.size])).toEqual([['big/object', big.length]]);
  });
});

describe('reading objects', () => {
  it('reads a small object whole, and refuses one larger than allowed without reading it all', async () => {
    const c = client();
    expect((await c.getObject(`${ROOT}blobs/sha256/aa/aaaa/data`, 4096)).toString()).toBe('{"schemaVersion":2}');
    const err = await failure(c.getObject('big/object', 1024 * 1024));
    expect(err.kind).toBe('too-large');
    // The declared length was enough: not a byte of the large object was read.
    expect(c.stats.bytes).toBe('{"schemaVersion":2}'.length);
  });

  it.each([
    ['a range in the middle', { start: 1_000_000, end: 1_999_999 }],
    ['the last byte', { start: big.length - 1, end: big.length - 1 }],
    ['from the first byte', { start: 0, end: 99 }],
  ])('streams %s of a large object', async (_, range) => {
    const stream = await client().openRange('big/object', range);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(big.subarray(range.start, range.end + 1))).toBe(true);
  });

  it('streams a whole object without a range', async () => {
    const stream = await client().openRange('big/object');
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(big)).toBe(true);
  });

  it('heads an object: its size, no body', async () => {
    const info = await client().headObject('big/object');
    expect(info.size).toBe(big.length);
    expect(info.etag).toMatch(/^"/);
  });
});

describe('what a refusal means', () => {
  it.each([
    ['getObject', (c: S3SourceClient) => c.getObject(`${ROOT}no/such/link`, 100)],
    ['openRange', (c: S3SourceClient) => c.openRange(`${ROOT}no/such/data`, { start: 0, end: 9 })],
    ['headObject', (c: S3SourceClient) => c.headObject(`${ROOT}no/such/data`)],
  ])('a missing key is absent (%s), and that is not retried', async (_, op) => {
    const c = client();
    const err = await failure(op(c));
    expect(err.kind).toBe('absent');
    expect(err.key).toBe(`${ROOT}no/such/${_ === 'getObject' ? 'link' : 'data'}`);
    expect(c.stats.retries).toBe(0);
  });

  it('a missing bucket is no-bucket, not absent, for listings and objects alike', async () => {
    const c = client({ bucket: 'no-such-bucket' });
    const list = await failure(c.listPage({ prefix: 'x/' }));
    expect([list.kind, list.s3Code]).toEqual(['no-bucket', 'NoSuchBucket']);
    expect(list.message).toContain('s3://no-such-bucket');
    const get = await failure(c.getObject('x/link', 100));
    expect(get.kind).toBe('no-bucket');
  });

  it('a wrong secret is denied, naming the bucket and the credential source, never the secret', async () => {
    const secret = 'WRONGsecretWRONGsecretWRONGsecret0000000';
    const c = client({ credentials: staticCredentials({ accessKeyId: rgw.accessKey, secretAccessKey: secret }, 'the config file') });
    const err = await failure(c.listPage({ prefix: ROOT }));
    expect([err.kind, err.status, err.s3Code]).toEqual(['denied', 403, 'SignatureDoesNotMatch']);
    expect(err.message).toContain(`s3://${BUCKET}`);
    expect(err.message).toContain(`credentials from the config file (access key …${rgw.accessKey.slice(-4)})`);
    expect(err.hint).toContain('secret access key');
    expect(`${err.message} ${err.hint}`).not.toContain(secret);
    expect(`${err.message} ${err.hint}`).not.toContain(rgw.accessKey);
    expect(c.stats.retries).toBe(0);
  });

  it('an access key the store does not know is denied as such', async () => {
    const c = client({ credentials: staticCredentials({ accessKeyId: 'AKIANOSUCHKEY0000000', secretAccessKey: rgw.secretKey }, 'the test') });
    const err = await failure(c.getObject(`${ROOT}blobs/sha256/aa/aaaa/data`, 100));
    expect([err.kind, err.s3Code]).toEqual(['denied', 'InvalidAccessKeyId']);
  });

  it('a 404 that is not S3 saying NoSuchKey (a proxy page, a wrong endpoint) is not taken for absence', async () => {
    proxy.script = () => ({ kind: 'respond', status: 404, body: '<html><body>404 Not Found</body></html>' });
    const err = await failure(client({ endpoint: proxy.endpoint }).getObject(`${ROOT}blobs/sha256/aa/aaaa/data`, 100));
    expect(err.kind).toBe('invalid');
  });

  it('a wrong region is named with the region the store gives', async () => {
    proxy.script = () => ({ kind: 'error', status: 301, code: 'PermanentRedirect', headers: { 'x-amz-bucket-region': 'eu-central-1' } });
    const err = await failure(client({ endpoint: proxy.endpoint }).listPage({ prefix: ROOT }));
    expect([err.kind, err.region]).toEqual(['wrong-region', 'eu-central-1']);
    expect(err.hint).toBe('pass --s3-region eu-central-1');
  });
});

describe('faults a healthy store does not make', () => {
  it('a storm of 503 SlowDown is ridden out with growing waits', async () => {
    proxy.script = (req) => (req.seen < 3 ? { kind: 'error', status: 503, code: 'SlowDown' } : { kind: 'forward' });
    const c = client({ endpoint: proxy.endpoint });
    expect((await c.getObject(`${ROOT}blobs/sha256/aa/aaaa/data`, 100)).toString()).toBe('{"schemaVersion":2}');
    expect(c.stats.retries).toBe(3);
    expect(proxy.log.map((e) => e.outcome)).toEqual([503, 503, 503, 200]);
    // Jittered down to half at most: 100, 200, 400 ms before each repeat.
    expect(delays.map((d, i) => d >= 50 * 2 ** i && d <= 100 * 2 ** i)).toEqual([true, true, true]);
  });

  it('a storm longer than the retries is unavailable, never absent', async () => {
    proxy.script = () => ({ kind: 'error', status: 503, code: 'SlowDown' });
    const c = client({ endpoint: proxy.endpoint });
    const err = await failure(c.getObject(`${ROOT}blobs/sha256/aa/aaaa/data`, 100));
    expect([err.kind, err.s3Code]).toEqual(['unavailable', 'SlowDown']);
    expect(proxy.log).toHaveLength(FAST_RETRY.attempts);
    expect(err.message).toContain(`after ${FAST_RETRY.attempts} attempts`);
  });

  it('500 InternalError and a reset connection are retried too', async () => {
    proxy.script = (req) => (req.seen === 0 ? { kind: 'error', status: 500, code: 'InternalError' } : req.seen === 1 ? { kind: 'cut', afterBytes: 0 } : { kind: 'forward' });
    const c = client({ endpoint: proxy.endpoint });
    const page = await c.listPage({ prefix: `${ROOT}repositories/`, delimiter: '/' });
    expect(page.prefixes).toHaveLength(2);
    expect(c.stats.retries).toBe(2);
  });

  it('a connection cut in the middle of an object resumes from the next byte, of the same object', async () => {
    proxy.script = (req) => (req.seen === 0 ? { kind: 'cut', afterBytes: 1_500_000 } : { kind: 'forward' });
    const c = client({ endpoint: proxy.endpoint });
    const range = { start: 100, end: big.length - 1 };
    const stream = await c.openRange('big/object', range);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(big.subarray(range.start))).toBe(true);
    expect(proxy.log.map((e) => e.outcome)).toEqual(['cut', 206]);
    const resumed = proxy.log[1]!.headers;
    const cutAt = Number(/^bytes=(\d+)-/.exec(String(resumed.range))![1]);
    expect(cutAt).toBeGreaterThan(range.start);
    expect(cutAt).toBeLessThanOrEqual(range.start + 1_500_000);
    expect(resumed['if-match']).toBe((await c.headObject('big/object')).etag);
  });

  it('cut more often than the retries allow, the stream fails as unavailable', async () => {
    proxy.script = () => ({ kind: 'cut', afterBytes: 300_000 });
    const stream = await client({ endpoint: proxy.endpoint }).openRange('big/object');
    const err = await text(stream).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(S3Error);
    expect((err as S3Error).kind).toBe('unavailable');
    expect(proxy.log).toHaveLength(FAST_RETRY.attempts);
  });

  it('a 403 in the middle of a run is denied at once, not retried and not absent', async () => {
    proxy.script = (req) => (req.seen === 1 ? { kind: 'error', status: 403, code: 'AccessDenied' } : { kind: 'forward' });
    const c = client({ endpoint: proxy.endpoint });
    await c.getObject(`${ROOT}blobs/sha256/aa/aaaa/data`, 100);
    const err = await failure(c.getObject(`${ROOT}repositories/team/api/_manifests/tags/1.0/current/link`, 100));
    expect([err.kind, err.s3Code]).toEqual(['denied', 'AccessDenied']);
    expect(err.hint).toContain('s3:GetObject');
    expect(c.stats.retries).toBe(0);
  });

  it("a refused HEAD, which has no body, is read from its headers: the store's code and request id", async () => {
    proxy.script = (req) => (req.method === 'HEAD' ? { kind: 'error', status: 403, code: 'AccessDenied', headers: { 'x-amz-error-code': 'AccessDenied', 'x-amz-request-id': 'tx-head-403' } } : { kind: 'forward' });
    const err = await failure(client({ endpoint: proxy.endpoint }).headObject(`${ROOT}blobs/sha256/aa/aaaa/data`));
    expect([err.kind, err.s3Code, err.requestId]).toEqual(['denied', 'AccessDenied', 'tx-head-403']);
  });

  it('a stopping run retries nothing', async () => {
    const stop = new AbortController();
    stop.abort();
    proxy.script = () => ({ kind: 'error', status: 503, code: 'SlowDown' });
    const c = client({ endpoint: proxy.endpoint, retry: { ...FAST_RETRY, signal: stop.signal } });
    await expect(c.getObject(`${ROOT}blobs/sha256/aa/aaaa/data`, 100)).rejects.toThrow(/not retried: the run is stopping/);
    expect(proxy.log).toHaveLength(1);
    expect(delays).toEqual([]);
  });

  it('sends nothing but GET and HEAD, whatever it is asked', async () => {
    const c = client({ endpoint: proxy.endpoint });
    await keysOf(c, 'many/', 500);
    await c.getObject(`${ROOT}blobs/sha256/aa/aaaa/data`, 100);
    await c.headObject('big/object');
    await text(await c.openRange('big/object', { start: 5, end: 10 }));
    await failure(c.getObject('no/such/key', 100));
    expect(new Set(proxy.log.map((e) => e.method))).toEqual(new Set(['GET', 'HEAD']));
    expect(Object.getOwnPropertyNames(S3SourceClient.prototype).filter((n) => /put|delete|post|copy|upload|write|remove/i.test(n))).toEqual([]);
  });
});

describe('credentials and region as AWS tools find them', () => {
  const saved = { ...process.env };
  const OBJECT = 'reg/docker/registry/v2/blobs/sha256/bb/bbbb/data';
  /** A second gateway that serves STS: its temporary credentials are what the identity stand-ins hand out. */
  let sts: RunningRgw;
  beforeAll(async () => {
    sts = await startRgw({ sts: true });
    const w = s3Writer(sts);
    await w.createBucket(BUCKET);
    await w.put(BUCKET, OBJECT, 'temporary');
  });
  const read = async (credentials: CredentialSource): Promise<string> => (await client({ endpoint: sts.endpoint, credentials }).getObject(OBJECT, 100)).toString();
  /** A clean AWS environment: no real files, and the instance metadata service off unless a test points it here. */
  function awsEnv(vars: Record<string, string>): void {
    for (const name of Object.keys(process.env)) if (name.startsWith('AWS_')) delete process.env[name];
    const none = path.join(tempDir('regmigrate-aws-'), 'none');
    Object.assign(process.env, { AWS_EC2_METADATA_DISABLED: 'true', AWS_SHARED_CREDENTIALS_FILE: none, AWS_CONFIG_FILE: none, ...vars });
  }
  afterEach(() => {
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
  });

  it('from the environment', async () => {
    awsEnv({ AWS_ACCESS_KEY_ID: rgw.accessKey, AWS_SECRET_ACCESS_KEY: rgw.secretKey });
    const credentials = awsCredentialChain(process.env);
    const page = await client({ credentials }).listPage({ prefix: `${ROOT}repositories/`, delimiter: '/' });
    expect(page.prefixes).toHaveLength(2);
    expect(credentials.describe()).toBe(`the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) (access key …${rgw.accessKey.slice(-4)})`);
  });

  it('from a profile in the shared credentials file, its region from the config file', async () => {
    const dir = tempDir('regmigrate-aws-');
    writeFileSync(path.join(dir, 'credentials'), `[default]\naws_access_key_id = AKIADEFAULT000000000\naws_secret_access_key = nope\n\n[reader]\naws_access_key_id = ${rgw.accessKey}\naws_secret_access_key = ${rgw.secretKey}\n`);
    writeFileSync(path.join(dir, 'config'), `[default]\nregion = us-west-1\n[profile reader]\nregion = eu-west-3\ns3 =\n  region = wrong\n`);
    awsEnv({ AWS_PROFILE: 'reader', AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'credentials'), AWS_CONFIG_FILE: path.join(dir, 'config') });
    const credentials = awsCredentialChain(process.env);
    await client({ credentials }).getObject(`${ROOT}blobs/sha256/aa/aaaa/data`, 100);
    expect(credentials.describe()).toBe(`profile "reader" (shared credentials and config files) (access key …${rgw.accessKey.slice(-4)})`);
    expect(resolveS3Region(undefined, process.env)).toEqual({ region: 'eu-west-3', from: `profile "reader" in ${path.join(dir, 'config')}` });
    expect(resolveS3Region(undefined, { ...process.env, AWS_REGION: 'ap-south-1' }).region).toBe('ap-south-1');
    expect(resolveS3Region('sa-east-1', { ...process.env, AWS_REGION: 'ap-south-1' })).toEqual({ region: 'sa-east-1', from: '--s3-region' });
  });

  it('a wrong secret from a profile is denied naming the profile', async () => {
    const dir = tempDir('regmigrate-aws-');
    writeFileSync(path.join(dir, 'credentials'), `[ci]\naws_access_key_id = ${rgw.accessKey}\naws_secret_access_key = not-the-secret\n`);
    awsEnv({ AWS_PROFILE: 'ci', AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'credentials') });
    const err = await failure(client({ credentials: awsCredentialChain(process.env) }).listPage({ prefix: ROOT }));
    expect(err.kind).toBe('denied');
    expect(err.message).toContain(`s3://${BUCKET}: access denied (403 SignatureDoesNotMatch) with credentials from profile "ci"`);
    expect(err.message).not.toContain('not-the-secret');
  });

  it('from a web identity token through STS (EKS IRSA)', async () => {
    const identity = await startAwsIdentityServer(await sts.sessionCredentials());
    const tokenFile = path.join(tempDir('regmigrate-aws-'), 'token');
    writeFileSync(tokenFile, 'eyJhbGciOiJSUzI1NiJ9.service-account-token.sig');
    awsEnv({ AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile, AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/regmigrate', AWS_ENDPOINT_URL_STS: identity.url, AWS_REGION: 'us-east-1' });
    const credentials = awsCredentialChain(process.env);
    expect(await read(credentials)).toBe('temporary');
    expect(identity.log.map((e) => [e.form.Action, e.form.RoleArn, e.form.WebIdentityToken])).toEqual([
      ['AssumeRoleWithWebIdentity', 'arn:aws:iam::123456789012:role/regmigrate', 'eyJhbGciOiJSUzI1NiJ9.service-account-token.sig'],
    ]);
    expect(credentials.describe()).toMatch(/^web identity .*role arn:aws:iam::123456789012:role\/regmigrate/);
  });

  it('from the container credentials endpoint', async () => {
    const identity = await startAwsIdentityServer(await sts.sessionCredentials());
    awsEnv({ AWS_CONTAINER_CREDENTIALS_FULL_URI: `${identity.url}/container-credentials` });
    const credentials = awsCredentialChain(process.env);
    expect(await read(credentials)).toBe('temporary');
    expect(identity.log.map((e) => e.path)).toContain('/container-credentials');
    expect(credentials.describe()).toMatch(/^the container credentials endpoint/);
  });

  it('from the instance metadata service, IMDSv2', async () => {
    const identity = await startAwsIdentityServer(await sts.sessionCredentials());
    awsEnv({ AWS_EC2_METADATA_DISABLED: 'false', AWS_EC2_METADATA_SERVICE_ENDPOINT: identity.url });
    const credentials = awsCredentialChain(process.env);
    expect(await read(credentials)).toBe('temporary');
    expect(identity.log[0]).toMatchObject({ method: 'PUT', path: '/latest/api/token' });
    expect(identity.log.every((e) => e.method === 'PUT' || e.headers['x-aws-ec2-metadata-token'] === 'imds-session-token-0123')).toBe(true);
    expect(credentials.describe()).toMatch(/^the instance metadata service \(IMDS\)/);
  });

  it('temporary credentials send their session token, and the store checks it', async () => {
    const session = await sts.sessionCredentials();
    expect(await read(staticCredentials(session, 'the test'))).toBe('temporary');
    const forged = staticCredentials({ ...session, sessionToken: `${session.sessionToken.slice(0, -8)}AAAAAAA=` }, 'the test');
    expect((await failure(read(forged))).kind).toBe('denied');
    const without = staticCredentials({ accessKeyId: session.accessKeyId, secretAccessKey: session.secretAccessKey }, 'the test');
    expect((await failure(read(without))).kind).toBe('denied');
  });

  it('none anywhere: denied, saying where it looked', async () => {
    awsEnv({});
    const err = await failure(client({ credentials: awsCredentialChain(process.env) }).listPage({ prefix: ROOT }));
    expect(err.kind).toBe('denied');
    expect(err.message).toMatch(/^s3:\/\/source: no usable AWS credentials/);
    expect(err.hint).toContain('AWS_WEB_IDENTITY_TOKEN_FILE');
  });
});

describe("a private endpoint's certificate", () => {
  let tls: S3FaultProxy;
  let certificate: string;
  beforeAll(async () => {
    const dir = tempDir('regmigrate-s3tls-');
    certificate = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', certificate, '-days', '2', '-subj', '/CN=regmigrate-s3', '-addext', 'subjectAltName=IP:127.0.0.1']);
    tls = await startS3FaultProxy(rgw.endpoint, { certificate: readFileSync(certificate, 'utf8'), key: readFileSync(key, 'utf8') });
  });

  it('not trusted: unavailable at once, with a hint to --ca-file and AWS_CA_BUNDLE', async () => {
    const c = client({ endpoint: tls.endpoint, dispatcher: createS3Dispatcher({ timeoutMs: 10_000 }) });
    const err = await failure(c.listPage({ prefix: ROOT }));
    expect(err.kind).toBe('unavailable');
    expect(err.hint).toContain('--ca-file');
    expect(err.hint).toContain('AWS_CA_BUNDLE');
    expect(c.stats.retries).toBe(0);
  });

  it.each(['--ca-file', 'AWS_CA_BUNDLE'])('trusted through %s, in addition to the system roots', async (from) => {
    const ca = readS3CaBundles(from === '--ca-file' ? certificate : undefined, from === 'AWS_CA_BUNDLE' ? { AWS_CA_BUNDLE: certificate } : {});
    const c = client({ endpoint: tls.endpoint, dispatcher: createS3Dispatcher({ timeoutMs: 10_000, ca }) });
    expect((await c.listPage({ prefix: `${ROOT}repositories/`, delimiter: '/' })).prefixes).toHaveLength(2);
  });

  it('a bundle that cannot be read is a usage error naming where it came from', () => {
    expect(() => readS3CaBundles(undefined, { AWS_CA_BUNDLE: '/nonexistent/ca.pem' })).toThrow(new UsageError('AWS_CA_BUNDLE /nonexistent/ca.pem: cannot be read (ENOENT)'));
  });
});

describe('s3:// locations', () => {
  it.each([
    ['s3://registry', { bucket: 'registry', root: '', v2Prefix: 'docker/registry/v2/' }],
    ['s3://registry/', { bucket: 'registry', root: '', v2Prefix: 'docker/registry/v2/' }],
    ['s3://registry/prod/registry', { bucket: 'registry', root: 'prod/registry', v2Prefix: 'prod/registry/docker/registry/v2/' }],
    ['s3://registry//prod/registry/', { bucket: 'registry', root: 'prod/registry', v2Prefix: 'prod/registry/docker/registry/v2/' }],
    ['s3://registry/prod/docker/registry/v2', { bucket: 'registry', root: 'prod', v2Prefix: 'prod/docker/registry/v2/' }],
    ['s3://registry/docker/registry/v2/', { bucket: 'registry', root: '', v2Prefix: 'docker/registry/v2/' }],
    ['s3://my.bucket-1/r', { bucket: 'my.bucket-1', root: 'r', v2Prefix: 'r/docker/registry/v2/' }],
  ])('%s', (url, expected) => {
    expect(parseS3Url(url)).toEqual(expected);
  });

  it.each(['s3:/registry', 'registry/prod', 's3://', 's3://bad bucket/x', 'https://registry/x'])('%s is refused', (url) => {
    expect(() => parseS3Url(url)).toThrow(UsageError);
  });
});

describe('the test S3 server', () => {
  it('starts on its own ports in a short directory, and stop() kills every daemon and removes the directory', async () => {
    const second = await launchRgw();
    expect(second.dir.length).toBeLessThan(40);
    expect(second.endpoint).not.toBe(rgw.endpoint);
    const pids = second.pids;
    expect(pids).toHaveLength(3);
    await second.stop();
    expect(existsSync(second.dir)).toBe(false);
    expect(pids.filter((pid) => alive(pid))).toEqual([]);
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

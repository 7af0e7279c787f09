/**
 * The SigV4 signer against the worked examples AWS publishes for S3 ("Signature Calculations for the Authorization
 * Header: Transferring Payload in a Single Chunk", S3 API reference): same request, same key, same day, so the same
 * signature. test/s3-client.test.ts then has a real S3 server check signatures made now.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalQuery, encodeS3Path, SigV4Signer, type SignableRequest } from '../src/storage/s3/sigv4.js';

const CREDENTIALS = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };
const DAY = new Date('2013-05-24T00:00:00Z');
const HOST = 'examplebucket.s3.amazonaws.com';
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

describe('SigV4 signing, AWS S3 examples', () => {
  it.each<{ name: string; request: SignableRequest; signedHeaders: string; signature: string }>([
    {
      name: 'GET Object with a Range header',
      request: { method: 'GET', host: HOST, path: '/test.txt', query: [], headers: { range: 'bytes=0-9' } },
      signedHeaders: 'host;range;x-amz-content-sha256;x-amz-date',
      signature: 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
    },
    {
      name: 'PUT Object, with a key that needs encoding and a payload',
      request: {
        method: 'PUT',
        host: HOST,
        path: `/${encodeS3Path('test$file.text')}`,
        query: [],
        headers: { date: 'Fri, 24 May 2013 00:00:00 GMT', 'x-amz-storage-class': 'REDUCED_REDUNDANCY' },
        payloadHash: createHash('sha256').update('Welcome to Amazon S3.').digest('hex'),
      },
      signedHeaders: 'date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class',
      signature: '98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd',
    },
    {
      name: 'GET Bucket Lifecycle (a parameter without a value)',
      request: { method: 'GET', host: HOST, path: '/', query: [['lifecycle', '']] as Array<[string, string]> },
      signedHeaders: 'host;x-amz-content-sha256;x-amz-date',
      signature: 'fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543',
    },
    {
      name: 'GET Bucket (List Objects), parameters given out of order',
      request: { method: 'GET', host: HOST, path: '/', query: [['prefix', 'J'], ['max-keys', '2']] as Array<[string, string]> },
      signedHeaders: 'host;x-amz-content-sha256;x-amz-date',
      signature: '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7',
    },
  ])('$name', ({ request, signedHeaders, signature }) => {
    const headers = new SigV4Signer('us-east-1').sign(request, CREDENTIALS, DAY);
    expect(headers['x-amz-date']).toBe('20130524T000000Z');
    expect(headers['x-amz-content-sha256']).toBe(request.payloadHash ?? EMPTY);
    expect(headers.authorization).toBe(`AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=${signedHeaders},Signature=${signature}`);
  });

  it('a session token is sent and signed', () => {
    const headers = new SigV4Signer('us-east-1').sign({ method: 'GET', host: HOST, path: '/test.txt', query: [] }, { ...CREDENTIALS, sessionToken: 'TOKEN' }, DAY);
    expect(headers['x-amz-security-token']).toBe('TOKEN');
    expect(headers.authorization).toContain('SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,');
    const without = new SigV4Signer('us-east-1').sign({ method: 'GET', host: HOST, path: '/test.txt', query: [] }, CREDENTIALS, DAY);
    expect(headers.authorization).not.toBe(without.authorization);
  });

  it('the signing key follows the day and the secret, not only the first ones seen', () => {
    const signer = new SigV4Signer('us-east-1');
    const request = { method: 'GET', host: HOST, path: '/test.txt', query: [], headers: { range: 'bytes=0-9' } };
    const first = signer.sign(request, CREDENTIALS, DAY).authorization!;
    expect(signer.sign(request, CREDENTIALS, new Date('2013-05-25T00:00:00Z')).authorization).not.toContain(first.slice(-64));
    expect(signer.sign(request, { ...CREDENTIALS, secretAccessKey: 'other' }, DAY).authorization).not.toContain(first.slice(-64));
    expect(signer.sign(request, CREDENTIALS, DAY).authorization).toBe(first);
  });

  it('keys and query values are encoded as SigV4 wants: RFC 3986, slashes kept in paths, sorted parameters', () => {
    expect(encodeS3Path("docker/registry/v2/repositories/a b/it's+(x)*!~")).toBe('docker/registry/v2/repositories/a%20b/it%27s%2B%28x%29%2A%21~');
    expect(canonicalQuery([['prefix', 'a/b c'], ['list-type', '2'], ['continuation-token', '1/+=']])).toBe('continuation-token=1%2F%2B%3D&list-type=2&prefix=a%2Fb%20c');
  });
});

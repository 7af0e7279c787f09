/**
 * What the tests write into the S3 server, and nothing in src/ can: buckets and objects, each request signed with
 * the same SigV4 code the reader uses (src/storage/s3/sigv4.ts). RGW checks every signature, so these requests
 * succeeding is itself a check of the signer on PUT and DELETE.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import { Agent } from 'undici';
import { encodeRfc3986, encodeS3Path, SigV4Signer } from '../../src/storage/s3/sigv4.js';
import { atEnd } from './teardown.js';

export interface S3Account {
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
}

export interface S3Writer {
  createBucket(bucket: string): Promise<void>;
  put(bucket: string, key: string, body: Buffer | string): Promise<void>;
  delete(bucket: string, key: string): Promise<void>;
  /** Uploads every file under `dir` as `prefix` + its relative path, `concurrency` at a time. */
  putTree(bucket: string, prefix: string, dir: string, concurrency?: number): Promise<number>;
}

export function s3Writer(account: S3Account): S3Writer {
  const url = new URL(account.endpoint);
  const signer = new SigV4Signer(account.region);
  const agent = new Agent({ connections: 16 });
  atEnd(() => agent.close());
  const credentials = { accessKeyId: account.accessKey, secretAccessKey: account.secretKey };

  const send = async (method: 'PUT' | 'DELETE', bucket: string, key: string | undefined, body?: Buffer): Promise<void> => {
    const pathName = `/${encodeRfc3986(bucket)}${key === undefined ? '' : `/${encodeS3Path(key)}`}`;
    const payloadHash = createHash('sha256')
      .update(body ?? Buffer.alloc(0))
      .digest('hex');
    const headers = signer.sign({ method, host: url.host, path: pathName, query: [], payloadHash }, credentials);
    const res = await agent.request({ origin: url.origin, path: pathName, method, headers: { ...headers, 'content-length': String(body?.length ?? 0) }, body: body ?? null });
    const text = await res.body.text();
    if (res.statusCode >= 300) throw new Error(`${method} ${pathName}: ${res.statusCode} ${text}`);
  };

  return {
    createBucket: (bucket) => send('PUT', bucket, undefined),
    put: (bucket, key, body) => send('PUT', bucket, key, Buffer.from(body)),
    delete: (bucket, key) => send('DELETE', bucket, key),
    async putTree(bucket, prefix, dir, concurrency = 16) {
      const files = readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
      const limit = pLimit(concurrency);
      await Promise.all(files.map((f) => limit(() => send('PUT', bucket, prefix + path.relative(dir, path.join(f.parentPath, f.name)), readFileSync(path.join(f.parentPath, f.name))))));
      return files.length;
    },
  };
}

import { createHash, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import * as z from 'zod';

/**
 * Schema1 on disk is the unsigned payload, and its digest is the sha256 of those bytes (docs/registry-behaviour.md, Schema1). A registry
 * accepts schema1 only with a valid JWS signature in libtrust's "pretty" form; any key will do, and the digest
 * stays the payload's. These functions sign a payload, recover the payload of a signed manifest, and convert a
 * schema1 image to schema2 for destinations that no longer take schema1.
 */

function b64url(bytes: Buffer | string): string {
  return Buffer.from(bytes).toString('base64url');
}

/** libtrust's key ID: base32 of the first 240 bits of sha256(DER SubjectPublicKeyInfo), in groups of four. */
export function libtrustKeyId(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const hash = createHash('sha256').update(der).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of hash) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out.match(/.{1,4}/g)!.join(':');
}

export interface SigningKey {
  readonly privateKey: KeyObject;
  readonly jwk: { crv: string; kid: string; kty: string; x: string; y: string };
}

/** A P-256 key made for the run: nobody needs to trust it, the registry only checks the signature is valid. */
export function makeSigningKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' }) as { crv: string; kty: string; x: string; y: string };
  return { privateKey, jwk: { crv: jwk.crv, kid: libtrustKeyId(publicKey), kty: jwk.kty, x: jwk.x, y: jwk.y } };
}

const isSpace = (byte: number): boolean => byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;

/**
 * Signs a schema1 payload as libtrust does: the payload up to its last value (`formatLength`) and the rest
 * (`formatTail`, usually `\n}` or `}`) go in the protected header, and `"signatures"` is inserted between them.
 */
export function signSchema1(payload: Buffer, key: SigningKey, now = new Date()): Buffer {
  let close = payload.length - 1;
  while (close >= 0 && isSpace(payload[close]!)) close--;
  if (close < 0 || payload[close] !== 0x7d) throw new Error('schema1 payload does not end with "}"');
  let last = close - 1;
  while (last >= 0 && isSpace(payload[last]!)) last--;
  if (last < 0 || payload[last] === 0x2c || payload[last] === 0x7b) throw new Error('schema1 payload has no members to sign');
  const formatLength = last + 1;
  const tail = payload.subarray(formatLength);
  const protectedHeader = b64url(JSON.stringify({ formatLength, formatTail: b64url(tail), time: now.toISOString().replace(/\.\d+Z$/, 'Z') }));
  const signature = sign('sha256', Buffer.from(`${protectedHeader}.${b64url(payload)}`), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  const signatures = JSON.stringify([{ header: { jwk: key.jwk, alg: 'ES256' }, signature: b64url(signature), protected: protectedHeader }]);
  return Buffer.concat([payload.subarray(0, formatLength), Buffer.from(`,"signatures":${signatures}`), tail]);
}

const Protected = z.looseObject({ formatLength: z.number().int().nonnegative(), formatTail: z.string() });

/** The payload of a signed schema1 manifest (what its digest is computed over); unsigned input comes back as is. */
export function schema1Payload(bytes: Buffer): Buffer {
  let json: { signatures?: Array<{ protected?: string }> };
  try {
    json = JSON.parse(bytes.toString('utf8')) as typeof json;
  } catch {
    return bytes;
  }
  const first = json.signatures?.[0]?.protected;
  if (!first) return bytes;
  const header = Protected.safeParse(JSON.parse(Buffer.from(first, 'base64url').toString('utf8')));
  if (!header.success || header.data.formatLength > bytes.length) return bytes;
  return Buffer.concat([bytes.subarray(0, header.data.formatLength), Buffer.from(header.data.formatTail, 'base64url')]);
}

const V1Compatibility = z.looseObject({
  id: z.string().optional(),
  parent: z.string().optional(),
  created: z.string().optional(),
  author: z.string().optional(),
  architecture: z.string().optional(),
  os: z.string().optional(),
  throwaway: z.boolean().optional(),
  comment: z.string().optional(),
  config: z.unknown().optional(),
  container_config: z.looseObject({ Cmd: z.array(z.string()).nullable().optional() }).nullable().optional(),
});

const Schema1 = z.looseObject({
  architecture: z.string().optional(),
  fsLayers: z.array(z.looseObject({ blobSum: z.string() })),
  history: z.array(z.looseObject({ v1Compatibility: z.string() })),
});

export interface ConvertedImage {
  readonly config: Buffer;
  readonly configDigest: string;
  readonly manifest: Buffer;
  readonly digest: string;
}

/** A layer's bytes, read from the source storage (src/storage/storage.ts SourceBlobReader). */
export interface LayerBytes {
  readonly size: number;
  open(): AsyncIterable<Uint8Array>;
}

/**
 * sha256 of the uncompressed layer: its diff ID. Streams, so a 10 GiB layer costs 10 GiB of reading, no memory; a
 * read that fails fails the conversion (a pipeline, so the error is not lost between the streams).
 */
export async function diffIdOf(layer: LayerBytes): Promise<string> {
  const hash = createHash('sha256');
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done();
    },
  });
  await pipeline(Readable.from(layer.open()), createGunzip(), sink);
  return `sha256:${hash.digest('hex')}`;
}

/**
 * schema1 → schema2 (docker v2): layers from `fsLayers` bottom-up (schema1 lists them top first), leaving out the
 * `throwaway` empty layers its history marks; diff IDs by decompressing each layer; a config from the top
 * `v1Compatibility` plus `history` and `rootfs`. Deterministic: the same source always gives the same digest.
 */
export async function convertSchema1(payload: Buffer, layer: (digest: string) => LayerBytes): Promise<ConvertedImage> {
  return buildSchema2(payload, { size: (digest) => layer(digest).size, diffId: (digest) => diffIdOf(layer(digest)) });
}

/** What a conversion needs of each layer it keeps: its compressed size, and its diff ID (`index`: bottom-up, kept layers only). */
export interface Schema1Layers {
  size(digest: string): number;
  diffId(digest: string, index: number): Promise<string>;
}

/** The conversion, with the layers' sizes and diff IDs from the caller (decompressed, or read back from a config). */
export async function buildSchema2(payload: Buffer, layers: Schema1Layers): Promise<ConvertedImage> {
  const manifest = Schema1.parse(JSON.parse(payload.toString('utf8')));
  if (manifest.history.length !== manifest.fsLayers.length) throw new Error('schema1 history and fsLayers differ in length');
  const entries = manifest.history.map((h) => V1Compatibility.parse(JSON.parse(h.v1Compatibility))).reverse();
  const fsLayers = [...manifest.fsLayers].reverse();
  const descriptors: Array<{ mediaType: string; size: number; digest: string }> = [];
  const diffIds: string[] = [];
  const history: Array<Record<string, unknown>> = [];
  for (const [i, entry] of entries.entries()) {
    const digest = fsLayers[i]!.blobSum;
    const empty = entry.throwaway === true;
    const createdBy = entry.container_config?.Cmd?.join(' ');
    history.push({
      ...(entry.created ? { created: entry.created } : {}),
      ...(entry.author ? { author: entry.author } : {}),
      ...(createdBy ? { created_by: createdBy } : {}),
      ...(entry.comment ? { comment: entry.comment } : {}),
      ...(empty ? { empty_layer: true } : {}),
    });
    if (empty) continue;
    descriptors.push({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layers.size(digest), digest });
    diffIds.push(await layers.diffId(digest, diffIds.length));
  }
  const top = entries[entries.length - 1] ?? {};
  const { id: _id, parent: _parent, throwaway: _throwaway, Size: _size, parent_id: _parentId, layer_id: _layerId, ...rest } = top as Record<string, unknown>;
  const config = Buffer.from(
    JSON.stringify({
      ...rest,
      architecture: (top as { architecture?: string }).architecture ?? manifest.architecture ?? 'amd64',
      os: (top as { os?: string }).os ?? 'linux',
      rootfs: { type: 'layers', diff_ids: diffIds },
      history,
    }),
  );
  const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  const out = Buffer.from(
    JSON.stringify(
      {
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: configDigest },
        layers: descriptors,
      },
      null,
      3,
    ),
  );
  return { config, configDigest, manifest: out, digest: `sha256:${createHash('sha256').update(out).digest('hex')}` };
}

import { createVerify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeLayer } from '../fixtures/builder.js';
import { fileRangeReader } from '../src/storage/file-range.js';
import type { SourceBlobReader } from '../src/storage/storage.js';
import { convertSchema1, libtrustKeyId, makeSigningKey, schema1Payload, signSchema1 } from '../src/image/schema1.js';
import { tempDir } from './helpers/tmp.js';

describe('schema1 signing', () => {
  it.each([
    ['compact', '{"schemaVersion":1,"name":"a/b","tag":"t","fsLayers":[],"history":[]}'],
    ['pretty with a trailing newline', '{\n   "schemaVersion": 1,\n   "name": "a/b",\n   "fsLayers": []\n}\n'],
  ])('signs a %s payload so that the payload comes back byte for byte, with a valid ES256 signature', (_label, text) => {
    const payload = Buffer.from(text);
    const key = makeSigningKey();
    const signed = signSchema1(payload, key);
    expect(schema1Payload(signed).equals(payload)).toBe(true);
    const doc = JSON.parse(signed.toString()) as { signatures: Array<{ protected: string; signature: string; header: { alg: string; jwk: { kid: string } } }> };
    const sig = doc.signatures[0]!;
    expect(sig.header.alg).toBe('ES256');
    expect(sig.header.jwk.kid).toMatch(/^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
    const verify = createVerify('sha256');
    verify.update(`${sig.protected}.${payload.toString('base64url')}`);
    expect(verify.verify({ key: key.privateKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(sig.signature, 'base64url'))).toBe(true);
  });

  it('computes libtrust key IDs (12 groups of 4 base32 characters)', () => {
    const key = makeSigningKey();
    expect(key.jwk.kid.split(':')).toHaveLength(12);
    expect(libtrustKeyId(key.privateKey)).toBe(key.jwk.kid);
  });

  it('refuses a payload that is not a JSON object with members', () => {
    expect(() => signSchema1(Buffer.from('[]'), makeSigningKey())).toThrow(/does not end/);
    expect(() => signSchema1(Buffer.from('{}'), makeSigningKey())).toThrow(/no members/);
  });
});

describe('schema1 → schema2 conversion', () => {
  it('orders layers bottom-up, drops throwaway layers, hashes diff IDs, and survives odd v1Compatibility fields', async () => {
    const dir = tempDir();
    const base = makeLayer('base', 'base layer\n');
    const top = makeLayer('top', 'top layer\n');
    const empty = makeLayer('empty', '');
    const files = new Map<string, SourceBlobReader>();
    for (const [name, layer] of [['base', base], ['top', top], ['empty', empty]] as const) {
      const file = path.join(dir, name);
      writeFileSync(file, layer.blob);
      files.set(layer.digest, fileRangeReader(file, 0, layer.blob.length, layer.digest));
    }
    const payload = Buffer.from(
      JSON.stringify({
        schemaVersion: 1,
        name: 'old/app',
        tag: 'v1',
        architecture: 'amd64',
        // schema1 lists the top layer first
        fsLayers: [{ blobSum: top.digest }, { blobSum: empty.digest }, { blobSum: base.digest }],
        history: [
          { v1Compatibility: JSON.stringify({ id: 'c', parent: 'b', created: '2016-01-03T00:00:00Z', container_config: { Cmd: ['/bin/sh', '-c', 'make'] }, config: { Env: ['A=1'] }, Size: '12', os: 'linux', architecture: 'amd64', weird: { nested: [1, 2] } }) },
          { v1Compatibility: JSON.stringify({ id: 'b', parent: 'a', throwaway: true, container_config: null, created: '2016-01-02T00:00:00Z' }) },
          { v1Compatibility: JSON.stringify({ id: 'a', created: '2016-01-01T00:00:00Z', config: null }) },
        ],
      }),
    );
    const converted = await convertSchema1(payload, (digest) => files.get(digest)!);
    const manifest = JSON.parse(converted.manifest.toString()) as { layers: Array<{ digest: string }>; config: { digest: string } };
    expect(manifest.layers.map((l) => l.digest)).toEqual([base.digest, top.digest]);
    const config = JSON.parse(converted.config.toString()) as { rootfs: { diff_ids: string[] }; history: Array<{ empty_layer?: boolean; created_by?: string }>; config: unknown; id?: string };
    expect(config.rootfs.diff_ids).toEqual([base.diffId, top.diffId]);
    expect(config.history.map((h) => h.empty_layer ?? false)).toEqual([false, true, false]);
    expect(config.history[2]!.created_by).toBe('/bin/sh -c make');
    expect(config.config).toEqual({ Env: ['A=1'] });
    expect(config.id).toBeUndefined();
    expect(manifest.config.digest).toBe(converted.configDigest);
    // Deterministic: the same source, the same digest.
    expect((await convertSchema1(payload, (digest) => files.get(digest)!)).digest).toBe(converted.digest);
  });
});

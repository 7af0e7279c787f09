/** The response headers picked from undici's raw list for the registry and S3 readers (src/util/headers.ts). */
import { describe, expect, it } from 'vitest';
import { ANSWER_HEADERS } from '../src/registry/exchange.js';
import { headerNames, pickHeaders } from '../src/util/headers.js';

const raw = (...pairs: Array<[string, string]>): Buffer[] => pairs.flatMap(([n, v]) => [Buffer.from(n, 'latin1'), Buffer.from(v, 'latin1')]);

describe('pickHeaders', () => {
  it('keeps the wanted names whatever their case, the first of a header sent twice, and nothing else', () => {
    const headers = pickHeaders(
      raw(['Content-Length', '0'], ['WWW-Authenticate', 'Bearer realm="https://h/service/token"'], ['Www-Authenticate', 'Basic realm="h"'], ['Location', '/v2/a/blobs/uploads/1'], ['X-Locatio', 'no']),
      headerNames(['location', 'www-authenticate']),
    );
    expect(headers).toEqual({ 'www-authenticate': 'Bearer realm="https://h/service/token"', location: '/v2/a/blobs/uploads/1' });
  });

  it('decodes values as latin1 bytes, as undici does', () => {
    expect(pickHeaders([Buffer.from('link'), Buffer.from([0x3c, 0xe9, 0x3e])], headerNames(['link']))).toEqual({ link: '<\u00e9>' });
  });

  it('reads every header the registry code looks at', () => {
    const names = ['Content-Type', 'Docker-Content-Digest', 'Link', 'Location', 'Retry-After', 'WWW-Authenticate', 'X-Request-Id'];
    const headers = pickHeaders(raw(...names.map((n): [string, string] => [n, `v-${n}`]), ['Docker-Upload-UUID', 'u']), ANSWER_HEADERS);
    expect(Object.keys(headers).sort()).toEqual(names.map((n) => n.toLowerCase()).sort());
  });
});

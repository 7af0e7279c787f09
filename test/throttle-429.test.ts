import http from 'node:http';
import { beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, type RunningRegistry } from './helpers/registry.js';
import { requestIdentity, startThrottle429 } from './helpers/throttle-429.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Sends a request through `host`; `hold` keeps its body open until the returned `release` is called. */
function send(host: string, method: string, path: string, hold = false): { answer: Promise<Answer>; release: () => void } {
  const [hostname, port] = host.split(':') as [string, string];
  const req = http.request({ hostname, port: Number(port), method, path, agent: false, headers: hold ? { 'content-type': 'application/octet-stream' } : { 'content-length': '0' } });
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
  if (hold) {
    // The first bytes of an upload, flushed so the request reaches the registry and stays open there.
    req.write('some bytes');
    req.flushHeaders();
  } else {
    req.end();
  }
  return { answer, release: () => req.end() };
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('the 429 throttle in front of a real docker-registry (test/helpers/throttle-429.ts)', () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });

  it.each([
    ['with Retry-After: 3', 3],
    ['without Retry-After', undefined],
  ] as const)('answers 429 %s while N requests are in flight, counts each request\'s retries, and lets requests through again once one ends', async (_, retryAfterSeconds) => {
    const throttle = await startThrottle429(registry.host, { maxInFlight: 2, retryAfterSeconds });
    // Two uploads whose PATCH bodies stay open: two requests in flight.
    const held = [];
    for (const repo of ['lib/one', 'lib/two']) {
      const post = await send(throttle.host, 'POST', `/v2/${repo}/blobs/uploads/`).answer;
      expect(post.status).toBe(202);
      held.push(send(throttle.host, 'PATCH', new URL(post.headers.location!, registry.url).pathname + new URL(post.headers.location!, registry.url).search, true));
    }
    await until(() => throttle.stats.peakInFlight === 2);

    const refused = [await send(throttle.host, 'GET', '/v2/').answer, await send(throttle.host, 'GET', '/v2/').answer];
    for (const answer of refused) {
      expect(answer.status).toBe(429);
      expect(answer.headers['retry-after']).toBe(retryAfterSeconds === undefined ? undefined : String(retryAfterSeconds));
      expect(JSON.parse(answer.body)).toEqual({ errors: [{ code: 'TOOMANYREQUESTS', message: 'too many requests' }] });
    }

    held[0]!.release();
    expect((await held[0]!.answer).status).toBe(202);
    await until(() => throttle.stats.inFlight === 1);
    const through = await send(throttle.host, 'GET', '/v2/').answer;
    expect(through.status).toBe(200);
    held[1]!.release();
    expect((await held[1]!.answer).status).toBe(202);

    await until(() => throttle.stats.inFlight === 0);
    expect(throttle.stats).toEqual({ requests: 7, throttled: 2, peakOffered: 3, peakInFlight: 2, inFlight: 0 });
    expect(throttle.retries.get('GET /v2/')).toBe(2);
    expect(throttle.retries.get('POST /v2/lib/one/blobs/uploads/')).toBe(0);
    expect(throttle.maxRetries()).toBe(2);
  });

  it.each([
    ['PATCH', '/v2/lib/app/blobs/uploads/7f6e2d1c-0a9b?_state=abc', 'PATCH /v2/lib/app/blobs/uploads/'],
    ['PUT', '/v2/lib/app/blobs/uploads/7f6e2d1c-0a9b?_state=abc&digest=sha256:aa', 'PUT /v2/lib/app/blobs/uploads/?digest=sha256:aa'],
    ['POST', '/v2/lib/app/blobs/uploads/?mount=sha256:bb&from=lib/base', 'POST /v2/lib/app/blobs/uploads/?mount=sha256:bb'],
    ['HEAD', '/v2/lib/app/manifests/1.0', 'HEAD /v2/lib/app/manifests/1.0'],
  ])('knows %s %s as "%s" for counting retries', (method, url, identity) => {
    expect(requestIdentity(method, url)).toBe(identity);
  });
});

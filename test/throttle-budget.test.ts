/**
 * The adaptive request budget against a destination that throttles: a gateway in front of a real docker-registry
 * answers 429 (with or without `Retry-After`) to any request that arrives while N are in flight. The push must land
 * and verify every image, settle near N (few of its requests refused, its budget ending within a small factor of
 * N), and never retry one request more often than `--retries` allows.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addImage, makeLayer, StorageBuilder } from '../fixtures/builder.js';
import { runCli } from './helpers/cli.js';
import { startRegistry } from './helpers/registry.js';
import { startThrottle429 } from './helpers/throttle-429.js';
import { tempDir } from './helpers/tmp.js';

/** Requests the gateway lets through at once: far below what the run starts with (16 requests and 8 uploads). */
const LIMIT = 4;
/** `--retries` (attempts in all, the first included). */
const ATTEMPTS = 5;

/** 60 small tags in 6 repositories, each with its own config and layer: about six requests a tag. */
function buildCorpus(): string {
  const root = path.join(tempDir('regmigrate-throttle-'), 'registry');
  const builder = new StorageBuilder(root);
  for (let r = 0; r < 6; r++) {
    for (let t = 0; t < 10; t++) {
      const image = addImage(builder, `team/app${r}`, { format: 'oci', layers: [makeLayer(`file-${r}-${t}`, `app ${r} tag ${t}`)], label: `${r}-${t}` });
      builder.tag(`team/app${r}`, `v${t}`, image.digest);
    }
  }
  return root;
}

describe('the request budget against a throttling destination', () => {
  it.each([
    ['with Retry-After: 1', 1],
    ['without Retry-After', undefined],
  ])('429 %s whenever more than N requests are in flight: every image verified, the budget settles near N', async (_, retryAfterSeconds) => {
    const registry = await startRegistry();
    const throttle = await startThrottle429(registry.host, { maxInFlight: LIMIT, retryAfterSeconds });
    const root = buildCorpus();

    const result = await runCli(['push', root, '--to', throttle.host, '--retries', String(ATTEMPTS), '--output', 'json', '--log-format', 'json']);

    expect(result.exitCode, result.stderr).toBe(0);
    const images = (JSON.parse(result.stdout) as { images: Array<{ source: string; status: string }> }).images;
    expect(images).toHaveLength(60);
    expect(images.filter((i) => i.status !== 'verified')).toEqual([]);
    // The gateway did push back, and the budget heard it: it halved, naming the 429.
    expect(throttle.stats.throttled).toBeGreaterThan(0);
    const records = result.stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const halvings = records.filter((r) => r.event === 'budget');
    expect(halvings.length).toBeGreaterThan(0);
    expect(halvings.every((r) => r.reason === 'HTTP 429' && Number(r.to) < Number(r.from))).toBe(true);
    // No request was refused more often than the retries allow.
    expect(throttle.maxRetries()).toBeLessThanOrEqual(ATTEMPTS - 1);
    // Settled near N: most requests went through at the first try, and the budgets end within a small factor of N.
    expect(throttle.stats.throttled).toBeLessThan(throttle.stats.requests / 4);
    // Every blob here is small, so every request went through the request budget (the upload budget carried none
    // and keeps its size): that budget ends within a small factor of N.
    const finished = records.find((r) => r.event === 'run-finished')!;
    expect(Number(finished.requestBudget)).toBeGreaterThanOrEqual(LIMIT / 2);
    expect(Number(finished.requestBudget)).toBeLessThanOrEqual(LIMIT * 3);
    // The most requests the run ever had open at the gateway, refused ones included: near N, not the 24 it starts with.
    expect(throttle.stats.peakOffered).toBeLessThanOrEqual(LIMIT * 2);
  });

  it('--max-requests below the floor is refused before any contact, naming the flag', async () => {
    const result = await runCli(['push', buildCorpus(), '--to', '127.0.0.1:9', '--max-requests', '1']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/--max-requests must be a whole number from 2 to 1024, not "1"/);
  });
});

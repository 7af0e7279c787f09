/** The batch pipeline of push and sync (src/push/read-ahead.ts): what overlaps what, and how much is held. */
import { describe, expect, it } from 'vitest';
import { readInStages } from '../src/push/read-ahead.js';

/** Lets queued promise callbacks run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function gate(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe('readInStages', () => {
  it("reads batch k+1 while batch k is prepared, and holds no more than two batches while one is used", async () => {
    const events: string[] = [];
    const count = 4;
    let reads = 0;
    const prepares = Array.from({ length: count }, gate);
    const stages = readInStages(
      count,
      async () => {
        if (reads >= count) return undefined;
        events.push(`read ${reads}`);
        return reads++;
      },
      async (batch) => {
        events.push(`prepare ${batch}`);
        await prepares[batch]!.promise;
        return batch;
      },
    );
    const batches = stages.batches[Symbol.asyncIterator]();
    const first = batches.next();
    await settle();
    // Batch 0 is being prepared, and batch 1 was read meanwhile (batch -1 needs no use).
    expect(events).toEqual(['read 0', 'prepare 0', 'read 1']);
    prepares[0]!.open();
    expect((await first).value).toBe(0);
    await settle();
    // Batch 0 is in use; batch 1 is prepared meanwhile, but batch 2 is not read until batch 0 has been used.
    expect(events).toEqual(['read 0', 'prepare 0', 'read 1', 'prepare 1']);
    stages.used(0);
    await settle();
    expect(events.at(-1)).toBe('read 2');
    prepares[1]!.open();
    expect((await batches.next()).value).toBe(1);
    stages.used(1);
    for (const p of prepares.slice(2)) p.open();
    expect((await batches.next()).value).toBe(2);
    stages.used(2);
    expect((await batches.next()).value).toBe(3);
    stages.used(3);
    expect((await batches.next()).done).toBe(true);
    expect(events.filter((e) => e.startsWith('read'))).toEqual(['read 0', 'read 1', 'read 2', 'read 3']);
  });
});

import { describe, expect, it } from 'vitest';
import { RequestBudget } from '../src/destination/budget.js';

/** A request that ends when the test says so. */
function request(name: string, started: string[]): { work: () => Promise<string>; finish: () => void } {
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return {
    work: async () => {
      started.push(name);
      await done;
      return name;
    },
    finish: () => finish(),
  };
}

/** Lets queued promise callbacks run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('RequestBudget', () => {
  it('keeps at most its size in flight and hands slots out in order', async () => {
    const budget = new RequestBudget(2);
    const started: string[] = [];
    const requests = ['a', 'b', 'c', 'd'].map((name) => request(name, started));
    const results = requests.map((r) => budget.run(r.work));
    await settle();
    expect(started).toEqual(['a', 'b']);
    expect(budget.active).toBe(2);
    requests[1]!.finish();
    await settle();
    expect(started).toEqual(['a', 'b', 'c']);
    for (const r of requests) r.finish();
    expect(await Promise.all(results)).toEqual(['a', 'b', 'c', 'd']);
    expect(budget.active).toBe(0);
  });

  it('gives a freed slot to waiting work of the batch under way before waiting probes', async () => {
    const budget = new RequestBudget(2, 1);
    const started: string[] = [];
    const probe1 = request('probe1', started);
    const probe2 = request('probe2', started);
    const verify1 = request('verify1', started);
    const verify2 = request('verify2', started);
    const all = [budget.probe(probe1.work), budget.probe(probe2.work), budget.run(verify1.work), budget.run(verify2.work)];
    await settle();
    // probe2 waits for the probe share (1), not for a slot: verify1 took the other slot.
    expect(started).toEqual(['probe1', 'verify1']);
    probe1.finish();
    await settle();
    // The slot probe1 freed goes to verify2, queued after probe2.
    expect(started).toEqual(['probe1', 'verify1', 'verify2']);
    verify1.finish();
    await settle();
    expect(started).toEqual(['probe1', 'verify1', 'verify2', 'probe2']);
    for (const r of [probe2, verify2]) r.finish();
    expect(await Promise.all(all)).toEqual(['probe1', 'probe2', 'verify1', 'verify2']);
  });

  it('never lets probes take more than their share, even with slots free', async () => {
    const budget = new RequestBudget(4, 2);
    const started: string[] = [];
    const probes = ['p1', 'p2', 'p3'].map((name) => request(name, started));
    const all = probes.map((p) => budget.probe(p.work));
    await settle();
    expect(started).toEqual(['p1', 'p2']);
    probes[0]!.finish();
    await settle();
    expect(started).toEqual(['p1', 'p2', 'p3']);
    for (const p of probes) p.finish();
    await Promise.all(all);
  });

  it('passes a failure through and frees the slot', async () => {
    const budget = new RequestBudget(1);
    await expect(budget.run(async () => Promise.reject(new Error('refused')))).rejects.toThrow('refused');
    await expect(budget.run(() => { throw new Error('at once'); })).rejects.toThrow('at once');
    expect(await budget.run(async () => 'next')).toBe('next');
    expect(budget.active).toBe(0);
  });
});

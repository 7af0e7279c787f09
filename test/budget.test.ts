import { describe, expect, it } from 'vitest';
import { DestinationBudget, RequestBudget, type BudgetChange, type BudgetClock } from '../src/destination/budget.js';

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
    const budget = new RequestBudget(3, 1);
    const started: string[] = [];
    const verify0 = request('verify0', started);
    const probe1 = request('probe1', started);
    const probe2 = request('probe2', started);
    const verify1 = request('verify1', started);
    const verify2 = request('verify2', started);
    const all = [budget.run(verify0.work), budget.probe(probe1.work), budget.probe(probe2.work), budget.run(verify1.work), budget.run(verify2.work)];
    await settle();
    // With the batch's work under way, probe2 waits for the probe share (1), not for a slot: verify1 took the last.
    expect(started).toEqual(['verify0', 'probe1', 'verify1']);
    probe1.finish();
    await settle();
    // The slot probe1 freed goes to verify2, queued after probe2.
    expect(started).toEqual(['verify0', 'probe1', 'verify1', 'verify2']);
    verify1.finish();
    await settle();
    expect(started).toEqual(['verify0', 'probe1', 'verify1', 'verify2', 'probe2']);
    for (const r of [verify0, probe2, verify2]) r.finish();
    expect(await Promise.all(all)).toEqual(['verify0', 'probe1', 'probe2', 'verify1', 'verify2']);
  });

  it('never lets probes take more than their share while the batch has work in flight, even with slots free', async () => {
    const budget = new RequestBudget(5, 2);
    const started: string[] = [];
    const batch = request('batch', started);
    const probes = ['p1', 'p2', 'p3'].map((name) => request(name, started));
    const all = [budget.run(batch.work), ...probes.map((p) => budget.probe(p.work))];
    await settle();
    expect(started).toEqual(['batch', 'p1', 'p2']);
    probes[0]!.finish();
    await settle();
    expect(started).toEqual(['batch', 'p1', 'p2', 'p3']);
    for (const r of [batch, ...probes]) r.finish();
    await Promise.all(all);
  });

  it('lets probes take every slot when no work of the batch is in flight or waiting; that work then goes first', async () => {
    const budget = new RequestBudget(3, 1);
    const started: string[] = [];
    const probes = ['p1', 'p2', 'p3', 'p4'].map((name) => request(name, started));
    const all = probes.map((p) => budget.probe(p.work));
    await settle();
    expect(started).toEqual(['p1', 'p2', 'p3']);
    const verify = request('verify', started);
    all.push(budget.run(verify.work));
    probes[0]!.finish();
    await settle();
    // The freed slot goes to the batch's work, queued after p4.
    expect(started).toEqual(['p1', 'p2', 'p3', 'verify']);
    for (const r of [...probes, verify]) r.finish();
    await Promise.all(all);
    expect(started).toEqual(['p1', 'p2', 'p3', 'verify', 'p4']);
  });

  it('runFirst work goes before all other waiting work, in its own order', async () => {
    const budget = new RequestBudget(1);
    const started: string[] = [];
    const busy = request('busy', started);
    const queued = ['upload1', 'upload2'].map((name) => request(name, started));
    const first = ['manifest1', 'manifest2'].map((name) => request(name, started));
    const all = [budget.run(busy.work), ...queued.map((r) => budget.run(r.work)), ...first.map((r) => budget.runFirst(r.work))];
    await settle();
    for (const r of [busy, ...first, ...queued]) {
      r.finish();
      await settle();
    }
    await Promise.all(all);
    expect(started).toEqual(['busy', 'manifest1', 'manifest2', 'upload1', 'upload2']);
  });

  it('passes a failure through and frees the slot', async () => {
    const budget = new RequestBudget(1);
    await expect(budget.run(async () => Promise.reject(new Error('refused')))).rejects.toThrow('refused');
    await expect(budget.run(() => { throw new Error('at once'); })).rejects.toThrow('at once');
    expect(await budget.run(async () => 'next')).toBe('next');
    expect(budget.active).toBe(0);
  });
});

/**
 * A clock the test moves by hand; timers fire when it passes them. With `early`, timers fire that many ms before
 * `now()` reads their time, as Node's do now and then: they run on libuv's loop time, in whole milliseconds, while
 * the budget reads `Date.now()`.
 */
class ManualClock implements BudgetClock {
  time = 0;
  #timers: Array<{ at: number; fn: () => void }> = [];
  constructor(readonly early = 0) {}
  now(): number {
    return this.time;
  }
  later(ms: number, fn: () => void): void {
    this.#timers.push({ at: this.time + ms - this.early, fn });
  }
  advance(ms: number): void {
    this.time += ms;
    const due = this.#timers.filter((t) => t.at <= this.time);
    this.#timers = this.#timers.filter((t) => t.at > this.time);
    for (const t of due) t.fn();
  }
}

/** Starts `n` requests in `budget`, each ending when the test says so. */
function fill(run: (work: () => Promise<string>) => Promise<string>, n: number, started: string[], prefix = 'r'): Array<{ finish: () => void; result: Promise<string> }> {
  return Array.from({ length: n }, (_, i) => {
    const r = request(`${prefix}${i}`, started);
    return { finish: r.finish, result: run(r.work) };
  });
}

/** A destination budget of `requests` slots adapting within floor..cap, and one upload slot, on a manual clock. */
function destinationBudget(requests: { initial: number; floor: number; cap: number }, clock = new ManualClock()): { budget: DestinationBudget; clock: ManualClock; changes: BudgetChange[] } {
  const budget = new DestinationBudget({ requests, uploads: { initial: 1, floor: 1, cap: 1 } }, clock);
  const changes: BudgetChange[] = [];
  budget.onChange((c) => changes.push(c));
  return { budget, clock, changes };
}

describe('RequestBudget: slow start, then additive increase', () => {
  it('slow start: grows by one slot per success while work waits for a slot, up to its cap', async () => {
    const budget = new RequestBudget({ initial: 2, floor: 1, cap: 8 });
    const started: string[] = [];
    const all = fill((w) => budget.run(w), 30, started);
    await settle();
    expect(budget.size).toBe(2);
    // Each success while work waits is one slot more: the freed slot and the new one both start work.
    all[0]!.finish();
    await settle();
    expect(budget.size).toBe(3);
    expect(budget.active).toBe(3);
    all[1]!.finish();
    await settle();
    expect(budget.size).toBe(4);
    expect(budget.active).toBe(4);
    // A window of four successes doubles it, up to the cap.
    for (const r of all.slice(2, 6)) r.finish();
    await settle();
    expect(budget.size).toBe(8);
    for (const r of all.slice(6)) r.finish();
    await Promise.all(all.map((r) => r.result));
    expect(budget.size).toBe(8); // the cap
  });

  it('after the first push-back: grows by one slot per window of successes while work waits, up to its cap', async () => {
    const budget = new RequestBudget({ initial: 4, floor: 1, cap: 4 });
    const started: string[] = [];
    const all = fill((w) => budget.run(w), 14, started);
    await settle();
    // Four in flight; a 429 among them halves the budget to 2, and the four answer from the old window.
    expect(budget.halve(429, 'requests')).toEqual({ budget: 'requests', from: 4, to: 2, reason: 429 });
    for (const r of all.slice(0, 4)) r.finish();
    await settle();
    expect(budget.size).toBe(2);
    expect(budget.active).toBe(2);
    // A window at size 2 is two successes: one slot more, not two.
    all[4]!.finish();
    all[5]!.finish();
    await settle();
    expect(budget.size).toBe(3);
    expect(budget.active).toBe(3);
    for (const r of all.slice(6, 9)) r.finish();
    await settle();
    expect(budget.size).toBe(4);
    for (const r of all.slice(9)) r.finish();
    await Promise.all(all.map((r) => r.result));
    expect(budget.size).toBe(4); // the cap
  });

  it('does not grow while it is not the limit (no work waits for a slot)', async () => {
    const budget = new RequestBudget({ initial: 4, floor: 1, cap: 16 });
    for (let i = 0; i < 40; i++) await budget.run(async () => i);
    expect(budget.size).toBe(4);
  });

  it('does not grow on failures: they are not successes', async () => {
    const budget = new RequestBudget({ initial: 2, floor: 1, cap: 4 });
    const all = Array.from({ length: 6 }, () => budget.run(async () => Promise.reject(new Error('503'))).catch(() => 'failed'));
    expect(await Promise.all(all)).toEqual(Array(6).fill('failed'));
    expect(budget.size).toBe(2);
  });

  it('a fixed size (a number) never moves', async () => {
    const budget = new RequestBudget(3);
    const started: string[] = [];
    const all = fill((w) => budget.run(w), 9, started);
    for (const r of all) {
      await settle();
      r.finish();
    }
    await Promise.all(all.map((r) => r.result));
    expect(budget.size).toBe(3);
  });
});

describe('DestinationBudget: multiplicative decrease', () => {
  it('halves on a 429 once per window: a burst of 429s from the requests in flight halves it once', async () => {
    const { budget, changes } = destinationBudget({ initial: 16, floor: 2, cap: 16 });
    const started: string[] = [];
    const first = fill((w) => budget.requests.run(w), 16, started);
    await settle();
    // The 16 requests all went out before any answer came back.
    const sent = budget.onSend();
    for (let i = 0; i < 16; i++) budget.onResponse(429, undefined, sent);
    expect(budget.requests.size).toBe(8);
    expect(changes).toEqual([{ budget: 'requests', from: 16, to: 8, reason: 429 }]);
    // The old window drains; a 429 from the new one halves again.
    for (const r of first) r.finish();
    await Promise.all(first.map((r) => r.result));
    const second = fill((w) => budget.requests.run(w), 8, started, 's');
    await settle();
    budget.onResponse(503, undefined, budget.onSend());
    expect(budget.requests.size).toBe(4);
    expect(changes.at(-1)).toEqual({ budget: 'requests', from: 8, to: 4, reason: 503 });
    for (const r of second) r.finish();
    await Promise.all(second.map((r) => r.result));
  });

  it('a request sent after the halving and refused again halves again, while the old window still holds its slots', async () => {
    const { budget, changes } = destinationBudget({ initial: 16, floor: 2, cap: 16 });
    const started: string[] = [];
    const first = fill((w) => budget.requests.run(w), 16, started);
    await settle();
    const before = budget.onSend();
    budget.onResponse(429, undefined, before);
    expect(budget.requests.size).toBe(8);
    // A retry goes out from one of the 16 slots (none has ended) and is refused too: the halved size is still too
    // many, so it halves again; a late answer to a request sent before does not.
    budget.onResponse(429, undefined, budget.onSend());
    expect(budget.requests.size).toBe(4);
    budget.onResponse(429, undefined, before);
    expect(budget.requests.size).toBe(4);
    expect(changes.map((c) => c.to)).toEqual([8, 4]);
    for (const r of first) r.finish();
    await Promise.all(first.map((r) => r.result));
  });

  it('new work waits until the halved budget has room', async () => {
    const { budget } = destinationBudget({ initial: 4, floor: 2, cap: 4 });
    const started: string[] = [];
    const first = fill((w) => budget.requests.run(w), 4, started);
    await settle();
    budget.onResponse(429, undefined, budget.onSend());
    const more = fill((w) => budget.requests.run(w), 2, started, 'm');
    first[0]!.finish();
    first[1]!.finish();
    await settle();
    // Two of four in flight, and the budget is 2: nothing new yet.
    expect(started).toEqual(['r0', 'r1', 'r2', 'r3']);
    first[2]!.finish();
    await settle();
    expect(started).toEqual(['r0', 'r1', 'r2', 'r3', 'm0']);
    for (const r of [...first, ...more]) r.finish();
    await Promise.all([...first, ...more].map((r) => r.result));
  });

  it('never goes below its floor', async () => {
    const { budget } = destinationBudget({ initial: 8, floor: 3, cap: 8 });
    const started: string[] = [];
    for (let round = 0; round < 4; round++) {
      const batch = fill((w) => budget.requests.run(w), budget.requests.size, started, `b${round}-`);
      await settle();
      budget.onResponse(429, undefined, budget.onSend());
      for (const r of batch) r.finish();
      await Promise.all(batch.map((r) => r.result));
    }
    expect(budget.requests.size).toBe(3);
  });

  it('leaves an idle budget its size after a push-back (the uploads when only requests were in flight), but not slow start, nor growth in that window', async () => {
    const clock = new ManualClock();
    const budget = new DestinationBudget({ requests: { initial: 4, floor: 2, cap: 4 }, uploads: { initial: 4, floor: 1, cap: 8 } }, clock);
    const started: string[] = [];
    const requests = fill((w) => budget.requests.run(w), 2, started);
    await settle();
    // A 429 while only requests are in flight: the uploads added no load, so they are not halved...
    budget.onResponse(429, undefined, budget.onSend());
    expect(budget.requests.size).toBe(2);
    expect(budget.uploads.size).toBe(4);
    for (const r of requests) r.finish();
    // ...but the destination is pushing back: when uploads start, they grow by a slot per window (not per success,
    // as in slow start), and not at all in the window the push-back came in.
    const uploads = fill((w) => budget.uploads.run(w), 12, started, 'u');
    await settle();
    expect(budget.uploads.active).toBe(4);
    for (const r of uploads.slice(0, 4)) r.finish();
    await settle();
    expect(budget.uploads.size).toBe(4);
    for (const r of uploads.slice(4, 8)) r.finish();
    await settle();
    expect(budget.uploads.size).toBe(5);
    for (const r of uploads) r.finish();
    await Promise.all([...requests, ...uploads].map((r) => r.result));
  });

  it('halves when errors rise to a quarter of a window, not for one reset', async () => {
    const { budget, changes } = destinationBudget({ initial: 8, floor: 2, cap: 8 });
    const started: string[] = [];
    const inFlight = fill((w) => budget.requests.run(w), 8, started);
    await settle();
    // A window is 9 responses (8 request slots and 1 upload slot): one reset in it is no trend.
    budget.onError();
    for (let i = 0; i < 8; i++) budget.onResponse(200, undefined, budget.onSend());
    expect(budget.requests.size).toBe(8);
    for (let i = 0; i < 6; i++) budget.onResponse(200, undefined, budget.onSend());
    budget.onResponse(500, undefined, budget.onSend());
    budget.onError();
    budget.onResponse(502, undefined, budget.onSend());
    expect(budget.requests.size).toBe(4);
    expect(changes).toEqual([{ budget: 'requests', from: 8, to: 4, reason: 'errors' }]);
    for (const r of inFlight) r.finish();
    await Promise.all(inFlight.map((r) => r.result));
  });
});

describe('DestinationBudget: Retry-After', () => {
  it.each([
    ['2 s', 429, 2000, 2000],
    ['an hour, for a minute, no more', 503, 3_600_000, 60_000],
  ] as const)('starts nothing new before the time a Retry-After of %s names, then goes on', async (_, status, retryAfterMs, holdMs) => {
    const { budget, clock } = destinationBudget({ initial: 4, floor: 2, cap: 4 });
    const started: string[] = [];
    const first = fill((w) => budget.requests.run(w), 1, started);
    await settle();
    budget.onResponse(status, retryAfterMs, budget.onSend());
    expect(budget.notBefore).toBe(holdMs);
    first[0]!.finish();
    const later = fill((w) => budget.requests.run(w), 2, started, 'l');
    await settle();
    expect(started).toEqual(['r0']);
    clock.advance(holdMs - 1);
    await settle();
    expect(started).toEqual(['r0']);
    clock.advance(1);
    await settle();
    expect(started).toEqual(['r0', 'l0', 'l1']);
    for (const r of later) r.finish();
    await Promise.all([...first, ...later].map((r) => r.result));
  });

  it('a retry waits out the Retry-After and for room in the halved budget, and goes before new work', async () => {
    const { budget, clock } = destinationBudget({ initial: 4, floor: 2, cap: 4 });
    const started: string[] = [];
    const order: string[] = [];
    const slept: number[] = [];
    const sleep = async (ms: number): Promise<void> => void slept.push(ms);
    const held = fill((w) => budget.requests.run(w), 3, started);
    // The fourth slot's request is answered 429 (Retry-After: 1) and retries inside its slot.
    const retried = budget.requests.run(async () => {
      budget.onResponse(429, 1000, budget.onSend());
      await budget.pauseForRetry(1000, sleep);
      order.push('retry');
      return 'retried';
    });
    const fresh = budget.requests.run(async () => {
      order.push('fresh');
      return 'fresh';
    });
    await settle();
    expect(budget.requests.size).toBe(2);
    expect(slept).toEqual([1000]);
    clock.advance(1000);
    await settle();
    // Three requests in flight, the budget is 2 (the idle upload slot gives no room): the retry waits for room.
    expect(order).toEqual([]);
    held[0]!.finish();
    await settle();
    expect(order).toEqual([]);
    held[1]!.finish();
    await settle();
    // The retry went (and then, with the retries done, the fresh request).
    expect(order).toEqual(['retry', 'fresh']);
    for (const r of held) r.finish();
    expect(await Promise.all([retried, fresh])).toEqual(['retried', 'fresh']);
    expect(order).toEqual(['retry', 'fresh']);
  });

  it('the slots of an idle upload budget let no retry of a request through', async () => {
    const clock = new ManualClock();
    const budget = new DestinationBudget({ requests: { initial: 2, floor: 1, cap: 2 }, uploads: { initial: 8, floor: 1, cap: 8 } }, clock);
    const order: string[] = [];
    const sleep = async (): Promise<void> => undefined;
    // Both requests in flight are answered 429 (Retry-After: 1): the budget halves to 1, and both wait to retry.
    let answer: () => void = () => undefined;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    const retried = ['a', 'b'].map((name) =>
      budget.requests.run(async () => {
        const sent = budget.onSend();
        await answered;
        budget.onResponse(429, 1000, sent);
        await budget.pauseForRetry(1000, sleep);
        order.push(`${name} retried`);
        await new Promise((resolve) => setImmediate(resolve));
        order.push(`${name} done`);
      }),
    );
    await settle();
    expect(budget.requests.active).toBe(2);
    answer();
    await settle();
    expect(budget.requests.size).toBe(1);
    expect(budget.uploads.size).toBe(8);
    clock.advance(1000);
    await Promise.all(retried);
    // One retry at a time, as the halved request budget allows, not nine (1 + the 8 idle upload slots).
    expect(order).toEqual(['a retried', 'a done', 'b retried', 'b done']);
  });

  it('a hold whose timer fires a millisecond early still ends: the retry and the work queued behind it go', async () => {
    const clock = new ManualClock(1);
    const { budget } = destinationBudget({ initial: 4, floor: 2, cap: 4 }, clock);
    const started: string[] = [];
    const order: string[] = [];
    // The only request in flight is answered 429 (Retry-After: 1) and sleeps 1 s in its slot before the retry: the
    // sleep ends on the same tick as the hold's timer, after it (a timer set later for as long fires later).
    const retried = budget.requests.run(async () => {
      budget.onResponse(429, 1000, budget.onSend());
      await budget.pauseForRetry(1000, (ms) => new Promise((resolve) => clock.later(ms, resolve)));
      order.push('retry');
      return 'retried';
    });
    const queued = fill((w) => budget.requests.run(w), 2, started, 'q');
    await settle();
    expect(budget.notBefore).toBe(1000);
    // Both timers fire at 999: the hold is not over yet, and the retry, awake now, waits for it.
    clock.advance(999);
    await settle();
    expect(order).toEqual([]);
    expect(started).toEqual([]);
    // Nothing else is in flight: only the hold's end can wake them.
    clock.advance(1);
    await settle();
    expect(order).toEqual(['retry']);
    expect(started).toEqual(['q0', 'q1']);
    for (const r of queued) r.finish();
    expect(await retried).toBe('retried');
    await Promise.all(queued.map((r) => r.result));
  });

  it('a retry waiting for room goes as soon as another step parks its slot to sleep before its own retry', async () => {
    const { budget } = destinationBudget({ initial: 4, floor: 2, cap: 4 });
    const order: string[] = [];
    // Sleeps the test ends by hand.
    const wakes: Array<() => void> = [];
    const longSleep = (): Promise<void> => new Promise((resolve) => wakes.push(resolve));
    // Four requests in flight; each is answered 429 when the test says so, sleeps, and retries once.
    const steps = (['a', 'b', 'c', 'd'] as const).map((name) => {
      let answer: () => void = () => undefined;
      const answered = new Promise<void>((resolve) => (answer = resolve));
      const done = budget.requests.run(async () => {
        const sent = budget.onSend();
        await answered;
        budget.onResponse(429, undefined, sent);
        await budget.pauseForRetry(0, name === 'a' ? async () => undefined : longSleep);
        order.push(name);
      });
      return { answer, done };
    });
    const [a, b, c, d] = steps as [(typeof steps)[0], (typeof steps)[0], (typeof steps)[0], (typeof steps)[0]];
    await settle();
    // `a` is refused: the budget halves to 2, and `a` waits for room (3 in flight).
    a.answer();
    await settle();
    expect(budget.requests.size).toBe(2);
    // `b` is refused and parks its slot for a long sleep: 2 in flight, still no room.
    b.answer();
    await settle();
    expect(order).toEqual([]);
    // So does `c`: 1 in flight, below the budget of 2. `a` goes now, not when a sleep or `d` ends.
    c.answer();
    await settle();
    expect(order).toEqual(['a']);
    d.answer();
    await settle();
    for (const wake of wakes) wake();
    await Promise.all(steps.map((s) => s.done));
  });

  it('a retry waiting for room ends at once when the run stops', async () => {
    const { budget } = destinationBudget({ initial: 2, floor: 2, cap: 2 });
    const started: string[] = [];
    const held = fill((w) => budget.requests.run(w), 2, started);
    const uploads = fill((w) => budget.uploads.run(w), 1, started, 'u');
    await settle();
    const stop = new AbortController();
    const waiting = budget.pauseForRetry(0, async () => undefined, stop.signal).then(() => 'ended');
    await settle();
    stop.abort();
    expect(await waiting).toBe('ended');
    for (const r of [...held, ...uploads]) r.finish();
    await Promise.all([...held, ...uploads].map((r) => r.result));
  });
});

describe('DestinationBudget: a stopping run', () => {
  it('lift() ends a Retry-After hold: queued work starts at once (and sees the stop)', async () => {
    const { budget } = destinationBudget({ initial: 4, floor: 2, cap: 4 });
    const started: string[] = [];
    budget.onResponse(429, 60_000, budget.onSend());
    const queued = fill((w) => budget.requests.run(w), 1, started);
    await settle();
    expect(started).toEqual([]);
    budget.lift();
    await settle();
    expect(started).toEqual(['r0']);
    queued[0]!.finish();
    await queued[0]!.result;
  });
});

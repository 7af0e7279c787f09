/** When a destination is taken for gone: a run of requests that got no answer, long enough, with no answer between. */
import { describe, expect, it } from 'vitest';
import { DestinationGone, DestinationHealth } from '../src/destination/health.js';
import type { RequestFeedback } from '../src/registry/http.js';
import { Interrupted } from '../src/util/stop.js';

/** What undici throws when nothing listens on the port. */
function refused(): Error {
  return Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:45103'), { code: 'ECONNREFUSED', syscall: 'connect' });
}

/** A certificate the client does not trust: no sign of a process gone. */
function untrusted(): Error {
  return Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
}

function setup(armed = true) {
  let now = 1_000_000;
  const heard: string[] = [];
  const next: RequestFeedback = {
    onSend: () => 7,
    onResponse: (status) => void heard.push(`response ${status}`),
    onError: () => void heard.push('error'),
  };
  const health = new DestinationHealth({ host: '127.0.0.1:45103', next, failures: 5, afterMs: 3000, now: () => now });
  if (armed) health.arm();
  const told: DestinationGone[] = [];
  health.onGone((gone) => told.push(gone));
  /** One request that got no answer, `ms` after the one before; what it threw instead of its own error, if anything. */
  const fail = (ms: number, err: Error = refused()): unknown => {
    now += ms;
    try {
      health.onError(err);
      return undefined;
    } catch (thrown) {
      return thrown;
    }
  };
  return { health, heard, told, fail, advance: (ms: number) => (now += ms) };
}

describe('destination health', () => {
  it('five refusals in under 3 s are a hiccup; one more after 3 s of nothing but refusals is a destination gone, said once', () => {
    const { health, told, fail } = setup();
    for (let i = 0; i < 5; i++) expect(fail(i === 0 ? 0 : 500)).toBeUndefined();
    expect(health.gone).toBeUndefined();
    expect(health.signal.aborted).toBe(false);
    // 2 s after the first: six refusals, still under the time.
    expect(fail(0)).toBeUndefined();
    // 3 s after the first: gone. The request that tipped it fails as gone, not with its own ECONNREFUSED.
    const thrown = fail(1000);
    expect(thrown).toBeInstanceOf(DestinationGone);
    expect(thrown).toBeInstanceOf(Interrupted);
    expect(health.gone?.message).toBe('the destination stopped answering: 127.0.0.1:45103: connect ECONNREFUSED 127.0.0.1:45103 (7 requests in a row over 3.0 s got no answer)');
    expect(health.signal.aborted).toBe(true);
    expect(health.signal.reason).toBe(health.gone);
    expect(told).toEqual([health.gone]);
    // From then on nothing is sent, and whatever fails fails as gone; nobody is told again.
    expect(() => health.onSend()).toThrow(DestinationGone);
    expect(fail(100)).toBe(health.gone);
    expect(told).toHaveLength(1);
  });

  it('needs the count as well as the time: four refusals over ten seconds are not enough', () => {
    const { health, fail } = setup();
    for (const ms of [0, 3000, 3000, 4000]) expect(fail(ms)).toBeUndefined();
    expect(health.gone).toBeUndefined();
    expect(fail(1)).toBeInstanceOf(DestinationGone);
  });

  it('any answer in between, even a 503, starts the count again', () => {
    const { health, fail, heard } = setup();
    for (let i = 0; i < 4; i++) fail(1000);
    health.onResponse(503, undefined, 0);
    for (let i = 0; i < 4; i++) expect(fail(1000)).toBeUndefined();
    expect(health.gone).toBeUndefined();
    expect(fail(1000)).toBeInstanceOf(DestinationGone);
    // The budget behind it heard every outcome.
    expect(heard.filter((h) => h === 'error')).toHaveLength(9);
    expect(heard).toContain('response 503');
  });

  it('TLS failures do not count; neither does anything before the first contact answered', () => {
    const tls = setup();
    for (let i = 0; i < 10; i++) expect(tls.fail(1000, untrusted())).toBeUndefined();
    expect(tls.health.gone).toBeUndefined();

    const early = setup(false);
    for (let i = 0; i < 10; i++) expect(early.fail(1000)).toBeUndefined();
    expect(early.health.gone).toBeUndefined();
    expect(early.health.onSend()).toBe(7);
  });
});

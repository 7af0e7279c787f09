/**
 * The sync journal read an entry at a time (a 200,000-tag journal is never parsed whole): the streamed reader
 * must agree with JSON.parse on any layout, across its 1 MiB chunks, and refuse what JSON.parse refuses.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { emptyState, journalTag, loadState, saveState, type StateEntry, type SyncState } from '../src/sync/sync-state.js';
import { readJsonMembers } from '../src/util/json-members.js';
import { tempDir } from './helpers/tmp.js';

const HOST = '127.0.0.1:5000';
const DIGEST = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;

function entry(ref: string, n: number, more?: Record<string, unknown>): StateEntry {
  return {
    source: ref,
    digest: DIGEST(n),
    destinationDigest: n % 7 === 0 ? DIGEST(n + 1) : null,
    verifiedAt: '2026-11-23T04:00:00.000Z',
    goneFromSourceAt: n % 11 === 0 ? '2026-11-23T05:00:00.000Z' : null,
    mediaType: n % 5 === 0 ? null : 'application/vnd.oci.image.manifest.v1+json',
    size: n % 5 === 0 ? null : n * 1000,
    subject: n % 4 === 0 ? DIGEST(n + 2) : null,
    more,
  };
}

/** A journal of `count` tags, with names and extra fields that put braces, quotes and multi-byte text on chunk edges. */
function journal(count: number): SyncState {
  const state = emptyState(HOST);
  for (let n = 0; n < count; n++) {
    const ref = `team-${n % 13}/ünïcode-${n}:v${n}`;
    state.tags.set(ref, entry(ref, n, n % 3 === 0 ? { note: `"{[}]" \\ ${'é€𝄞'.repeat(n % 50)}`, nested: { list: [n, { deep: '}' }] } } : undefined));
  }
  return state;
}

/** A simple JSON value generator: strings with every structural character, nested objects and arrays. */
function randomValue(seed: { n: number }, depth: number): unknown {
  const r = (seed.n = (seed.n * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  if (depth > 3 || r < 0.3) return `s${Math.floor(r * 1e6)} {"[,:]"} \\ \u00e9\u20ac\ud834\udd1e`;
  if (r < 0.4) return Math.floor(r * 1e9) / 7;
  if (r < 0.45) return null;
  if (r < 0.7) return Array.from({ length: Math.floor(r * 10) }, () => randomValue(seed, depth + 1));
  return Object.fromEntries(Array.from({ length: Math.floor(r * 8) }, (_, i) => [`k${i},:{"`, randomValue(seed, depth + 1)]));
}

describe('the sync journal', () => {
  it('reads back what it wrote, across 1 MiB chunks, in the layout JSON.stringify(…, null, 1) gives', () => {
    const file = path.join(tempDir(), 'state.json');
    const state = journal(12_000);
    saveState(file, state);
    const text = readFileSync(file, 'utf8');
    expect(text.length).toBeGreaterThan(3 << 20);
    const plain = JSON.parse(text) as { tags: Record<string, Record<string, unknown>>; updatedAt: string };
    // Byte for byte the layout of the whole document stringified at once (unknown fields after the known ones).
    expect(text).toBe(JSON.stringify(plain, null, 1) + '\n');
    const back = loadState(file, HOST);
    expect(back.tags.size).toBe(12_000);
    expect(back.updatedAt).toBe(plain.updatedAt);
    for (const [ref, e] of state.tags) expect(back.tags.get(ref), ref).toEqual(e);
    // A tag's source that is its own name is one string, not two.
    const [ref, first] = [...back.tags][0]!;
    expect(first.source).toBe(ref);
    // Written again unchanged: the same bytes (extra fields kept).
    saveState(file, { ...back, updatedAt: plain.updatedAt });
    const again = JSON.parse(readFileSync(file, 'utf8')) as typeof plain;
    expect(again.tags).toEqual(plain.tags);
  });

  it('agrees with JSON.parse on any layout: compact, tags not last, members of every kind', () => {
    const dir = tempDir();
    for (let s = 1; s <= 40; s++) {
      const seed = { n: s };
      const top: Record<string, unknown> = { a: randomValue(seed, 0), tags: {}, b: randomValue(seed, 0) };
      const tags: Record<string, unknown> = {};
      for (let i = 0; i < 50 + s * 20; i++) tags[`t${i}:"{,}"é`] = randomValue(seed, 1);
      top.tags = tags;
      const file = path.join(dir, `${s}.json`);
      writeFileSync(file, JSON.stringify(top, null, s % 3 === 0 ? undefined : s % 3));
      const got: Record<string, unknown> = {};
      const nested: Record<string, unknown> = {};
      for (const [where, key, value] of readJsonMembers(file, 'tags')) (where === 'top' ? got : nested)[key] = value;
      expect({ ...got, tags: nested }, `seed ${s}`).toEqual(JSON.parse(readFileSync(file, 'utf8')));
    }
  });

  it('reads a journal written before the report fields were kept: such an entry is not used without reading its tag', () => {
    const file = path.join(tempDir(), 'old.json');
    // The layout of a journal from before media type, size and subject were kept.
    const old = {
      schemaVersion: 1,
      kind: 'regmigrate.sync-state',
      destination: HOST,
      updatedAt: '2026-11-23T04:00:00.000Z',
      tags: {
        'team/api:1.0': { source: 'team/api:1.0', digest: DIGEST(1), destinationDigest: null, verifiedAt: '2026-11-23T04:00:00.000Z', goneFromSourceAt: null },
        'team/api:1.1': { source: 'team/api:1.1', digest: DIGEST(2), destinationDigest: null, verifiedAt: '2026-11-23T04:00:00.000Z', goneFromSourceAt: null, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 42 },
      },
    };
    writeFileSync(file, JSON.stringify(old, null, 1));
    const state = loadState(file, HOST);
    expect(state.tags.get('team/api:1.0')).toMatchObject({ digest: DIGEST(1), mediaType: null, size: null, subject: null, more: undefined });
    // Asking the destination: only an entry with the report's fields stands in for reading the tag.
    expect(journalTag(state, 'team/api:1.0', false)).toBeUndefined();
    expect(journalTag(state, 'team/api:1.1', false)).toMatchObject({ digest: DIGEST(2), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 42, subject: null });
    // --trust-state trusts the digest as before.
    expect(journalTag(state, 'team/api:1.0', true)?.digest).toBe(DIGEST(1));
    // Written back, the old entry keeps its shape with the new fields empty; no subject where there is none.
    saveState(file, state);
    const back = JSON.parse(readFileSync(file, 'utf8')) as { tags: Record<string, Record<string, unknown>> };
    expect(back.tags['team/api:1.0']).toEqual({ ...old.tags['team/api:1.0'], mediaType: null, size: null });
    expect(back.tags['team/api:1.1']).toEqual({ ...old.tags['team/api:1.1'] });
  });

  it('refuses a broken journal with one line naming the file and what is wrong', () => {
    const dir = tempDir();
    const good = path.join(dir, 'good.json');
    saveState(good, journal(30));
    const text = readFileSync(good, 'utf8');
    const cases: Array<[string, string, RegExp]> = [
      ['truncated', text.slice(0, text.length - 40), /truncated\.json: not valid JSON/],
      ['cut in an entry', text.slice(0, 900), /cut in an entry\.json: not valid JSON/],
      ['trailing', `${text}{}`, /trailing\.json: not valid JSON \(more after the object\)/],
      ['array', '[1, 2]', /array\.json: not a JSON object/],
      ['bad entry', text.replace(/"digest": "[^"]*",/, ''), /bad entry\.json: not a regmigrate sync journal \(team-0\/ünïcode-0:v0: digest: missing\)/],
      ['numeric digest', text.replace(/"digest": "[^"]*",/, '"digest": 5,'), /numeric digest\.json: not a regmigrate sync journal \(team-0\/ünïcode-0:v0: digest: not a string\)/],
      ['numeric media type', text.replace(/"mediaType": "[^"]*"/, '"mediaType": 7'), /numeric media type\.json: not a regmigrate sync journal \(team-1\/ünïcode-1:v1: mediaType: not a string\)/],
      ['negative size', text.replace(/"size": \d+/, '"size": -1'), /negative size\.json: not a regmigrate sync journal \(team-1\/ünïcode-1:v1: size: not a whole number of bytes\)/],
      ['fractional size', text.replace(/"size": \d+/, '"size": 1.5'), /fractional size\.json: .*size: not a whole number of bytes/],
      ['entry not an object', JSON.stringify({ ...JSON.parse(text), tags: { 'team-0/x:v0': ['x'] } }), /entry not an object\.json: .*team-0\/x:v0: not an object/],
      ['bad value', text.replace('"digest": "sha256', '"digest": sha256'), /bad value\.json: not valid JSON near/],
      ['no tags', JSON.stringify({ schemaVersion: 1, kind: 'regmigrate.sync-state', destination: HOST, updatedAt: 'x' }), /no tags\.json: not a regmigrate sync journal/],
      ['tags list', JSON.stringify({ schemaVersion: 1, kind: 'regmigrate.sync-state', destination: HOST, updatedAt: 'x', tags: [] }), /tags list\.json: not a regmigrate sync journal/],
      ['push report', JSON.stringify({ schemaVersion: 1, kind: 'regmigrate.push', destination: HOST, images: [] }), /push report\.json: not a regmigrate sync journal/],
    ];
    for (const [name, body, message] of cases) {
      const file = path.join(dir, `${name}.json`);
      writeFileSync(file, body);
      expect(() => loadState(file, HOST), name).toThrow(message);
    }
    expect(() => loadState(good, '127.0.0.1:6000')).toThrow(/good\.json is the journal of 127\.0\.0\.1:5000, not of 127\.0\.0\.1:6000/);
    expect(loadState(path.join(dir, 'missing.json'), HOST).tags.size).toBe(0);
  });
});

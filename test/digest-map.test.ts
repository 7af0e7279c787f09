/** The blob-holder map kept for a whole run: flat bytes behind it, a Map's answers in front. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DigestMap } from '../src/util/digest-map.js';

const sha = (n: number): string => `sha256:${createHash('sha256').update(String(n)).digest('hex')}`;

describe('DigestMap', () => {
  it('answers as a Map does through growth, overwrites, misses and digests that are not sha256', () => {
    const map = new DigestMap<string>();
    const expected = new Map<string, string>();
    const keys: string[] = [];
    for (let n = 0; n < 20_000; n++) {
      const key = n % 97 === 0 ? `sha512:${'ab'.repeat(64)}${n}` : n % 89 === 0 ? `sha256:${'A'.repeat(64)}${n}` : sha(n);
      keys.push(key);
      const value = `team/repo-${n % 300}`;
      map.set(key, value);
      expected.set(key, value);
      if (n % 7 === 0) {
        // Overwrite an earlier key with another repository.
        const earlier = keys[Math.floor(n / 2)]!;
        map.set(earlier, `team/other-${n}`);
        expected.set(earlier, `team/other-${n}`);
      }
    }
    expect(map.size).toBe(expected.size);
    for (const [key, value] of expected) expect(map.get(key), key).toBe(value);
    // Every entry once, with its last value.
    expect(new Map(map.entries())).toEqual(expected);
    expect([...map.entries()]).toHaveLength(expected.size);
    for (let n = 20_000; n < 21_000; n++) {
      expect(map.get(sha(n))).toBeUndefined();
      expect(map.has(sha(n))).toBe(false);
    }
    // Digests that differ only in their last byte, or that share the first four (the hash), stay apart.
    const base = sha(1).slice(0, -2);
    const near = new DigestMap<number>();
    for (let b = 0; b < 256; b++) near.set(base + b.toString(16).padStart(2, '0'), b);
    for (let b = 0; b < 256; b++) expect(near.get(base + b.toString(16).padStart(2, '0'))).toBe(b);
    expect(near.size).toBe(256);
  });
});

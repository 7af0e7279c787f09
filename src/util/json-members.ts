import { closeSync, openSync, readSync } from 'node:fs';

const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const CHUNK = 1 << 20;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

export type JsonMember = readonly [where: 'top' | 'nested', key: string, value: unknown];

export class JsonMembersError extends Error {}

function keyOf(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new JsonMembersError(`not valid JSON near ${JSON.stringify(text.slice(0, 60))}`);
  }
}

/**
 * The members of a file holding one JSON object, read a megabyte at a time: each top-level member as it ends, except
 * the object-valued member named `nested`, which comes as `{}` when it opens and whose own members come one by one
 * after it (as 'nested'). Bytes between members are not checked beyond commas and spaces. A 200,000-entry journal is
 * never one string or one parsed tree in memory (the whole file parsed at once took 280 MiB to hold 60 MiB).
 * Members are cut at structural bytes (ASCII, never inside a UTF-8 sequence) and each parsed by JSON.parse, so a
 * member that is not valid JSON, or bytes outside the object, throw a JsonMembersError.
 */
export function* readJsonMembers(file: string, nested: string): Generator<JsonMember> {
  const fd = openSync(file, 'r');
  try {
    let buf = Buffer.alloc(0);
    let depth = 0;
    let inString = false;
    let escaped = false;
    let ended = false;
    let inNested = false;
    let nestedNext = false;
    /** Start (in buf) of the member being read at the current level, or -1 between members. */
    let start = -1;
    const member = (where: 'top' | 'nested', end: number): JsonMember => {
      const text = buf.toString('utf8', start, end);
      let parsed: unknown;
      try {
        parsed = JSON.parse(`{${text}}`);
      } catch {
        throw new JsonMembersError(`not valid JSON near ${JSON.stringify(text.slice(0, 60))}`);
      }
      const keys = Object.keys(parsed as object);
      if (keys.length !== 1) throw new JsonMembersError(`not valid JSON near ${JSON.stringify(text.slice(0, 60))}`);
      return [where, keys[0]!, (parsed as Record<string, unknown>)[keys[0]!]];
    };
    for (;;) {
      const chunk = Buffer.allocUnsafe(CHUNK);
      const n = readSync(fd, chunk, 0, CHUNK, null);
      if (n === 0) break;
      // What is kept between chunks: the member being read, no more.
      const carry = start >= 0 ? buf.subarray(start) : undefined;
      buf = carry ? Buffer.concat([carry, chunk.subarray(0, n)]) : chunk.subarray(0, n);
      if (start >= 0) start = 0;
      let i = carry?.length ?? 0;
      for (; i < buf.length; i++) {
        const c = buf[i]!;
        if (inString) {
          if (escaped) escaped = false;
          else if (c === BACKSLASH) escaped = true;
          else if (c === QUOTE) inString = false;
          continue;
        }
        if (depth === 0) {
          if (isSpace(c)) continue;
          if (c !== OPEN_OBJECT || ended) throw new JsonMembersError(ended ? 'not valid JSON (more after the object)' : 'not a JSON object');
          depth = 1;
          continue;
        }
        const level = inNested ? 2 : 1;
        if (nestedNext && !isSpace(c)) {
          nestedNext = false;
          if (c === OPEN_OBJECT) {
            // The nested object: announced empty, then its members one by one; never whole.
            yield ['top', nested, {}];
            inNested = true;
            start = -1;
            depth = 2;
            continue;
          }
        }
        if (depth === level && start < 0 && !isSpace(c) && c !== COMMA && c !== CLOSE_OBJECT) start = i;
        switch (c) {
          case QUOTE:
            inString = true;
            break;
          case OPEN_OBJECT:
          case OPEN_ARRAY:
            depth++;
            break;
          case COLON:
            if (depth === 1 && !inNested && start >= 0) nestedNext = keyOf(buf.toString('utf8', start, i)) === nested;
            break;
          case COMMA:
            if (depth === level && start >= 0) {
              yield member(inNested ? 'nested' : 'top', i);
              start = -1;
            }
            break;
          case CLOSE_OBJECT:
          case CLOSE_ARRAY:
            if (depth === level && c === CLOSE_ARRAY) throw new JsonMembersError('not valid JSON (a "]" closes an object)');
            if (depth === level && start >= 0) {
              yield member(inNested ? 'nested' : 'top', i);
              start = -1;
            }
            depth--;
            if (inNested && depth === 1) inNested = false;
            if (depth === 0) ended = true;
            break;
        }
      }
    }
    if (!ended) throw new JsonMembersError('not valid JSON (it ends too soon)');
  } finally {
    closeSync(fd);
  }
}

import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';

/**
 * A report or journal the user gave back to us (`report merge`, `html`, `rewrites`, `references`), parsed: one line
 * and `hint` for a file that cannot be read or is not JSON. A CSV report holds no run facts or byte counts, so
 * only the JSON one is read back, and a CSV one is named for what it is.
 */
export function readJsonDocument(file: string, hint: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    const csv = /\.csv$/i.test(file) || text.startsWith('source,');
    throw new UsageError(`${file}: ${csv ? 'a CSV report; only JSON reports can be read' : 'not valid JSON'}`, hint);
  }
}

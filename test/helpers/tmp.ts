import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { atEnd } from './teardown.js';

/** A temp directory removed after the file's tests. */
export function tempDir(prefix = 'regmigrate-test-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  atEnd(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

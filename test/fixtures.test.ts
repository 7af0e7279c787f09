import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDemoStorage } from '../fixtures/trees.js';
import { COMMITTED_DEMO_STORAGE as DEMO_STORAGE } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

function listTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const full = path.join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else out.set(path.relative(root, full), readFileSync(full).toString('base64'));
    }
  };
  walk(root);
  return out;
}

describe('fixtures', () => {
  it('the committed demo storage is exactly what the builder writes', () => {
    const fresh = path.join(tempDir(), 'registry');
    buildDemoStorage(fresh);
    expect(listTree(DEMO_STORAGE)).toEqual(listTree(fresh));
  });

  it('writes link files without a newline, as distribution does', () => {
    const link = path.join(DEMO_STORAGE, 'docker/registry/v2/repositories/library/alpine/_manifests/tags/latest/current/link');
    expect(readFileSync(link, 'utf8')).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});

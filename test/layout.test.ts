/**
 * The layout follows the data flow (docs/architecture.md, Module layering): storage → image → inventory → plan → registry → harbor → destination → transfer → skopeo → push → sync → cutover →
 * report → cli, with util/, errors.ts and tuning.ts shared by all. No module imports from a folder later in the flow, so each
 * stage can be read, tested and replaced on its own.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT } from './helpers/cli.js';

const ORDER = ['storage', 'image', 'inventory', 'plan', 'registry', 'harbor', 'destination', 'transfer', 'skopeo', 'push', 'sync', 'cutover', 'report', 'cli'];
const SRC = path.join(PROJECT, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

/** -1 for what every layer may use (util/, errors.ts, tuning.ts). */
function layer(file: string): number {
  const top = path.relative(SRC, file).split(path.sep)[0]!;
  return top === 'util' || top.startsWith('errors') || top === 'tuning.ts' ? -1 : ORDER.indexOf(top);
}

describe('module layout', () => {
  it('every folder under src/ is a known stage', () => {
    for (const file of sources(SRC)) expect(layer(file), path.relative(SRC, file)).toBeGreaterThanOrEqual(-1);
  });

  it('no import runs backwards against the data flow', () => {
    const backwards: string[] = [];
    for (const file of sources(SRC)) {
      for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)[^;]*? from '(\.[^']+)'/gm)) {
        const target = path.resolve(path.dirname(file), m[1]!.replace(/\.js$/, '.ts'));
        if (layer(target) > layer(file)) backwards.push(`${path.relative(SRC, file)} → ${path.relative(SRC, target)}`);
        if (layer(file) === -1 && layer(target) !== -1) backwards.push(`${path.relative(SRC, file)} (shared) → ${path.relative(SRC, target)}`);
      }
    }
    expect(backwards).toEqual([]);
  });

  it('the registry client opens no files: blobs reach it as readers, credentials and CA certificates as values', () => {
    const fsImport = /^(?:import|export)[^;]*? from '(?:node:)?fs(?:\/promises)?'|\bimport\(\s*'(?:node:)?fs/m;
    const opening = sources(path.join(SRC, 'registry')).filter((file) => fsImport.test(readFileSync(file, 'utf8')));
    expect(opening.map((file) => path.relative(SRC, file))).toEqual([]);
  });
});

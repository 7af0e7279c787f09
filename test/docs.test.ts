import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT } from './helpers/cli.js';

/** Every text file under `dir` with one of `endings`, as [relative path, text]. */
function textFiles(dir: string, endings: readonly string[]): Array<[string, string]> {
  const found: Array<[string, string]> = [];
  for (const entry of readdirSync(path.join(PROJECT, dir), { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !endings.some((e) => entry.name.endsWith(e))) continue;
    const full = path.join(entry.parentPath, entry.name);
    found.push([path.relative(PROJECT, full), readFileSync(full, 'utf8')]);
  }
  return found;
}

describe('the documentation', () => {
  it('README and the program speak to users: no development history (issue numbers, sessions, targets met or missed)', () => {
    const history = /\b[Ii]ssue \d+|\bthis session|\b(first|second|third) session|\btarget ≤|\btarget <|: (met|missed)\b/;
    const offending = [['README.md', readFileSync(path.join(PROJECT, 'README.md'), 'utf8')] as [string, string], ...textFiles('bin', ['']), ...textFiles('src', ['.ts'])]
      .flatMap(([file, text]) => text.split('\n').map((line, i) => [file, i + 1, line] as const))
      .filter(([, , line]) => history.test(line))
      .map(([file, n, line]) => `${file}:${n}: ${line.trim()}`);
    expect(offending).toEqual([]);
  });

  it('CONTRIBUTING.md names exactly the Debian packages scripts/ensure-deps installs for the tests', () => {
    const script = readFileSync(path.join(PROJECT, 'scripts', 'ensure-deps'), 'utf8');
    const packageOf = new Map([...script.matchAll(/^\s*\[([\w-]+)\]=([\w.+-]+)$/gm)].map((m) => [m[1]!, m[2]!]));
    const everything = /\|\| wanted=\(([^)]*)\)/.exec(script)![1]!.trim().split(/\s+/);
    const installed = everything.map((command) => packageOf.get(command) ?? command);
    const readme = readFileSync(path.join(PROJECT, 'CONTRIBUTING.md'), 'utf8').replace(/\n/g, ' ');
    const sentence = /The tests install, when missing \(`scripts\/ensure-deps`\): ([^.]*)\./.exec(readme);
    expect(sentence, 'the CONTRIBUTING.md sentence listing what the tests install').not.toBeNull();
    const named = [...sentence![1]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    expect(named.sort()).toEqual([...new Set(installed)].sort());
  });

  it('every document the code cites is in the repository, and every cited section of docs/ exists', () => {
    const code = ['src', 'bin', 'fixtures', 'test', 'bench', 'scripts'].flatMap((dir) => textFiles(dir, dir === 'bin' ? [''] : ['.ts', '.sh']));
    const dead: string[] = [];
    let cited = 0;
    for (const [file, text] of code) {
      if (file === path.join('test', 'docs.test.ts')) continue;
      for (const match of text.matchAll(/(?<![\w/.-])((?:[\w-]+\/)*[\w-]+\.md)\b(?:, ([A-Z][^.;)\n'"`]*?(?= and |[.;)\n'"`]|$)))?/gm)) {
        const [, doc, section] = match;
        cited++;
        const where = path.join(PROJECT, doc!);
        if (!existsSync(where)) {
          dead.push(`${file}: ${doc} does not exist`);
          continue;
        }
        if (!section || !doc!.startsWith('docs/')) continue;
        const headings = readFileSync(where, 'utf8').split('\n').filter((l) => l.startsWith('#')).map((l) => l.replace(/^#+\s*/, ''));
        if (!headings.includes(section.trim())) dead.push(`${file}: ${doc} has no section "${section.trim()}"`);
      }
    }
    expect(cited).toBeGreaterThan(20);
    expect(dead).toEqual([]);
  });
});


import { cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT, runCli } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

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


/** The pages users read: the README, CONTRIBUTING.md and everything under docs/. */
function userDocs(): Array<[string, string]> {
  return [
    ['README.md', readFileSync(path.join(PROJECT, 'README.md'), 'utf8')],
    ['CONTRIBUTING.md', readFileSync(path.join(PROJECT, 'CONTRIBUTING.md'), 'utf8')],
    ...textFiles('docs', ['.md']),
  ];
}

/** A heading's anchor as GitHub makes it: markup dropped, lower case, punctuation gone, spaces as hyphens. */
function githubSlug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .toLowerCase();
  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
}

/** Every anchor a Markdown file has: one per heading (outside code blocks), repeats numbered -1, -2 as GitHub does. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const count = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*```/.test(line)) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const slug = githubSlug(heading[1]!);
    const n = count.get(slug) ?? 0;
    count.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

/** The headings of a Markdown file, as written (markup kept). */
function headingsOf(markdown: string): string[] {
  let fenced = false;
  return markdown.split('\n').filter((line) => {
    if (/^\s*```/.test(line)) fenced = !fenced;
    return !fenced && /^#{1,6}\s/.test(line);
  }).map((l) => l.replace(/^#+\s*/, '').trim());
}

/** Links of a Markdown file outside code: [text](target), images too. */
function linksOf(markdown: string): string[] {
  const prose = markdown.replace(/^\s*```[\s\S]*?^\s*```/gm, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]!);
}

describe('the documentation', () => {
  it('README, docs/ and the program speak to users: no development history (issue numbers, sessions, targets met or missed)', () => {
    const history = /\b[Ii]ssue \d+|\bthis session|\b(first|second|third) session|\btarget ≤|\btarget <|: (met|missed)\b/;
    const offending = [...userDocs(), ...textFiles('bin', ['']), ...textFiles('src', ['.ts'])]
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

  it('every document the code and its help cite is in the repository, and every cited section or anchor exists', () => {
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
        if (!section) continue;
        if (!headingsOf(readFileSync(where, 'utf8')).includes(section.trim())) dead.push(`${file}: ${doc} has no section "${section.trim()}"`);
      }
      // `docs/architecture.md#error-model`: the anchor must be one of the page's headings.
      for (const [, doc, anchor] of text.matchAll(/(?<![\w/.-])((?:[\w-]+\/)*[\w-]+\.md)#([\w-]+)/g)) {
        cited++;
        const where = path.join(PROJECT, doc!);
        if (!existsSync(where)) dead.push(`${file}: ${doc} does not exist`);
        else if (!anchorsOf(readFileSync(where, 'utf8')).has(anchor!)) dead.push(`${file}: ${doc} has no heading #${anchor}`);
      }
      // The README is cited by its sections too (`see "Config file" in the README`, `README, Performance`).
      for (const [, quoted, after] of text.matchAll(/"([^"\n]+)" in the README\b|\bREADME(?:\.md)?(?:'s)?,? (?:section )?"?([A-Z][\w -]*)/g)) {
        cited++;
        const section = (quoted ?? after)!.trim();
        if (!headingsOf(readFileSync(path.join(PROJECT, 'README.md'), 'utf8')).includes(section)) dead.push(`${file}: README.md has no section "${section}"`);
      }
    }
    expect(cited).toBeGreaterThan(20);
    expect(dead).toEqual([]);
  });
  it('every relative link and #anchor in README.md, CONTRIBUTING.md and docs/ leads to a file and heading that exist', () => {
    const broken: string[] = [];
    let checked = 0;
    for (const [file, text] of userDocs()) {
      for (const link of linksOf(text)) {
        if (/^[a-z]+:/i.test(link)) continue; // https:, mailto:: not ours to check offline
        checked++;
        const [target, anchor] = link.split('#') as [string, string | undefined];
        const where = target === '' ? path.join(PROJECT, file) : path.resolve(PROJECT, path.dirname(file), decodeURIComponent(target));
        if (!where.startsWith(PROJECT + path.sep) || !existsSync(where)) {
          broken.push(`${file}: ${link}: no such file`);
          continue;
        }
        if (anchor === undefined) continue;
        if (statSync(where).isDirectory() || !where.endsWith('.md')) broken.push(`${file}: ${link}: an anchor into something that is not a page`);
        else if (!anchorsOf(readFileSync(where, 'utf8')).has(anchor)) broken.push(`${file}: ${link}: ${path.relative(PROJECT, where)} has no heading #${anchor}`);
      }
    }
    expect(checked).toBeGreaterThan(40);
    expect(broken).toEqual([]);
  });

  it('anchors are made as GitHub makes them', () => {
    expect([...anchorsOf('# regmigrate push\n## With skopeo: `--via skopeo`\n## Exit status\n```\n# not a heading\n```\n## Exit status\n### Tags, names & [links](x.md)')]).toEqual([
      'regmigrate-push', 'with-skopeo---via-skopeo', 'exit-status', 'exit-status-1', 'tags-names--links',
    ]);
  });

  it('the README fits a first screen: at most 200 lines, the push into Harbor within its first 30', () => {
    const readme = readFileSync(path.join(PROJECT, 'README.md'), 'utf8').split('\n');
    expect(readme.length).toBeLessThanOrEqual(200);
    const push = readme.findIndex((l) => /regmigrate push \S+ --to harbor/.test(l));
    expect(push).toBeGreaterThanOrEqual(0);
    expect(push).toBeLessThan(30);
    for (const command of ['npm ci && npm run demo', 'npm ci && npm test']) expect(readme.slice(0, 12).join('\n')).toContain(command);
  });
});

describe('the reference written from the program (npm run docs)', () => {
  const generator = path.join(PROJECT, 'dist', 'scripts', 'gen-docs.js');

  it('the committed pages, config keys, man pages and package.json man list are what it writes', async () => {
    const check = await execa('node', [generator, '--check'], { reject: false });
    expect(check.stderr).toBe('');
    expect(check.exitCode).toBe(0);
  });

  it('fails naming the file when a committed page differs, or when a command has no page', async () => {
    const copy = tempDir('regmigrate-docs-');
    for (const part of ['docs', 'man', 'README.md', 'package.json']) cpSync(path.join(PROJECT, part), path.join(copy, part), { recursive: true });
    const page = path.join(copy, 'docs', 'commands', 'push.md');
    const text = readFileSync(page, 'utf8');
    writeFileSync(page, text.replace(/^\| `--schema1 <mode>` \|.*\n/m, ''));
    const drifted = await execa('node', [generator, '--check', '--root', copy], { reject: false });
    expect(drifted.exitCode).toBe(1);
    expect(drifted.stderr).toContain('docs/commands/push.md');
    expect(drifted.stderr).not.toContain('docs/commands/sync.md');

    writeFileSync(page, text.replace(/<!-- BEGIN GENERATED OPTIONS: push -->[\s\S]*?<!-- END GENERATED OPTIONS -->/, ''));
    const missing = await execa('node', [generator, '--check', '--root', copy], { reject: false });
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/no docs\/commands page holds the options of: push\b/);
  });

  it("each command's page lists exactly the options its --help lists", async () => {
    const pages = textFiles(path.join('docs', 'commands'), ['.md']);
    const blocks = pages.flatMap(([, text]) => [...text.matchAll(/<!-- BEGIN GENERATED OPTIONS: ([\w -]+?) -->\n([\s\S]*?)<!-- END GENERATED OPTIONS -->/g)]);
    expect(blocks.map((b) => b[1]).sort()).toEqual(['completion', 'config check', 'diff', 'export', 'push', 'report html', 'report merge', 'report references', 'report rewrites', 'scan', 'sync']);
    for (const [, command, block] of blocks) {
      const help = await runCli([...command!.split(' '), '--help']);
      expect(help.exitCode).toBe(0);
      const options = help.stdout.split('\nOptions:\n')[1]!.split('\n').map((l) => /^  (-[^ ].*?)(?:  |$)/.exec(l)?.[1]).filter((o): o is string => o !== undefined);
      const documented = [...block!.matchAll(/^\| `(-[^`]+)` \|/gm)].map((m) => m[1]!);
      expect(documented, command).toEqual(options);
    }
  });

  it('the man pages render without a warning, and the container image installs them', async () => {
    const manifest = JSON.parse(readFileSync(path.join(PROJECT, 'package.json'), 'utf8')) as { man: string[]; files: string[] };
    expect(manifest.man).toContain('man/regmigrate.1');
    expect(manifest.man).toContain('man/regmigrate-push.1');
    expect(manifest.files).toContain('man');
    for (const page of manifest.man) {
      const rendered = await execa('man', ['--warnings', '-l', path.join(PROJECT, page)], { env: { MANWIDTH: '80', MAN_KEEP_FORMATTING: '' }, reject: false });
      expect(rendered.stderr, page).toBe('');
      expect(rendered.exitCode, page).toBe(0);
      expect(rendered.stdout, page).toContain('--help');
    }
    const dockerfile = readFileSync(path.join(PROJECT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^COPY --from=build \/src\/man\/ \/usr\/local\/share\/man\/man1\/$/m);
  });
});


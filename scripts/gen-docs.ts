/**
 * `npm run docs`: writes the parts of the documentation that must follow the program, from commander's own
 * definitions (src/cli/describe.ts):
 * - the options of each command in docs/commands/<command>.md, between `<!-- BEGIN GENERATED OPTIONS: <command> -->`
 *   and `<!-- END GENERATED OPTIONS -->` (the prose around them is written by hand);
 * - the config file's keys in docs/selection.md, between `<!-- BEGIN GENERATED CONFIG KEYS -->` and its END;
 * - the man pages man/regmigrate.1 and man/regmigrate-<command>.1, from the same pages and the README.
 *
 * `--check` writes nothing and exits 1 naming every file that differs from what it would write (test/docs.test.ts
 * runs it); `--root DIR` works on another copy of the repository.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as z from 'zod';
import { ConfigFile } from '../src/cli/config.js';
import { allCommands, describeProgram, type CommandInfo, type OptionInfo } from '../src/cli/describe.js';
import { VERSION } from '../src/version.js';

const OPTIONS_BLOCK = /<!-- BEGIN GENERATED OPTIONS: ([\w -]+?) -->\n[\s\S]*?<!-- END GENERATED OPTIONS -->/g;
const CONFIG_BLOCK = /<!-- BEGIN GENERATED CONFIG KEYS -->\n[\s\S]*?<!-- END GENERATED CONFIG KEYS -->/;

// ---- Markdown --------------------------------------------------------------------------------------------------

/** Text for a table cell: no pipe ends the cell, no `<name>` is taken for HTML. */
const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const code = (text: string): string => `\`${text.replace(/\|/g, '\\|')}\``;

function usageOf(info: CommandInfo): string {
  return `regmigrate ${[...info.path, info.usage].join(' ')}`;
}

function optionsMarkdown(info: CommandInfo): string {
  const lines = [code(usageOf(info)), ''];
  if (info.arguments.length > 0) {
    lines.push('| argument | meaning |', '|---|---|', ...info.arguments.map((a) => `| ${code(a.term)} | ${cell(a.description)} |`), '');
  }
  lines.push('| option | meaning |', '|---|---|', ...info.options.map((o) => `| ${code(o.term)} | ${cell(o.description)} |`));
  return lines.join('\n');
}

/** Every key of the config file, the flag it stands for, the commands that take it and what it does. */
function configKeysMarkdown(program: CommandInfo): string {
  // The commands that read a config file (`--config`); `report` and `config` take none.
  const commands = allCommands(program).filter((c) => c.options.some((o) => o.attribute === 'config'));
  const rows = ['| key | flag | commands | meaning |', '|---|---|---|---|'];
  rows.push('| `version` | | | the file format: `1` (optional) |');
  const takingRoot = commands.filter((c) => c.arguments.some((a) => a.name === 'root'));
  rows.push(`| \`source\` | \`[root]\` | ${takingRoot.map((c) => c.path.join(' ')).join(', ')} | the registry storage root, when the command line names none |`);
  for (const [section, schema] of Object.entries(ConfigFile.shape)) {
    const object = schema instanceof z.ZodOptional ? schema.unwrap() : schema;
    if (!(object instanceof z.ZodObject)) continue;
    for (const key of Object.keys(object.shape)) {
      const having = commands.flatMap((c) => c.options.filter((o) => o.attribute === key).map((o) => [c, o] as const));
      if (having.length === 0) throw new Error(`config key ${section}.${key} is no option of any command`);
      // One meaning per distinct help text, named by the commands that give it (`--concurrency` differs).
      const meanings = new Map<string, string[]>();
      for (const [c, o] of having) meanings.set(o.description, [...(meanings.get(o.description) ?? []), c.path.join(' ')]);
      const meaning = meanings.size === 1 ? [...meanings.keys()][0]! : [...meanings].map(([text, names]) => `${names.join(', ')}: ${text}`).join('; ');
      const long = having[0]![1].long!;
      rows.push(`| \`${section}.${key}\` | \`${long}\` | ${having.map(([c]) => c.path.join(' ')).join(', ')} | ${cell(meaning)} |`);
    }
  }
  return rows.join('\n');
}

/** A reference page with its generated blocks written afresh. */
function withBlocks(text: string, file: string, byName: Map<string, CommandInfo>, program: CommandInfo, seen: Set<string>): string {
  let out = text.replace(OPTIONS_BLOCK, (_all, name: string) => {
    const info = byName.get(name);
    if (!info) throw new Error(`${file}: no command "${name}"`);
    seen.add(name);
    return `<!-- BEGIN GENERATED OPTIONS: ${name} -->\n${optionsMarkdown(info)}\n<!-- END GENERATED OPTIONS -->`;
  });
  if (CONFIG_BLOCK.test(out)) out = out.replace(CONFIG_BLOCK, `<!-- BEGIN GENERATED CONFIG KEYS -->\n${configKeysMarkdown(program)}\n<!-- END GENERATED CONFIG KEYS -->`);
  return out;
}

// ---- roff ------------------------------------------------------------------------------------------------------

/** Characters roff would read as requests or escapes, in text that is to be shown as it is. */
const roffEscape = (text: string): string => text.replace(/\\/g, '\\e');
/** Literal text (code, options): hyphens as the minus sign, so a copied option works. */
const roffLiteral = (text: string): string => roffEscape(text).replace(/-/g, '\\-');
/** A line roff will not take for a request. */
const roffLine = (line: string): string => (/^[.']/.test(line) ? `\\&${line}` : line);

/** Markdown inline text to roff: code and bold in bold, links as their text. */
function roffInline(text: string): string {
  const pieces: string[] = [];
  let rest = text.replace(/!\[[^\]]*\]\([^)]*\)/g, '').replace(/\[([^\]]+)\]\([^)]*\)/g, '$1');
  while (rest.length > 0) {
    const m = /`([^`]+)`|\*\*([^*]+)\*\*/.exec(rest);
    if (!m) {
      pieces.push(roffEscape(rest));
      break;
    }
    pieces.push(roffEscape(rest.slice(0, m.index)));
    // A long code span (a CSV header) may break after its commas (roff's zero-width break point).
    pieces.push(m[1] !== undefined ? `\\fB${roffLiteral(m[1]).replace(/,(?=\S)/g, ',\\:')}\\fR` : `\\fB${roffEscape(m[2]!)}\\fR`);
    rest = rest.slice(m.index + m[0].length);
  }
  return pieces.join('').replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}

function optionTerm(term: string): string {
  return term.replace(/([^,\s]+)|(,)/g, (piece: string) => {
    if (piece === ',') return ',';
    if (/^[<[]/.test(piece)) return `\\fI${roffLiteral(piece.replace(/^[<[]|[>\]]$/g, ''))}\\fR`;
    return `\\fB${roffLiteral(piece)}\\fR`;
  });
}

function optionsRoff(info: CommandInfo): string[] {
  const out = ['.PP', `\\fB${roffLiteral(`regmigrate ${info.path.join(' ')}`)}\\fR ${roffLiteral(info.usage)}`];
  for (const a of info.arguments) out.push('.TP', `\\fI${roffLiteral(a.name)}\\fR`, roffLine(roffInline(a.description)));
  for (const o of info.options) out.push('.TP', optionTerm(o.term), roffLine(roffEscape(o.description)));
  return out;
}

/** Markdown (the subset the pages use) to roff body lines; `## X` become sections. */
function markdownToRoff(markdown: string, byName: Map<string, CommandInfo>): string[] {
  const out: string[] = [];
  const lines = markdown.split('\n');
  let i = 0;
  const paragraph: string[] = [];
  const flush = (): void => {
    if (paragraph.length > 0) out.push('.PP', roffLine(roffInline(paragraph.join(' '))));
    paragraph.length = 0;
  };
  while (i < lines.length) {
    const line = lines[i]!;
    const trimmed = line.trim();
    const block = /^<!-- BEGIN GENERATED OPTIONS: ([\w -]+?) -->$/.exec(trimmed);
    if (block) {
      flush();
      out.push(...optionsRoff(byName.get(block[1]!)!));
      while (i < lines.length && lines[i]!.trim() !== '<!-- END GENERATED OPTIONS -->') i++;
      i++;
      continue;
    }
    if (trimmed === '') {
      flush();
    } else if (trimmed.startsWith('```')) {
      flush();
      const indent = line.indexOf('```');
      out.push('.PP', '.RS 4', '.nf');
      for (i++; i < lines.length && !lines[i]!.trim().startsWith('```'); i++) out.push(roffLine(roffLiteral(lines[i]!.slice(indent))));
      out.push('.fi', '.RE');
    } else if (/^#{2,3} /.test(trimmed)) {
      flush();
      const title = roffInline(trimmed.replace(/^#+ /, ''));
      out.push(trimmed.startsWith('## ') ? `.SH "${title.toUpperCase()}"` : `.SS "${title}"`);
    } else if (trimmed.startsWith('|')) {
      flush();
      const rows: string[][] = [];
      for (; i < lines.length && lines[i]!.trim().startsWith('|'); i++) {
        rows.push(lines[i]!.trim().replace(/^\||\|$/g, '').split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|')));
      }
      i--;
      const [head, , ...body] = rows;
      for (const row of body) {
        out.push('.TP', roffLine(roffInline(row[0] ?? '')));
        const rest = row.slice(1).map((c, k) => (row.length > 2 && c ? `${head![k + 1]}: ${c}` : c)).filter((c) => c !== '');
        out.push(roffLine(roffInline(rest.join('; ') || '\u2013')));
      }
    } else if (/^(- |\d+\. )/.test(trimmed)) {
      flush();
      const mark = /^(- |\d+\. )/.exec(trimmed)![1]!;
      const item = [trimmed.slice(mark.length)];
      for (i++; i < lines.length && /^\s+\S/.test(lines[i]!) && !/^\s*(- |\d+\. |```)/.test(lines[i]!); i++) item.push(lines[i]!.trim());
      i--;
      out.push(mark === '- ' ? '.IP \\(bu 2' : `.IP ${mark.trim()} 4`, roffLine(roffInline(item.join(' '))));
    } else if (trimmed.startsWith('<!--') || trimmed.startsWith('# ')) {
      // Markers and the page title: the man page has its own.
    } else {
      paragraph.push(trimmed);
    }
    i++;
  }
  flush();
  return out;
}

function manHeader(name: string, summary: string): string[] {
  return [
    `.\\" Written by npm run docs (scripts/gen-docs.ts) from docs/ and the program's options; do not edit.`,
    `.TH ${name.toUpperCase().replace(/-/g, '\\-')} 1 "" "regmigrate ${VERSION}" "User Commands"`,
    // No hyphenation (an option split at its hyphens reads as another), ragged right.
    '.nh',
    '.ad l',
    '.SH NAME',
    `${roffLiteral(name)} \\- ${roffEscape(summary)}`,
  ];
}

/** The man page of a top-level command, from its page in docs/commands. */
function commandManPage(info: CommandInfo, page: string, byName: Map<string, CommandInfo>): string {
  const name = `regmigrate-${info.path[0]}`;
  const leaves = allCommands(info).filter((c) => c.subcommands.length === 0);
  const synopsis = leaves.flatMap((c) => ['.PP', `\\fB${roffLiteral(`regmigrate ${c.path.join(' ')}`)}\\fR ${roffLiteral(c.usage)}`]);
  const title = page.indexOf('\n## ');
  const intro = title < 0 ? page : page.slice(0, title);
  const body = title < 0 ? '' : page.slice(title);
  return [
    ...manHeader(name, info.description),
    '.SH SYNOPSIS',
    ...synopsis,
    '.SH DESCRIPTION',
    ...markdownToRoff(intro, byName),
    ...markdownToRoff(body, byName),
    '.SH "SEE ALSO"',
    `\\fBregmigrate\\fR(1); docs/commands/${info.path[0]}.md in the regmigrate repository.`,
    '',
  ].join('\n');
}

/** The variables regmigrate reads, for the main man page. */
const ENVIRONMENT: ReadonlyArray<[string, string]> = [
  ['REGMIGRATE_USERNAME, REGMIGRATE_PASSWORD', 'credentials for the destination, when --username with --password-stdin is not given'],
  ['DOCKER_CONFIG', 'the directory of the docker config.json credentials are taken from (default ~/.docker)'],
  ['AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, AWS_REGION', 'credentials and region for an s3:// source, found by the AWS chain (docs/s3.md in the repository)'],
  ['JOB_COMPLETION_INDEX', 'with --shards n: this worker\'s shard (set by a Kubernetes Indexed Job)'],
  ['REGMIGRATE_STOP_GRACE_SECONDS', 'seconds uploads under way get to finish after SIGINT or SIGTERM (default 5)'],
  ['REGMIGRATE_BATCH_TAGS', 'tags read, planned and transferred at a time (default 2000)'],
  ['REGMIGRATE_SHARD_WAIT_SECONDS', 'how long a shard waits for a blob another shard uploads before uploading it itself (default 60)'],
  ['REGMIGRATE_DEBUG', 'set: a stack trace with an internal error'],
];

/** man regmigrate: the commands, the README's quick start and exit codes, the environment. */
function programManPage(program: CommandInfo, readme: string, byName: Map<string, CommandInfo>): string {
  const section = (heading: RegExp): string => {
    const start = readme.search(heading);
    if (start < 0) throw new Error(`README.md: no section ${heading}`);
    const next = readme.indexOf('\n## ', start + 1);
    return readme.slice(readme.indexOf('\n', start) + 1, next < 0 ? undefined : next);
  };
  const pitch = readme.slice(readme.indexOf('\n') + 1, readme.indexOf('```'));
  const commands = program.subcommands.flatMap((c) => ['.TP', `\\fB${roffLiteral(c.path[0]!)}\\fR`, `${roffEscape(c.description)}; see \\fBregmigrate\\-${roffLiteral(c.path[0]!)}\\fR(1).`]);
  const options: OptionInfo[] = [...program.options];
  return [
    ...manHeader('regmigrate', program.description),
    '.SH SYNOPSIS',
    '.PP',
    `\\fBregmigrate\\fR \\fIcommand\\fR [\\fIoptions\\fR] [\\fIarguments\\fR]`,
    '.SH DESCRIPTION',
    ...markdownToRoff(pitch, byName),
    '.SH COMMANDS',
    ...commands,
    '.SH OPTIONS',
    ...options.flatMap((o) => ['.TP', optionTerm(o.term), roffEscape(o.description)]),
    '.SH EXAMPLES',
    ...markdownToRoff(section(/^## Quick start/m), byName),
    '.SH "EXIT STATUS"',
    ...markdownToRoff(section(/^## Exit codes/m), byName),
    '.SH ENVIRONMENT',
    ...ENVIRONMENT.flatMap(([name, text]) => ['.TP', name.split(', ').map((n) => `\\fB${roffLiteral(n)}\\fR`).join(', '), roffEscape(text)]),
    '.SH "SEE ALSO"',
    program.subcommands.map((c) => `\\fBregmigrate\\-${roffLiteral(c.path[0]!)}\\fR(1)`).join(', ') + ', \\fBskopeo\\fR(1); README.md and docs/ in the regmigrate repository.',
    '',
  ].join('\n');
}

// ---- The files -------------------------------------------------------------------------------------------------

/** Every generated file, by its path in the repository, as it should be. */
export async function generate(root: string): Promise<Map<string, string>> {
  const program = await describeProgram();
  const byName = new Map(allCommands(program).map((c) => [c.path.join(' '), c]));
  const files = new Map<string, string>();
  const seen = new Set<string>();
  const pages = readdirSync(path.join(root, 'docs', 'commands')).filter((f) => f.endsWith('.md')).map((f) => path.join('docs', 'commands', f));
  for (const file of [...pages, 'docs/selection.md']) {
    files.set(file, withBlocks(readFileSync(path.join(root, file), 'utf8'), file, byName, program, seen));
  }
  // Every command and subcommand has its options on a page: a new one is documented, or this fails.
  const leaves = allCommands(program).filter((c) => c.path.length > 0 && c.subcommands.length === 0).map((c) => c.path.join(' '));
  const undocumented = leaves.filter((name) => !seen.has(name));
  if (undocumented.length > 0) throw new Error(`no docs/commands page holds the options of: ${undocumented.join(', ')} (add a <!-- BEGIN GENERATED OPTIONS: … --> block)`);
  for (const command of program.subcommands) {
    const page = path.join('docs', 'commands', `${command.path[0]}.md`);
    const text = files.get(page);
    if (text === undefined) throw new Error(`${page} is missing`);
    files.set(path.join('man', `regmigrate-${command.path[0]}.1`), commandManPage(command, text, byName));
  }
  files.set(path.join('man', 'regmigrate.1'), programManPage(program, readFileSync(path.join(root, 'README.md'), 'utf8'), byName));
  return files;
}

/** The man pages, as package.json's `man` lists them. */
export function manPages(files: Map<string, string>): string[] {
  return [...files.keys()].filter((f) => f.startsWith('man' + path.sep)).map((f) => f.split(path.sep).join('/')).sort();
}

async function main(argv: string[]): Promise<number> {
  const check = argv.includes('--check');
  const at = argv.indexOf('--root');
  const root = at >= 0 ? path.resolve(argv[at + 1]!) : path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const files = await generate(root);
  const differing: string[] = [];
  for (const [file, text] of files) {
    const where = path.join(root, file);
    const now = existsSync(where) ? readFileSync(where, 'utf8') : undefined;
    if (now === text) continue;
    differing.push(file);
    if (!check) {
      mkdirSync(path.dirname(where), { recursive: true });
      writeFileSync(where, text);
    }
  }
  // package.json lists the man pages npm installs.
  const manifestFile = path.join(root, 'package.json');
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { man?: string[] };
  const listed = JSON.stringify(manifest.man ?? []);
  if (listed !== JSON.stringify(manPages(files))) differing.push(`package.json (man: ${listed}, not ${JSON.stringify(manPages(files))})`);
  if (!check && listed !== JSON.stringify(manPages(files))) {
    process.stderr.write(`gen-docs: package.json's "man" must list ${JSON.stringify(manPages(files))}\n`);
    return 1;
  }
  if (check) {
    if (differing.length > 0) {
      process.stderr.write(`gen-docs: out of date (run npm run docs): ${differing.join(', ')}\n`);
      return 1;
    }
    return 0;
  }
  for (const file of differing) process.stdout.write(`gen-docs: wrote ${file}\n`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      process.stderr.write(`gen-docs: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

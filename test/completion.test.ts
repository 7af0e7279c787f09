import { execa } from 'execa';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

let script = '';
/** A directory to complete paths in: two files, a directory, a name with a space. */
const here = tempDir('regmigrate-completion-');
mkdirSync(path.join(here, 'reports'));
writeFileSync(path.join(here, 'state.json'), '{}');
writeFileSync(path.join(here, 'stale notes.txt'), '');

beforeAll(async () => {
  const printed = await runCli(['completion', 'bash']);
  expect(printed.exitCode, printed.stderr).toBe(0);
  script = printed.stdout;
});

/**
 * What bash offers for the command line `line` with the cursor at its end: the script is sourced in a fresh bash,
 * COMP_WORDS/COMP_CWORD set as bash's readline would set them (split at spaces and at '=', as COMP_WORDBREAKS does),
 * the function `complete` registered for regmigrate is called, and COMPREPLY is read back.
 */
async function offered(line: string): Promise<string[]> {
  const words = line.split(/ +|(=)/).filter((w) => w !== undefined && w !== '');
  if (line.endsWith(' ')) words.push('');
  const program = [
    script,
    // The function bash itself would call: the one `complete -F` registered.
    `fn=$(complete -p regmigrate | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p')`,
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
    `COMP_CWORD=${words.length - 1}`,
    `COMP_LINE='${line}'`,
    '"$fn" regmigrate',
    `printf '%s\\n' "\${COMPREPLY[@]}"`,
  ].join('\n');
  const result = await execa('bash', ['--norc', '-c', program], { cwd: here, reject: false });
  expect(result.stderr).toBe('');
  expect(result.exitCode).toBe(0);
  return result.stdout.split('\n').filter((l) => l !== '').sort();
}

describe('regmigrate completion bash', () => {
  it('completes the commands, and a command from its start', async () => {
    expect(await offered('regmigrate ')).toEqual(['completion', 'config', 'diff', 'export', 'push', 'report', 'scan', 'sync']);
    expect(await offered('regmigrate re')).toEqual(['report']);
  });

  it('completes subcommands, then their own options', async () => {
    expect(await offered('regmigrate report ')).toEqual(['html', 'merge', 'references', 'rewrites']);
    expect(await offered('regmigrate report merge --')).toEqual(['--help', '--output']);
  });

  it("completes a command's options, and only its own", async () => {
    expect(await offered('regmigrate push --sch')).toEqual(['--schema1']);
    expect(await offered('regmigrate push --dry')).toEqual(['--dry-run']);
    expect(await offered('regmigrate sync --dry')).toEqual([]);
    expect(await offered('regmigrate sync --trust')).toEqual(['--trust-state']);
  });

  it('completes the values of options that take a fixed set, per command', async () => {
    expect(await offered('regmigrate push --schema1 ')).toEqual(['convert', 'keep', 'skip']);
    expect(await offered('regmigrate scan -o ')).toEqual(['csv', 'html', 'json', 'table']);
    expect(await offered('regmigrate push --output ')).toEqual(['json', 'table']);
    expect(await offered('regmigrate sync /var/lib/registry --log-format j')).toEqual(['json']);
    expect(await offered('regmigrate push --via=sk')).toEqual(['skopeo']);
    expect(await offered('regmigrate report rewrites final.json --format ')).toEqual(['csv', 'json', 'registries.conf']);
    expect(await offered('regmigrate completion ')).toEqual(['bash', 'fish', 'zsh']);
  });

  it('completes paths where a path is taken, directories where a directory is', async () => {
    expect(await offered('regmigrate sync --state st')).toEqual(['stale notes.txt', 'state.json']);
    expect(await offered('regmigrate export --out ')).toEqual(['reports']);
    expect(await offered('regmigrate report references ')).toEqual(['reports']);
    // After an option and its value, the word is the storage root: a path.
    expect(await offered('regmigrate push --to harbor.example.com st')).toEqual(['stale notes.txt', 'state.json']);
    // A value that is free text gets no guesses.
    expect(await offered('regmigrate push --to ')).toEqual([]);
  });
});

describe('the fixed sets completion offers', () => {
  it('are exactly the values each command accepts: any other value is refused naming the same set', async () => {
    const cases: Array<[string[], string, string[]]> = [
      [['scan', '/nonexistent'], '--output', ['table', 'json', 'csv', 'html']],
      [['push', '/nonexistent', '--to', 'h'], '--output', ['table', 'json']],
      [['diff', '/nonexistent', '--to', 'h'], '--output', ['table', 'json', 'csv']],
      [['report', 'merge', 'a.json'], '--output', ['table', 'json', 'csv']],
      [['report', 'references', '.', '--from', 'a.json', '--old-host', 'x'], '--output', ['table', 'json', 'csv']],
      [['report', 'rewrites', 'a.json', '--old-host', 'x'], '--format', ['registries.conf', 'json', 'csv']],
      [['sync', '/nonexistent', '--to', 'h'], '--via', ['oci', 'skopeo']],
      [['push', '/nonexistent', '--to', 'h'], '--schema1', ['keep', 'convert', 'skip']],
      [['push', '/nonexistent', '--to', 'h'], '--log-format', ['human', 'json']],
      [['export', '/nonexistent', '--out', path.join(here, 'out')], '--shard-by', ['repository', 'project']],
    ];
    for (const [args, option, values] of cases) {
      const command = args[0] === 'report' ? `${args[0]} ${args[1]}` : args[0]!;
      const line = `regmigrate ${command} ${option} `;
      expect(await offered(line), line).toEqual([...values].sort());
      const refused = await runCli([...args, option, 'bogus']);
      expect(refused.exitCode, `${line}bogus`).toBe(2);
      const named = new RegExp(`${option} must be ([^"]+), not "bogus"`).exec(refused.stderr)?.[1];
      expect(named?.split(/, | or /).sort(), `${line}bogus: ${refused.stderr}`).toEqual([...values].sort());
    }
  });
});

/**
 * What zsh's own completion system offers for `line` followed by a Tab: a zsh in a pseudo-terminal (zsh/zpty) with
 * compinit and the printed script loaded, its `compadd` wrapped to print what it adds, between the two null lines the
 * completion hooks print before and after.
 */
async function zshOffered(zshScript: string, line: string): Promise<string[]> {
  const dir = tempDir('regmigrate-zsh-');
  const completion = path.join(dir, 'regmigrate.zsh');
  const init = path.join(dir, 'init.zsh');
  writeFileSync(completion, zshScript);
  writeFileSync(
    init,
    [
      'PROMPT=',
      'autoload -U compinit && compinit -u -D',
      "bindkey '^I' complete-word",
      "null-line () { echo -E - $'\\0' }",
      'compprefuncs=( null-line )',
      'comppostfuncs=( null-line exit )',
      "zstyle ':completion:*' list-grouped false",
      "zstyle ':completion:*' insert-tab false",
      'compadd () {',
      '  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\\ * ]]; then builtin compadd "$@"; return $?; fi',
      '  typeset -a __hits',
      '  builtin compadd -A __hits "$@"',
      '  (( $#__hits )) && print -rl -- "${__hits[@]}"',
      '}',
      `source ${completion}`,
    ].join('\n') + '\n',
  );
  const driver = [
    'zmodload zsh/zpty',
    'zpty z zsh -f -i',
    `zpty -w z "source ${init}"`,
    `zpty -w z "$1"$'\\t'`,
    'integer seen=0',
    'while zpty -r z; do :; done | while IFS= read -r l; do',
    "  if [[ $l == *$'\\0\\r' ]]; then (( seen++ )) && exit 0 || continue; fi",
    "  (( seen )) && print -r -- \"${l%$'\\r'}\"",
    'done',
  ].join('\n');
  const result = await execa('zsh', ['-f', '-c', driver, 'zsh', line], { cwd: here, reject: false, timeout: 30_000 });
  expect(result.exitCode, result.stderr).toBe(0);
  return result.stdout.split('\n').filter((l) => l !== '').sort();
}

describe('regmigrate completion zsh and fish', () => {
  it("zsh's completion system offers commands, options, value sets and paths", async () => {
    const zsh = (await runCli(['completion', 'zsh'])).stdout;
    expect(await zshOffered(zsh, 'regmigrate pu')).toEqual(['push']);
    expect(await zshOffered(zsh, 'regmigrate report ')).toEqual(['html', 'merge', 'references', 'rewrites']);
    expect(await zshOffered(zsh, 'regmigrate push --sch')).toEqual(['--schema1']);
    expect(await zshOffered(zsh, 'regmigrate push --schema1 ')).toEqual(['convert', 'keep', 'skip']);
    // Files, a name with a space quoted for the command line.
    expect(await zshOffered(zsh, 'regmigrate sync --state st')).toEqual(['stale\\ notes.txt', 'state.json']);
  });

  it('zsh gets the same completion, run through bashcompinit', async () => {
    const zsh = await runCli(['completion', 'zsh']);
    expect(zsh.exitCode).toBe(0);
    expect(zsh.stdout).toMatch(/^#compdef regmigrate\n/);
    expect(zsh.stdout).toContain('autoload -U +X bashcompinit && bashcompinit\n');
    // The body bash runs in the tests above, word for word.
    const body = script.slice(script.indexOf('# Options that take a value'));
    expect(zsh.stdout.endsWith(body)).toBe(true);
  });

  it('fish gets a line per command, option and value set', async () => {
    const fish = await runCli(['completion', 'fish']);
    expect(fish.exitCode).toBe(0);
    const lines = fish.stdout.split('\n');
    expect(lines).toContain("complete -c regmigrate -n '__fish_use_subcommand' -a push -d 'push every image of a registry storage into Harbor (or any OCI registry), verified'");
    expect(lines).toContain("complete -c regmigrate -n '__fish_seen_subcommand_from report; and not __fish_seen_subcommand_from merge html rewrites references' -a merge -d 'merge push/sync reports (e.g. of the shards of an Indexed Job) into one verified image list'");
    expect(lines.find((l) => l.includes("'__fish_seen_subcommand_from push' -l schema1"))).toContain("-x -a 'keep convert skip'");
    expect(lines.find((l) => l.includes("'__fish_seen_subcommand_from sync' -l state"))).toContain(' -r -F ');
    expect(lines.find((l) => l.includes("'__fish_seen_subcommand_from export' -l out"))).toContain('__fish_complete_directories');
  });
});

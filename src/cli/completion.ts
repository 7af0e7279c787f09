/**
 * `regmigrate completion bash|zsh|fish`: a completion script written from the program's own definitions
 * (describe.ts): commands, subcommands, options, the values of options that take one of a fixed set, and file or
 * directory names where a path is taken. One body serves bash and zsh (zsh runs it through its `bashcompinit`),
 * written to the subset both shells share.
 */
import { Argument, type Command } from 'commander';
import { VERSION } from '../version.js';
import type { CliContext } from './context.js';
import { allCommands, describeProgram, type CommandInfo, type ValueKind } from './describe.js';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** A word the scripts hold unquoted inside single quotes: no quote, space or glob character can reach the shell. */
function word(text: string): string {
  if (!/^[\w.\-/=]+$/.test(text)) throw new Error(`completion: cannot hold ${JSON.stringify(text)} in a script`);
  return text;
}

const key = (info: CommandInfo): string => info.path.join(' ');

/** The flags an option answers to: `--output` and `-o`. */
function flagsOf(option: { long: string | undefined; short: string | undefined }): string[] {
  return [option.long, option.short].filter((f): f is string => f !== undefined).map(word);
}

/** The shell code that fills COMPREPLY with the values of `kind` for the word being completed. */
function bashValues(kind: ValueKind): string | undefined {
  if (kind.kind === 'choice') return `__regmigrate_reply "$(compgen -W '${kind.values.map(word).join(' ')}' -- "$cur")"`;
  if (kind.kind === 'file') return '__regmigrate_paths -f';
  if (kind.kind === 'dir') return '__regmigrate_paths -d';
  return undefined;
}

function bashBody(program: CommandInfo): string {
  const commands = allCommands(program);
  const takesValue = commands.flatMap((c) => c.options.filter((o) => o.value).flatMap((o) => flagsOf(o).map((f) => `'${key(c)}|${f}'`)));
  const valueCases = commands.flatMap((c) =>
    c.options.flatMap((o) => {
      const code = o.value && bashValues(o.value);
      return code ? [`    ${flagsOf(o).map((f) => `'${key(c)}|${f}'`).join('|')}) ${code} ;;`] : [];
    }),
  );
  const commandCases = commands.flatMap((c) => c.subcommands.map((s) => `    '${key(c)}|${word(s.path.at(-1)!)}') path='${key(s)}' ;;`));
  const optionCases = commands.map((c) => `    '${key(c)}') __regmigrate_reply "$(compgen -W '${c.options.flatMap(flagsOf).join(' ')}' -- "$cur")" ;;`);
  const wordCases = commands.flatMap((c) => {
    if (c.subcommands.length > 0) return [`    '${key(c)}') __regmigrate_reply "$(compgen -W '${c.subcommands.map((s) => word(s.path.at(-1)!)).join(' ')}' -- "$cur")" ;;`];
    const argument = c.arguments[0];
    const code = argument && bashValues(argument.value);
    return code ? [`    '${key(c)}') ${code} ;;`] : [];
  });
  return `# Options that take a value, by command: their value is the next word, never a command or an argument.
__regmigrate_takes_value() {
  case "$1|$2" in
    ${takesValue.join('|')}) return 0 ;;
  esac
  return 1
}

# COMPREPLY from lines (names with spaces stay whole).
__regmigrate_reply() {
  local line
  COMPREPLY=()
  while IFS= read -r line; do
    [ -n "$line" ] && COMPREPLY+=("$line")
  done <<EOF
$1
EOF
}

# File (-f) or directory (-d) names.
__regmigrate_paths() {
  type compopt >/dev/null 2>&1 && compopt -o filenames 2>/dev/null
  __regmigrate_reply "$(compgen "$1" -- "$cur")"
}

_regmigrate() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" path="" word i
  COMPREPLY=()
  if [ "$COMP_CWORD" -gt 0 ]; then prev="\${COMP_WORDS[COMP_CWORD-1]}"; fi
  # --option=value: bash splits the words at '=' (COMP_WORDBREAKS), or leaves them whole.
  if [ "$cur" = "=" ]; then
    cur=""
  elif [ "$prev" = "=" ] && [ "$COMP_CWORD" -gt 1 ]; then
    prev="\${COMP_WORDS[COMP_CWORD-2]}"
  elif [[ "$cur" == --*=* ]]; then
    prev="\${cur%%=*}"
    cur="\${cur#*=}"
  fi
  # The command and subcommand so far; options and their values are stepped over.
  i=1
  while [ "$i" -lt "$COMP_CWORD" ]; do
    word="\${COMP_WORDS[i]}"
    if [[ "$word" == -* ]]; then
      if [[ "$word" != *=* ]] && __regmigrate_takes_value "$path" "$word"; then
        if [ "\${COMP_WORDS[i+1]}" = "=" ]; then i=$((i + 2)); else i=$((i + 1)); fi
      fi
    else
      case "$path|$word" in
${commandCases.join('\n')}
      esac
    fi
    i=$((i + 1))
  done
  # The value of an option.
  if [[ "$prev" == -* ]] && __regmigrate_takes_value "$path" "$prev"; then
    case "$path|$prev" in
${valueCases.join('\n')}
    esac
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    case "$path" in
${optionCases.join('\n')}
    esac
    return 0
  fi
  # A subcommand, or the command's argument.
  case "$path" in
${wordCases.join('\n')}
  esac
  return 0
}
`;
}

export function bashScript(program: CommandInfo): string {
  return `# bash completion for regmigrate ${VERSION}, written by \`regmigrate completion bash\` from its options.
# Load it with: source <(regmigrate completion bash); or save it as /etc/bash_completion.d/regmigrate.

${bashBody(program)}
complete -F _regmigrate regmigrate
`;
}

export function zshScript(program: CommandInfo): string {
  return `#compdef regmigrate
# zsh completion for regmigrate ${VERSION}, written by \`regmigrate completion zsh\` from its options: the bash
# completion, run by zsh's bashcompinit. Load it with, in ~/.zshrc after compinit:
#   source <(regmigrate completion zsh)

autoload -U +X bashcompinit && bashcompinit

${bashBody(program)}
complete -F _regmigrate regmigrate
`;
}

/** fish: one `complete` line per command, option and value set. */
export function fishScript(program: CommandInfo): string {
  const quote = (text: string): string => `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const lines: string[] = [];
  /** fish's condition for "the command line is at `path`": its words seen, none of its subcommands yet. */
  const at = (c: CommandInfo): string => {
    if (c.path.length === 0) return '__fish_use_subcommand';
    const seen = c.path.map((p) => `__fish_seen_subcommand_from ${word(p)}`).join('; and ');
    const deeper = c.subcommands.length > 0 ? `; and not __fish_seen_subcommand_from ${c.subcommands.map((s) => word(s.path.at(-1)!)).join(' ')}` : '';
    return seen + deeper;
  };
  const valueFlags = (kind: ValueKind | undefined): string => {
    if (!kind) return '';
    if (kind.kind === 'choice') return ` -x -a ${quote(kind.values.map(word).join(' '))}`;
    if (kind.kind === 'file') return ' -r -F';
    if (kind.kind === 'dir') return ` -x -a '(__fish_complete_directories)'`;
    return ' -x';
  };
  lines.push(`# fish completion for regmigrate ${VERSION}, written by \`regmigrate completion fish\` from its options.`, '# Save it as ~/.config/fish/completions/regmigrate.fish.', 'complete -c regmigrate -f');
  for (const c of allCommands(program)) {
    const condition = quote(at(c));
    for (const s of c.subcommands) lines.push(`complete -c regmigrate -n ${condition} -a ${word(s.path.at(-1)!)} -d ${quote(s.description)}`);
    for (const o of c.options) {
      const names = `${o.long ? ` -l ${word(o.long.slice(2))}` : ''}${o.short ? ` -s ${word(o.short.slice(1))}` : ''}`;
      lines.push(`complete -c regmigrate -n ${condition}${names}${valueFlags(o.value)} -d ${quote(o.description)}`);
    }
    const argument = c.subcommands.length === 0 ? c.arguments[0] : undefined;
    if (argument?.value.kind === 'choice') lines.push(`complete -c regmigrate -n ${condition} -a ${quote(argument.value.values.map(word).join(' '))}`);
    else if (argument?.value.kind === 'file') lines.push(`complete -c regmigrate -n ${condition} -F`);
    else if (argument?.value.kind === 'dir') lines.push(`complete -c regmigrate -n ${condition} -a '(__fish_complete_directories)'`);
  }
  return lines.join('\n') + '\n';
}

export async function completionScript(shell: Shell): Promise<string> {
  const program = await describeProgram();
  return shell === 'bash' ? bashScript(program) : shell === 'zsh' ? zshScript(program) : fishScript(program);
}

export function registerCompletion(program: Command, ctx: CliContext): void {
  program
    .command('completion')
    .description('print a shell completion script (commands, options, their values, paths)')
    .addArgument(new Argument('<shell>', 'bash, zsh or fish').choices(SHELLS))
    .action(async (shell: Shell) => {
      ctx.stdout.write(await completionScript(shell));
    });
}

/**
 * The program's commands, arguments and options as plain data, read from commander's own definitions: what the
 * reference pages, the man pages (`npm run docs`, scripts/gen-docs.ts) and the shell completion scripts
 * (completion.ts) are written from, so none of them can list an option the program does not take, or miss one.
 */
import { Writable } from 'node:stream';
import type { Argument, Command, Option } from 'commander';
import * as z from 'zod';
import { ConfigFile } from './config.js';
import type { CliContext } from './context.js';

/** What a value is: one of a fixed set, a path (any file, or a directory), or free text. */
export type ValueKind = { readonly kind: 'choice'; readonly values: readonly string[] } | { readonly kind: 'file' } | { readonly kind: 'dir' } | { readonly kind: 'text' };

export interface OptionInfo {
  /** As `--help` shows it: `-o, --output <format>`. */
  readonly term: string;
  readonly long: string | undefined;
  readonly short: string | undefined;
  readonly description: string;
  /** The camelCase name: the key in the config file, where the option has one. */
  readonly attribute: string;
  /** Undefined for a flag that takes no value. */
  readonly value: ValueKind | undefined;
}

export interface ArgumentInfo {
  readonly term: string;
  readonly name: string;
  readonly required: boolean;
  readonly variadic: boolean;
  readonly description: string;
  readonly value: ValueKind;
}

export interface CommandInfo {
  /** Words after `regmigrate`: [] for the program, ['report', 'merge'] for a subcommand. */
  readonly path: readonly string[];
  readonly description: string;
  /** As `--help` shows it, after the command's words: `[options] [root]`. */
  readonly usage: string;
  readonly arguments: readonly ArgumentInfo[];
  readonly options: readonly OptionInfo[];
  readonly subcommands: readonly CommandInfo[];
}

/**
 * Fixed sets of `--output` values, which differ per command; the commands check the value themselves (every
 * problem of a command line at once: docs/architecture.md, Options handling), and test/completion.test.ts holds
 * each set against the message the command gives for any other value.
 */
const OUTPUT_CHOICES: Readonly<Record<string, readonly string[]>> = {
  scan: ['table', 'json', 'csv', 'html'],
  push: ['table', 'json'],
  diff: ['table', 'json', 'csv'],
  'report merge': ['table', 'json', 'csv'],
  'report references': ['table', 'json', 'csv'],
};

/** Other fixed sets the config file does not hold (its enums give the rest: `--via`, `--schema1`, `--shard-by`, `--log-format`). */
const OTHER_CHOICES: Readonly<Record<string, readonly string[]>> = {
  'report rewrites --format': ['registries.conf', 'json', 'csv'],
};

/** The config file's keys whose values are a fixed set (`transfer.via: oci | skopeo`), by key. */
function configChoices(): Map<string, readonly string[]> {
  const out = new Map<string, readonly string[]>();
  for (const section of Object.values(ConfigFile.shape)) {
    const object = section instanceof z.ZodOptional ? section.unwrap() : section;
    if (!(object instanceof z.ZodObject)) continue;
    for (const [key, schema] of Object.entries(object.shape as Record<string, z.ZodType>)) {
      const inner = schema instanceof z.ZodOptional ? schema.unwrap() : schema;
      if (inner instanceof z.ZodEnum) out.set(key, inner.options.map(String));
    }
  }
  return out;
}

const DIRECTORY_NAMES = /^(dir|directory|out)$/;
const PATH_NAMES = /^(file|files|path|root|file\.prom)$/;

function valueOf(name: string, choices: readonly string[] | undefined): ValueKind {
  if (choices) return { kind: 'choice', values: choices };
  if (DIRECTORY_NAMES.test(name)) return { kind: 'dir' };
  if (PATH_NAMES.test(name)) return { kind: 'file' };
  return { kind: 'text' };
}

function describeOption(option: Option, path: string, fromConfig: Map<string, readonly string[]>): OptionInfo {
  const valueName = /[<[]([^>\]]+)[>\]]/.exec(option.flags)?.[1]?.replace(/\.\.\.$/, '');
  const long = option.long ?? undefined;
  const choices = option.argChoices ?? (option.long === '--output' ? OUTPUT_CHOICES[path] : undefined) ?? OTHER_CHOICES[`${path} ${long}`] ?? fromConfig.get(option.attributeName());
  return {
    term: option.flags,
    long,
    short: option.short ?? undefined,
    description: option.description,
    attribute: option.attributeName(),
    value: valueName === undefined ? undefined : valueOf(valueName, choices),
  };
}

function describeArgument(argument: Argument): ArgumentInfo {
  const name = argument.name();
  const term = argument.required ? `<${name}${argument.variadic ? '...' : ''}>` : `[${name}${argument.variadic ? '...' : ''}]`;
  return { term, name, required: argument.required, variadic: argument.variadic, description: argument.description, value: valueOf(name, argument.argChoices) };
}

export function describeCommand(command: Command, path: readonly string[] = [], fromConfig = configChoices()): CommandInfo {
  const help = command.createHelp();
  const key = path.join(' ');
  // The help option (and --version on the program) as --help lists them, after the command's own.
  const options = help.visibleOptions(command).map((o) => describeOption(o, key, fromConfig));
  return {
    path,
    description: command.description(),
    usage: command.usage(),
    arguments: command.registeredArguments.map(describeArgument),
    options,
    subcommands: command.commands.map((sub) => describeCommand(sub, [...path, sub.name()], fromConfig)),
  };
}

/** A context that writes nowhere: the program is built to be described, never run. */
function silentContext(): CliContext {
  const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
  return { stdout: sink, stderr: sink, stdin: process.stdin, stdoutIsTTY: false, stderrIsTTY: false, env: {}, setExitCode: () => undefined };
}

/** The whole program, every command loaded. */
export async function describeProgram(): Promise<CommandInfo> {
  const { buildProgram } = await import('./main.js');
  return describeCommand(await buildProgram(silentContext()));
}

/** Every command and subcommand, depth first (the program itself first). */
export function allCommands(info: CommandInfo): CommandInfo[] {
  return [info, ...info.subcommands.flatMap(allCommands)];
}

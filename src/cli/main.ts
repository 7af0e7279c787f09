import { Command, CommanderError } from 'commander';
import { OUTPUT_EXIT, RegmigrateError, errorMessage } from '../errors.js';
import type { CliContext } from './context.js';
import { writeJsonLog } from '../report/log.js';
import { startHeapTuning } from './heap-tuning.js';
import { VERSION } from '../version.js';
import { commandName, guardDrain, RunWatch } from './stall.js';
import { watchOutput } from './output.js';

type Register = (program: Command, ctx: CliContext) => void;

/**
 * Each command's module, loaded only when the command runs (or help lists them all): `push` does not load the
 * report HTML, the cutover rewrites or the YAML parser, and `--version` loads none of them. In help order.
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  scan: async () => (await import('./scan.js')).registerScan,
  push: async () => (await import('./push.js')).registerPush,
  export: async () => (await import('./export.js')).registerExport,
  diff: async () => (await import('./diff.js')).registerDiff,
  sync: async () => (await import('./sync.js')).registerSync,
  report: async () => (await import('./report.js')).registerReport,
  config: async () => (await import('./config.js')).registerConfig,
  completion: async () => (await import('./completion.js')).registerCompletion,
};

/** The commands `argv` can reach: the one it names, none for a bare `--version`, else all (help, a typo's suggestion). */
export function commandsFor(argv: readonly string[]): string[] {
  const first = argv[2];
  if (first !== undefined && Object.hasOwn(COMMANDS, first)) return [first];
  if (argv.length === 3 && (first === '--version' || first === '-V')) return [];
  return Object.keys(COMMANDS);
}

export async function buildProgram(ctx: CliContext, commands: readonly string[] = Object.keys(COMMANDS)): Promise<Command> {
  const registers = await Promise.all(commands.map((name) => COMMANDS[name]!()));
  const program = new Command('regmigrate')
    .description("move container images from a docker registry's storage directory into Harbor, byte-identical and verified")
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
      // commander's own errors (an unknown option, a missing argument) start like every other error of ours.
      outputError: (s, write) => write(s.replace(/^error: /, 'regmigrate: ')),
    });
  const configIndex = commands.indexOf('config');
  registers.forEach((register, i) => i !== configIndex && register(program, ctx));
  // --config on every command that takes options from it; the file is read right before the command runs.
  for (const command of program.commands) {
    if (['config', 'report', 'completion'].includes(command.name())) continue;
    command.option('--config <file>', 'take options from this YAML file (flags given here win); see docs/selection.md, Config file');
  }
  program.hook('preAction', async (_program, command) => {
    if (command.getOptionValue('config')) (await import('./config.js')).applyConfig(command);
    if (command.getOptionValue('logFormat') === 'json') ctx.logFormat = 'json';
  });
  if (configIndex >= 0) registers[configIndex]!(program, ctx);
  return program;
}

/** The one place that turns errors into a message and an exit code. */
export async function run(argv: string[]): Promise<void> {
  // Started here, not by bin/regmigrate, so a program that calls run() behaves the same.
  const stopHeapTuning = startHeapTuning();
  let exitCode = 0;
  const watch = new RunWatch();
  const ctx: CliContext = {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    stdoutIsTTY: Boolean(process.stdout.isTTY),
    stderrIsTTY: Boolean(process.stderr.isTTY),
    env: process.env,
    setExitCode: (code) => {
      exitCode = Math.max(exitCode, code);
    },
    watch,
  };
  // A command the event loop drains under is not done: it says so and exits 70, never 0 (cli/stall.ts).
  const unguard = guardDrain(commandName(argv), watch, (line) => {
    if (ctx.logFormat === 'json') writeJsonLog(ctx.stderr, { level: 'error', event: 'error', code: 'INTERNAL', message: line, exitCode: 70 });
    else ctx.stderr.write(`regmigrate: internal error: ${line}\n`);
  });
  // A reader that closed the pipe ends the output quietly; a failed write (a full disk) is said, and the status is 5.
  let returned = false;
  const output = watchOutput(process.stdout, (line) => {
    if (ctx.logFormat === 'json') writeJsonLog(ctx.stderr, { level: 'error', event: 'error', code: 'OUTPUT', message: line, exitCode: OUTPUT_EXIT });
    else ctx.stderr.write(`regmigrate: ${line}\n`);
    if (returned) process.exitCode = Math.max(Number(process.exitCode ?? 0), OUTPUT_EXIT);
  });
  try {
    await (await buildProgram(ctx, commandsFor(argv))).parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander printed its message already; help and version exit 0.
      exitCode = err.exitCode === 0 ? 0 : 2;
    } else if (err instanceof RegmigrateError) {
      if (ctx.logFormat === 'json') writeJsonLog(ctx.stderr, { level: 'error', event: 'error', code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}), exitCode: err.exitCode });
      else {
        ctx.stderr.write(`regmigrate: ${err.message}\n`);
        if (err.hint) ctx.stderr.write(`hint: ${err.hint}\n`);
      }
      exitCode = err.exitCode;
    } else {
      ctx.stderr.write(`regmigrate: internal error: ${errorMessage(err)}\n`);
      if (err instanceof Error && err.stack && process.env.REGMIGRATE_DEBUG) ctx.stderr.write(err.stack + '\n');
      ctx.stderr.write('hint: this is a bug; set REGMIGRATE_DEBUG=1 for a stack trace and report it\n');
      exitCode = 70;
    }
  } finally {
    unguard();
    stopHeapTuning();
  }
  // The error of the last write arrives on a later tick.
  await new Promise<void>((resolve) => setImmediate(resolve));
  returned = true;
  process.exitCode = output.failed() ? Math.max(exitCode, OUTPUT_EXIT) : exitCode;
}

import { Command, CommanderError } from 'commander';
import { RegmigrateError, errorMessage } from '../errors.js';
import type { CliContext } from './context.js';
import { applyConfig, registerConfig } from './config.js';
import { writeJsonLog } from '../report/log.js';
import { startHeapTuning } from './heap-tuning.js';
import { registerDiff } from './diff.js';
import { registerExport } from './export.js';
import { registerPush } from './push.js';
import { registerReport } from './report.js';
import { registerScan } from './scan.js';
import { registerSync } from './sync.js';
import { VERSION } from '../version.js';

export function buildProgram(ctx: CliContext): Command {
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
  registerScan(program, ctx);
  registerPush(program, ctx);
  registerExport(program, ctx);
  registerDiff(program, ctx);
  registerSync(program, ctx);
  registerReport(program, ctx);
  // --config on every command that takes options from it; the file is read right before the command runs.
  for (const command of program.commands) {
    if (['config', 'report'].includes(command.name())) continue;
    command.option('--config <file>', 'take options from this YAML file (flags given here win); see "Config file" in the README');
  }
  program.hook('preAction', (_program, command) => {
    applyConfig(command);
    if (command.getOptionValue('logFormat') === 'json') ctx.logFormat = 'json';
  });
  registerConfig(program, ctx);
  return program;
}

/** The one place that turns errors into a message and an exit code. */
export async function run(argv: string[]): Promise<void> {
  // Started here, not by bin/regmigrate, so a program that calls run() behaves the same.
  const stopHeapTuning = startHeapTuning();
  let exitCode = 0;
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
  };
  try {
    await buildProgram(ctx).parseAsync(argv);
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
    stopHeapTuning();
  }
  process.exitCode = exitCode;
}

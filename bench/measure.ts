import { execa } from 'execa';
import { existsSync } from 'node:fs';

export interface Measurement {
  readonly seconds: number;
  /** Peak resident memory in MiB, where /usr/bin/time is there to tell it. */
  readonly peakMiB: number | undefined;
  /** User + system CPU seconds of the command, likewise. */
  readonly cpuSeconds: number | undefined;
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

const GNU_TIME = '/usr/bin/time';

/** Runs a command once, timing it from outside and reading its peak RSS via GNU time's %M. */
export async function measure(command: string, args: string[], options: { cwd?: string; env?: Record<string, string>; stdoutFile?: string; input?: string } = {}): Promise<Measurement> {
  const useTime = existsSync(GNU_TIME);
  const marker = '__regmigrate_bench_peak_kb=';
  const file = useTime ? GNU_TIME : command;
  const fullArgs = useTime ? ['-f', `${marker}%M %U %S`, command, ...args] : args;
  const start = process.hrtime.bigint();
  const result = await execa(file, fullArgs, {
    reject: false,
    cwd: options.cwd,
    env: options.env,
    ...(options.stdoutFile ? { stdout: { file: options.stdoutFile } } : {}),
    ...(options.input !== undefined ? { input: options.input } : {}),
    maxBuffer: 1024 * 1024 * 1024,
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  let stderr = String(result.stderr ?? '');
  let peakMiB: number | undefined;
  let cpuSeconds: number | undefined;
  const at = stderr.lastIndexOf(marker);
  if (at >= 0) {
    const [kb, user, sys] = stderr.slice(at + marker.length).trim().split(/\s+/).map(Number);
    peakMiB = kb! / 1024;
    cpuSeconds = user! + sys!;
    stderr = stderr.slice(0, at);
  }
  return { seconds, peakMiB, cpuSeconds, exitCode: result.exitCode ?? -1, stdout: String(result.stdout ?? ''), stderr };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function fmt(n: number | undefined, digits = 2): string {
  return n === undefined ? 'n/a' : n.toFixed(digits);
}

export function printTable(title: string, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  process.stdout.write(`\n## ${title}\n${line(header)}\n${rows.map(line).join('\n')}\n`);
}

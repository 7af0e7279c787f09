/**
 * The heap tuning belongs to the program (src/cli/heap-tuning.ts, started by run()), so a program that calls
 * run() without bin/regmigrate gets it too, and it ends with the run.
 */
import { execa } from 'execa';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PROJECT } from './helpers/cli.js';

const MAIN = pathToFileURL(path.join(PROJECT, 'dist/src/cli/main.js')).href;
const HEAP = pathToFileURL(path.join(PROJECT, 'dist/src/cli/heap-tuning.js')).href;
/** About 96 MB of small integers on the JS heap: past src/tuning.ts LARGE_HEAP_BYTES. */
const BALLAST = 'globalThis.ballast = new Array(12_000_000).fill(0);';

/** Runs `regmigrate --version` through run() in a fresh node process; says whether the heap's growth was limited. */
async function runInProcess(before: string, after: string): Promise<{ limited: string; stdout: string }> {
  const script = `
    import { run } from ${JSON.stringify(MAIN)};
    import { heapGrowthLimited } from ${JSON.stringify(HEAP)};
    ${before}
    await run(['node', 'regmigrate', '--version']);
    ${after}
    console.log('limited=' + heapGrowthLimited());`;
  const result = await execa('node', ['--input-type=module', '-e', script], { reject: false });
  expect(result.exitCode, result.stderr).toBe(0);
  const lines = result.stdout.trim().split('\n');
  return { limited: lines.at(-1)!, stdout: lines.slice(0, -1).join('\n') };
}

describe('heap tuning started by run()', () => {
  it.each([
    ['a heap past the threshold while run() runs', BALLAST, '', 'limited=true'],
    ['a small heap', '', '', 'limited=false'],
    // Long past HEAP_CHECK_INTERVAL_MS: a watch left running would have limited it by then.
    ['a heap that grows only after run() has returned', '', `${BALLAST} await new Promise((r) => setTimeout(r, 1000));`, 'limited=false'],
  ])('%s', async (_name, before, after, expected) => {
    const { limited, stdout } = await runInProcess(before, after);
    expect(stdout).toMatch(/^\d+\.\d+\.\d+$/);
    expect(limited).toBe(expected);
  });
});

/**
 * Scan benchmark: a 50,000-tag, 5,000-repository metadata storage; `find -type d -name current`
 * (the classic listing, which resolves nothing) against `regmigrate scan --output json` (which resolves every
 * manifest and checks every blob exists). Medians of several alternating runs on a warm page cache.
 */
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildMetadataStorage } from './metadata-storage.js';
import { fmt, measure, median, printTable } from './measure.js';

export async function benchScan(options: { bin: string; workDir?: string; repositories?: number; tagsPerRepo?: number; runs?: number }): Promise<void> {
  const repositories = options.repositories ?? 5000;
  const tagsPerRepo = options.tagsPerRepo ?? 10;
  const runs = options.runs ?? 3;
  const root = path.join(options.workDir ?? path.join(tmpdir(), 'regmigrate-bench'), `scan-${repositories}x${tagsPerRepo}`);
  process.stderr.write(`scan bench: storage of ${repositories * tagsPerRepo} tags at ${root} ...\n`);
  const built = buildMetadataStorage(root, { repositories, tagsPerRepo });
  process.stderr.write(built.reused ? 'scan bench: reusing the storage built earlier\n' : 'scan bench: storage built\n');

  // One warm-up of each so both start from the same page cache.
  await measure('find', [root, '-type', 'd', '-name', 'current']);
  await measure(options.bin, ['scan', root, '--output', 'json'], { stdoutFile: '/dev/null' });

  const find: number[] = [];
  const scan: number[] = [];
  const scanPeak: number[] = [];
  let tagsFound = 0;
  for (let i = 0; i < runs; i++) {
    const f = await measure('find', [root, '-type', 'd', '-name', 'current']);
    find.push(f.seconds);
    tagsFound = f.stdout.split('\n').filter(Boolean).length;
    const s = await measure(options.bin, ['scan', root, '--output', 'json'], { stdoutFile: '/dev/null' });
    if (s.exitCode !== 0) throw new Error(`scan exited ${s.exitCode}: ${s.stderr}`);
    scan.push(s.seconds);
    if (s.peakMiB !== undefined) scanPeak.push(s.peakMiB);
  }
  const ratio = median(scan) / median(find);
  printTable(`scan: ${repositories * tagsPerRepo} tags in ${repositories} repositories (median of ${runs})`, ['command', 'seconds', 'peak MiB', 'resolves'], [
    ['find <root> -type d -name current', fmt(median(find)), '-', `lists ${tagsFound} names`],
    ['regmigrate scan --output json', fmt(median(scan)), fmt(scanPeak.length ? Math.max(...scanPeak) : undefined, 0), 'every manifest and blob'],
  ]);
  process.stdout.write(`scan/find ratio: ${ratio.toFixed(2)} (target <= 1.00), peak memory target < 400 MiB\n`);
}

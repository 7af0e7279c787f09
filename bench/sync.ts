/**
 * Sync benchmark: a no-op sync of the 50,000-tag metadata storage (the scan benchmark's) into a
 * destination that already holds it all (a docker-registry serving that same storage read-only: a perfect
 * mirror), in the default destination-checking mode and with --trust-state; next to skopeo sync's per-tag cost on
 * a slice of the same data.
 */
import { execa } from 'execa';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { launchRegistry } from '../fixtures/registry-process.js';
import { buildMetadataStorage } from './metadata-storage.js';
import { fmt, measure, printTable } from './measure.js';

export async function benchSync(options: { bin: string; workDir: string; repositories?: number; tagsPerRepo?: number; skopeoRepositories?: number }): Promise<void> {
  const repositories = options.repositories ?? 5000;
  const tagsPerRepo = options.tagsPerRepo ?? 10;
  const tags = repositories * tagsPerRepo;
  const root = path.join(options.workDir, `scan-${repositories}x${tagsPerRepo}`);
  buildMetadataStorage(root, { repositories, tagsPerRepo });
  const mirror = await launchRegistry({ workDir: path.join(options.workDir, 'sync-mirror'), root, readonly: true });
  const state = path.join(options.workDir, 'sync-state.json');
  rmSync(state, { force: true });
  const rows: string[][] = [];
  try {
    const args = ['sync', root, '--to', mirror.host, '--state', state, '--quiet'];
    const first = await measure(options.bin, args);
    if (first.exitCode !== 0) throw new Error(`sync exited ${first.exitCode}: ${first.stderr}`);
    const checking = await measure(options.bin, args);
    if (!/0 pushed, \d+ unchanged, 0 failed/.test(checking.stdout)) throw new Error(`the no-op sync was not a no-op: ${checking.stdout}`);
    rows.push(['regmigrate sync (asks about every tag)', String(tags), fmt(checking.seconds), fmt((checking.seconds * 1000) / tags, 3), fmt(checking.seconds), '< 30 s', fmt(checking.peakMiB, 0)]);
    const trusted = await measure(options.bin, [...args, '--trust-state']);
    if (!/0 pushed, \d+ unchanged, 0 failed/.test(trusted.stdout)) throw new Error(`the --trust-state sync was not a no-op: ${trusted.stdout}`);
    rows.push(['regmigrate sync --trust-state', String(tags), fmt(trusted.seconds), fmt((trusted.seconds * 1000) / tags, 3), fmt(trusted.seconds), '< 5 s', fmt(trusted.peakMiB, 0)]);

    // skopeo sync on a slice: copy it once (setup), then time the second, no-op pass.
    const slice = options.skopeoRepositories ?? 20;
    const target = await launchRegistry({ workDir: path.join(options.workDir, 'sync-skopeo') });
    try {
      const repos = Array.from({ length: slice }, (_, r) => `project${r % 50}/service-${r}`);
      const skopeoSync = (repo: string) =>
        execa('skopeo', ['sync', '--src', 'docker', '--dest', 'docker', '--src-tls-verify=false', '--dest-tls-verify=false', `${mirror.host}/${repo}`, `${target.host}/${repo.split('/')[0]}`]);
      for (const repo of repos) await skopeoSync(repo);
      const started = process.hrtime.bigint();
      for (const repo of repos) await skopeoSync(repo);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const sliceTags = slice * tagsPerRepo;
      rows.push([`skopeo sync (no-op, ${slice} repositories)`, String(sliceTags), fmt(seconds), fmt((seconds * 1000) / sliceTags, 3), fmt((seconds / sliceTags) * tags), '-', '-']);
    } finally {
      await target.stop();
    }
  } finally {
    await mirror.stop();
    rmSync(state, { force: true });
  }
  printTable(`sync: no-op, ${tags} tags already in the destination`, ['command', 'tags', 'seconds', 'ms per tag', `seconds for ${tags}`, 'target', 'peak MiB'], rows);
}

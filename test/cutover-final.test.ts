import { execa } from 'execa';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { addImage, makeLayer, StorageBuilder, type BuiltImage } from '../fixtures/builder.js';
import { BIN, runCli } from './helpers/cli.js';
import { startRegistry, type RunningRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

/**
 * A storage of our own (the tool never writes a source; the test plays the team still pushing to the old registry):
 * `busybox:1.36` at image A, image B already in the repository untagged, and `zz/big:1`, a 1.5 MiB layer that a
 * `--limit-rate` keeps uploading for seconds after busybox is done: the window in which the writer repoints the tag.
 */
function buildStorage(): { builder: StorageBuilder; root: string; a: BuiltImage; b: BuiltImage } {
  const root = path.join(tempDir('regmigrate-final-'), 'registry');
  const builder = new StorageBuilder(root);
  const a = addImage(builder, 'busybox', { format: 'docker', layers: [makeLayer('bin/busybox', 'busybox A\n', 4096)], label: 'busybox-a' });
  const b = addImage(builder, 'busybox', { format: 'docker', layers: [makeLayer('bin/busybox', 'busybox B\n', 4096)], label: 'busybox-b' });
  builder.tag('busybox', '1.36', a.digest);
  const big = addImage(builder, 'zz/big', { format: 'oci', layers: [makeLayer('srv/data', 'big\n', 1536 * 1024, 0)], label: 'big' });
  builder.tag('zz/big', '1', big.digest);
  return { builder, root, a, b };
}

/**
 * Runs `sync --final` and, as soon as the JSON log says busybox was pushed (at A) while the big layer still
 * uploads, points `busybox:1.36` at B in the source storage, as a `docker push` to the old registry would.
 */
async function finalSyncWithWriter(host: string, root: string, write: () => void, extra: string[] = []) {
  const child = execa(BIN, ['sync', root, '--to', host, '--final', '--log-format', 'json', '--limit-rate', '256KiB/s', ...extra], {
    reject: false,
    env: { REGMIGRATE_NO_PROGRESS: '1' },
  });
  let written = false;
  let buffered = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      if (!written && line.includes('"event":"image-pushed"') && line.includes('busybox')) {
        write();
        written = true;
      }
    }
  });
  const result = await child;
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr), written };
}

async function destinationDigest(registry: RunningRegistry, ref: string): Promise<string | null> {
  const [repository, tag] = ref.split(':');
  const res = await fetch(`http://${registry.host}/v2/${repository}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
  });
  return res.ok ? res.headers.get('docker-content-digest') : null;
}

describe('sync --final', () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });

  it('syncs a tag again when its link changed during the run, then proves the destination holds every source tag', async () => {
    const { builder, root, b } = buildStorage();
    const run = await finalSyncWithWriter(registry.host, root, () => builder.tag('busybox', '1.36', b.digest));
    expect(run.written).toBe(true);
    expect(run.exitCode, run.stderr).toBe(0);
    // Round 1 pushed A; the writer moved the tag; round 2 pushed B.
    expect(run.stderr).toMatch(/a source tag changed during round 1 \(busybox:1\.36\): syncing again, round 2 of at most 3/);
    expect(run.stdout).toContain(`pushed busybox:1.36 -> library/busybox:1.36 ${b.digest}`);
    expect(run.stdout.trim().split('\n').at(-1)).toMatch(/^final: in sync: the destination holds every source tag at its digest \(2 same, 0 new, 0 changed, 0 faulty, 0 extra in the destination; 2 rounds, no tag moved in the last\)$/);
    expect(await destinationDigest(registry, 'library/busybox:1.36')).toBe(b.digest);
  });

  it('a second final sync with nothing moving is one round and in sync', async () => {
    const registry2 = await startRegistry();
    const { root, a } = buildStorage();
    const result = await runCli(['sync', root, '--to', registry2.host, '--final']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/final: in sync: .*\(2 same, 0 new, 0 changed, 0 faulty, 0 extra in the destination; 1 round, no tag moved in the last\)/);
    expect(await destinationDigest(registry2, 'library/busybox:1.36')).toBe(a.digest);
  });

  it('exits 1 naming the tag that kept moving when the rounds run out', async () => {
    const registry3 = await startRegistry();
    const { builder, root, a, b } = buildStorage();
    const run = await finalSyncWithWriter(registry3.host, root, () => builder.tag('busybox', '1.36', b.digest), ['--final-rounds', '1']);
    expect(run.written).toBe(true);
    expect(run.exitCode).toBe(1);
    expect(run.stdout.trim().split('\n').at(-1)).toBe(`final: NOT in sync: a tag kept moving after 1 round: busybox:1.36 (${a.digest} -> ${b.digest}); put the old registry in read-only mode and run again`);
  });

  it('a faulty source tag is not in sync: the verdict names it, exit 1', async () => {
    const registry4 = await startRegistry();
    const { builder, root } = buildStorage();
    // broken/layer:v1 lost a layer's data (a missing-blob fault): it cannot be migrated, nothing moves.
    const lost = makeLayer('srv/lost', 'lost layer\n', 1024);
    builder.tag('broken/layer', 'v1', addImage(builder, 'broken/layer', { format: 'oci', layers: [lost], label: 'lost' }).digest);
    rmSync(path.dirname(builder.blobPath(lost.digest)), { recursive: true });
    const run = await runCli(['sync', root, '--to', registry4.host, '--final']);
    expect(run.exitCode, run.stderr).toBe(1);
    expect(run.stdout.trim().split('\n').at(-1)).toBe('final: NOT in sync after 1 round: 2 same, 0 new, 0 changed, 1 faulty, 0 extra in the destination (broken/layer:v1 faulty)');
  });

  it('refuses --final-rounds without --final, and 0 rounds', async () => {
    const { root } = buildStorage();
    const alone = await runCli(['sync', root, '--to', registry.host, '--final-rounds', '2']);
    expect(alone.exitCode).toBe(2);
    expect(alone.stderr).toContain('--final-rounds goes with --final');
    const zero = await runCli(['sync', root, '--to', registry.host, '--final', '--final-rounds', '0']);
    expect(zero.exitCode).toBe(2);
    expect(zero.stderr).toContain('--final-rounds must be a whole number from 1 to 100, not "0"');
  });
});

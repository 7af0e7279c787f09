/**
 * The push benchmark's storage: ~570 MiB, ~190 tags, written by the real docker-registry (our builder writes a
 * source tree, a read-only docker-registry serves it, and `skopeo copy --all` copies every tag into a fresh
 * docker-registry, whose storage is the corpus). Sharing as in real registries: six base layers under every
 * project, nested names, single-level names, multi-arch images. Built once and reused (a marker file).
 */
import { execa } from 'execa';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import { addImage, addIndex, makeLayer, StorageBuilder, type Layer } from '../fixtures/builder.js';
import { launchRegistry } from '../fixtures/registry-process.js';

const MiB = 1024 * 1024;

export interface Corpus {
  /** Registry root of the corpus. */
  readonly root: string;
  /** `repo:tag` of every tag. */
  readonly tags: readonly string[];
}

function writeSource(root: string): string[] {
  const b = new StorageBuilder(root);
  const tags: string[] = [];
  const bases: Layer[] = Array.from({ length: 6 }, (_, i) => makeLayer('base/rootfs', `base ${i}\n`, 30 * MiB, 1));
  const basesArm: Layer[] = Array.from({ length: 2 }, (_, i) => makeLayer('base/rootfs', `base arm ${i}\n`, 12 * MiB, 1));
  const projects = ['payments', 'search', 'web', 'data', 'infra', 'ml', 'mobile', 'auth', 'ops', 'tools'];
  let n = 0;
  for (const [p, project] of projects.entries()) {
    for (let r = 0; r < 6; r++) {
      // Nested names in half of the repositories (`project/group/service`).
      const repo = r % 2 === 0 ? `${project}/service-${r}` : `${project}/group-${r % 3}/service-${r}`;
      for (let t = 0; t < 3; t++) {
        const base = bases[(p + r) % bases.length]!;
        const app = makeLayer('srv/app', `${repo}:${t}\n`, Math.round(1.6 * MiB), 1);
        const image = addImage(b, repo, { format: (n++ % 2 === 0 ? 'docker' : 'oci'), layers: [base, app], label: `${repo}:${t}` });
        b.tag(repo, `1.${t}.0`, image.digest);
        tags.push(`${repo}:1.${t}.0`);
      }
    }
  }
  // Multi-arch images, OCI index and docker manifest list.
  for (let m = 0; m < 5; m++) {
    const repo = `platform/multi-${m}`;
    const format = m % 2 === 0 ? 'oci' : 'docker';
    const amd = addImage(b, repo, { format, layers: [bases[m % bases.length]!, makeLayer('bin/tool', `amd ${m}\n`, MiB, 1)], label: `${repo}-amd64` });
    const arm = addImage(b, repo, {
      format,
      layers: [basesArm[m % basesArm.length]!, makeLayer('bin/tool', `arm ${m}\n`, MiB, 1)],
      architecture: 'arm64',
      label: `${repo}-arm64`,
    });
    const index = addIndex(b, repo, format, [amd.descriptor, arm.descriptor]);
    b.tag(repo, 'latest', index.digest);
    tags.push(`${repo}:latest`);
  }
  // Single-level names (Docker Hub style): Harbor needs them in a project.
  for (let s = 0; s < 4; s++) {
    const repo = `tool${s}`;
    const image = addImage(b, repo, { format: 'docker', layers: [bases[s]!, makeLayer('bin/tool', `tool ${s}\n`, MiB, 1)], label: repo });
    b.tag(repo, 'latest', image.digest);
    tags.push(`${repo}:latest`);
  }
  return tags;
}

export async function buildPushCorpus(workDir: string): Promise<Corpus> {
  const dir = path.join(workDir, 'push-corpus');
  const root = path.join(dir, 'registry');
  const marker = path.join(dir, 'complete.json');
  if (existsSync(marker)) {
    const { tags } = JSON.parse(readFileSync(marker, 'utf8')) as { tags: string[] };
    return { root, tags };
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  process.stderr.write('push bench: writing the source images ...\n');
  const sourceRoot = path.join(dir, 'source');
  const tags = writeSource(sourceRoot);
  const from = await launchRegistry({ workDir: path.join(dir, 'from'), root: sourceRoot, readonly: true });
  const to = await launchRegistry({ workDir: dir, root });
  process.stderr.write(`push bench: copying ${tags.length} tags with skopeo into a real docker-registry ...\n`);
  const copy = (tag: string) =>
    execa('skopeo', ['copy', '--quiet', '--all', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${from.host}/${tag}`, `docker://${to.host}/${tag}`], { reject: false });
  const limit = pLimit(4);
  const results = await Promise.all(tags.map((tag) => limit(() => copy(tag))));
  // skopeo copies racing on a shared layer sometimes lose one ("digest invalid"): those go again, one at a time.
  for (const [i, result] of results.entries()) {
    if (result.exitCode === 0) continue;
    const retry = await copy(tags[i]!);
    if (retry.exitCode !== 0) throw new Error(`skopeo copy ${tags[i]} failed: ${String(retry.stderr)}`);
  }
  await from.stop();
  await to.stop();
  rmSync(sourceRoot, { recursive: true, force: true });
  writeFileSync(marker, JSON.stringify({ tags }));
  return { root, tags };
}

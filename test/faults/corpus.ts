import path from 'node:path';
import { addImage, makeLayer, StorageBuilder } from '../../fixtures/builder.js';
import { tempDir } from '../helpers/tmp.js';

export interface FaultCorpus {
  readonly root: string;
  /** `repo:tag` → digest */
  readonly tags: Record<string, string>;
  readonly uniqueBlobs: number;
}

/** Six images in three projects over one shared 1 MiB base layer, each with a layer of its own: blobs large
 * enough to be cut in the middle. */
export function buildFaultCorpus(): FaultCorpus {
  const root = path.join(tempDir('regmigrate-faults-'), 'registry');
  const b = new StorageBuilder(root);
  const base = makeLayer('base', 'shared base\n', 1024 * 1024, 1);
  const tags: Record<string, string> = {};
  let uniqueBlobs = 1;
  for (const [i, repo] of ['alpha/web', 'alpha/api', 'beta/worker', 'beta/cron', 'gamma/tools/cli', 'gamma/db'].entries()) {
    const own = makeLayer('app', `${repo}\n`, 256 * 1024 + i * 64 * 1024, 1);
    const image = addImage(b, repo, { format: i % 2 ? 'oci' : 'docker', layers: [base, own], label: repo });
    b.tag(repo, 'v1', image.digest);
    tags[`${repo}:v1`] = image.digest;
    uniqueBlobs += 2;
  }
  return { root, tags, uniqueBlobs };
}

/** A seeded generator (mulberry32): the same seed, the same faults, run after run. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

import { execa } from 'execa';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { buildDemoStorage, type ExpectedTag } from '../../fixtures/trees.js';
import { startRegistry } from './registry.js';
import { tempDir } from './tmp.js';

export interface RealTree {
  /** Registry root written by the real docker-registry. */
  readonly root: string;
  readonly tags: ExpectedTag[];
}

async function skopeoCopy(args: string[]): Promise<void> {
  await execa('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', ...args]);
}

async function rawDigest(host: string, ref: string): Promise<{ digest: string; mediaType: string }> {
  const { stdout } = await execa('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host}/${ref}`], { stripFinalNewline: false, encoding: 'buffer' });
  const bytes = Buffer.from(stdout);
  const json = JSON.parse(bytes.toString('utf8')) as { mediaType?: string };
  return { digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, mediaType: json.mediaType ?? '' };
}

/**
 * A storage tree written by the real registry: the demo images are served by one docker-registry and copied with
 * skopeo into a second, fresh one, whose storage is then what a real migration would read. Two extra tags are
 * converted on the way (docker → OCI, OCI → docker) so the tree also holds manifests skopeo itself wrote.
 */
export async function buildRealTree(): Promise<RealTree> {
  const source = buildDemoStorage(path.join(tempDir('regmigrate-src-'), 'registry'));
  const from = await startRegistry({ root: source.root, readonly: true });
  const to = await startRegistry();
  const tags: ExpectedTag[] = [];
  for (const t of source.tags) {
    await skopeoCopy(['--all', `docker://${from.host}/${t.repository}:${t.tag}`, `docker://${to.host}/${t.repository}:${t.tag}`]);
    tags.push(t);
  }
  await skopeoCopy(['--format', 'oci', `docker://${from.host}/library/alpine:3.19`, `docker://${to.host}/converted/alpine-oci:3.19`]);
  await skopeoCopy(['--format', 'v2s2', `docker://${from.host}/team/api:1.1`, `docker://${to.host}/converted/api-docker:1.1`]);
  for (const ref of ['converted/alpine-oci:3.19', 'converted/api-docker:1.1']) {
    const { digest, mediaType } = await rawDigest(to.host, ref);
    const [repository, tag] = ref.split(':') as [string, string];
    tags.push({ repository, tag, digest, mediaType });
  }
  await from.stop();
  await to.stop();
  return { root: to.root, tags };
}

import { execa } from 'execa';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { addImage, makeLayer, MEDIA, StorageBuilder } from '../../fixtures/builder.js';
import { buildDemoStorage } from '../../fixtures/trees.js';
import { startRegistry } from './registry.js';
import { tempDir } from './tmp.js';

export interface LegacyTree {
  readonly root: string;
  /** `repo:tag` → digest, for the schema1 images skopeo wrote. */
  readonly schema1: Record<string, string>;
  readonly foreign: { ref: string; digest: string; foreignLayer: string };
  readonly signed: { subject: string; subjectDigest: string; sigTag: string; referrer: string };
  readonly untagged: { repository: string; digest: string };
}

/**
 * What an old registry holds, made with the real tools where they can make it: schema1 images written by
 * `skopeo copy --format v2s1` into a docker-registry with schema1 compatibility on (real unsigned payloads on
 * disk); then, by hand on the same storage, a Windows-style image whose base layer is foreign (absent, with
 * `urls`), a cosign-style `sha256-<hex>.sig` tag, an OCI referrer with `subject`, an untagged manifest, and link
 * files written with a trailing newline and with CRLF.
 */
export async function buildLegacyTree(): Promise<LegacyTree> {
  const source = buildDemoStorage(path.join(tempDir('regmigrate-legacy-src-'), 'registry'));
  const from = await startRegistry({ root: source.root, readonly: true });
  const to = await startRegistry({ schema1: true });
  const schema1: Record<string, string> = {};
  for (const [src, dst] of [
    ['library/alpine:3.19', 'legacy/alpine:2016'],
    ['team/api:1.0', 'legacy/api:v1'],
  ] as const) {
    await execa('skopeo', ['copy', '--quiet', '--format', 'v2s1', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${from.host}/${src}`, `docker://${to.host}/${dst}`]);
  }
  await from.stop();
  await to.stop();
  const b = new StorageBuilder(to.root);
  for (const ref of ['legacy/alpine:2016', 'legacy/api:v1']) {
    const [repo, tag] = ref.split(':') as [string, string];
    schema1[ref] = readFileSync(path.join(b.repoDir(repo), '_manifests/tags', tag, 'current/link'), 'utf8').trim();
  }

  // Windows-style: a foreign base layer that the registry never stored, and a small layer of its own.
  const foreignLayer = `sha256:${'f'.repeat(64)}`;
  const own = makeLayer('Files/app.exe', 'windows app\n');
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'windows', rootfs: { type: 'layers', diff_ids: [`sha256:${'e'.repeat(64)}`, own.diffId] } }));
  const configDigest = b.addBlob('win/app', config);
  b.addBlob('win/app', own.blob);
  const winManifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.dockerManifest,
    config: { mediaType: MEDIA.dockerConfig, size: config.length, digest: configDigest },
    layers: [
      { mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', size: 1234567, digest: foreignLayer, urls: ['https://mcr.microsoft.com/v2/windows/servercore/blobs/' + foreignLayer] },
      { mediaType: MEDIA.dockerLayer, size: own.blob.length, digest: own.digest },
    ],
  });
  const winDigest = b.addManifest('win/app', winManifest);
  b.tag('win/app', 'ltsc2019', winDigest);

  // A signed image: the image, a cosign-style signature tag, and an OCI referrer (an SBOM) with `subject`.
  const image = addImage(b, 'signed/app', { format: 'oci', layers: [makeLayer('app', 'signed app\n')], label: 'signed' });
  b.tag('signed/app', 'v1', image.digest);
  const sigLayer = Buffer.from('{"critical":{"image":{"docker-manifest-digest":"' + image.digest + '"}}}');
  const sigLayerDigest = b.addBlob('signed/app', sigLayer);
  const emptyConfig = b.addBlob('signed/app', '{}');
  const sig = b.addManifest(
    'signed/app',
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', size: 2, digest: emptyConfig },
      layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', size: sigLayer.length, digest: sigLayerDigest }],
    }),
  );
  const sigTag = `sha256-${image.digest.slice(7)}.sig`;
  b.tag('signed/app', sigTag, sig);
  const sbom = b.addBlob('signed/app', '{"spdxVersion":"SPDX-2.3"}');
  const referrer = b.addManifest(
    'signed/app',
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      artifactType: 'application/spdx+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', size: 2, digest: emptyConfig },
      layers: [{ mediaType: 'application/spdx+json', size: 26, digest: sbom }],
      subject: { mediaType: MEDIA.ociManifest, size: image.manifest.length, digest: image.digest },
    }),
  );
  b.tag('signed/app', 'sbom', referrer);

  // An untagged manifest: in revisions, no tag points at it (someone still pulls it by digest).
  const old = addImage(b, 'signed/app', { format: 'oci', layers: [makeLayer('app', 'old build\n')], label: 'old-build' });

  // Link files as older writers and hand edits leave them.
  writeFileSync(path.join(b.repoDir('legacy/alpine'), '_manifests/tags/2016/current/link'), `${schema1['legacy/alpine:2016']}\n`);
  writeFileSync(path.join(b.repoDir('win/app'), '_manifests/tags/ltsc2019/current/link'), `${winDigest}\r\n`);

  return {
    root: to.root,
    schema1,
    foreign: { ref: 'win/app:ltsc2019', digest: winDigest, foreignLayer },
    signed: { subject: 'signed/app:v1', subjectDigest: image.digest, sigTag, referrer },
    untagged: { repository: 'signed/app', digest: old.digest },
  };
}

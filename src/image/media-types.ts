/** The manifest media types of docs/registry-behaviour.md, Manifests. */
export const SCHEMA1_SIGNED = 'application/vnd.docker.distribution.manifest.v1+prettyjws';
export const SCHEMA1 = 'application/vnd.docker.distribution.manifest.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

export const MANIFEST_MEDIA_TYPES = [SCHEMA1_SIGNED, SCHEMA1, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX] as const;

export type ManifestKind = 'schema1' | 'image' | 'index';

const SHORT_NAMES: Record<string, string> = {
  [SCHEMA1_SIGNED]: 'schema1',
  [SCHEMA1]: 'schema1',
  [DOCKER_MANIFEST]: 'docker-v2',
  [DOCKER_MANIFEST_LIST]: 'docker-list',
  [OCI_MANIFEST]: 'oci',
  [OCI_INDEX]: 'oci-index',
};

export function isSchema1(mediaType: string | undefined): boolean {
  return mediaType === SCHEMA1_SIGNED || mediaType === SCHEMA1;
}

export function shortMediaType(mediaType: string | undefined): string {
  if (!mediaType) return '-';
  return SHORT_NAMES[mediaType] ?? mediaType;
}

const FRIENDLY_NAMES: Record<string, string> = {
  [SCHEMA1_SIGNED]: 'Docker schema1 (signed)',
  [SCHEMA1]: 'Docker schema1',
  [DOCKER_MANIFEST]: 'Docker v2 image',
  [DOCKER_MANIFEST_LIST]: 'Docker manifest list',
  [OCI_MANIFEST]: 'OCI image',
  [OCI_INDEX]: 'OCI index',
};

/** A manifest media type as a reader of a report says it ("OCI index"); an unknown one as it is. */
export function friendlyMediaType(mediaType: string): string {
  return FRIENDLY_NAMES[mediaType] ?? mediaType;
}

/** Foreign (Windows base) and non-distributable layers may legitimately be absent from the storage (docs/registry-behaviour.md, Manifests). */
export function isForeignLayer(mediaType: string | undefined, urls: readonly string[] | undefined): boolean {
  if (urls && urls.length > 0) return true;
  if (!mediaType) return false;
  return mediaType.includes('.foreign.') || mediaType.includes('nondistributable');
}

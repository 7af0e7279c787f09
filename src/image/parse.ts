import { isDigest } from '../storage/digest.js';
import {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  isForeignLayer,
  OCI_INDEX,
  OCI_MANIFEST,
  SCHEMA1,
  SCHEMA1_SIGNED,
  type ManifestKind,
} from './media-types.js';
import { ImageManifest, IndexManifest, ManifestHead, Schema1Manifest, type Descriptor } from './schema.js';

export interface BlobReference {
  readonly digest: string;
  /** Size from the descriptor; schema1 has none (undefined). */
  readonly size: number | undefined;
  readonly mediaType: string | undefined;
  readonly role: 'config' | 'layer';
  readonly foreign: boolean;
}

export interface ChildReference {
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string | undefined;
  readonly platform: string | undefined;
}

export interface ParsedManifest {
  readonly kind: ManifestKind;
  readonly mediaType: string;
  readonly blobs: readonly BlobReference[];
  readonly children: readonly ChildReference[];
  /** OCI `subject`: a weak link to the manifest this one refers to (signatures, attestations). */
  readonly subject: string | undefined;
}

export type ParseResult = { ok: true; manifest: ParsedManifest } | { ok: false; reason: string };

const IMAGE_TYPES = new Set([DOCKER_MANIFEST, OCI_MANIFEST]);
const INDEX_TYPES = new Set([DOCKER_MANIFEST_LIST, OCI_INDEX]);

/**
 * The media type is not stored beside a manifest, so it is detected from the bytes (docs/registry-behaviour.md, Storage layout):
 * schemaVersion 1 → schema1; 2 → the `mediaType` field; no `mediaType` → OCI index when it has `manifests`,
 * else OCI manifest.
 */
export function parseManifest(bytes: Buffer): ParseResult {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  const head = ManifestHead.safeParse(json);
  if (!head.success) return { ok: false, reason: 'no numeric schemaVersion' };
  const { schemaVersion, mediaType } = head.data;
  if (schemaVersion === 1) return parseSchema1(json, mediaType);
  if (schemaVersion !== 2) return { ok: false, reason: `unknown schemaVersion ${schemaVersion}` };

  const detected = mediaType ?? (Array.isArray(head.data.manifests) ? OCI_INDEX : OCI_MANIFEST);
  if (IMAGE_TYPES.has(detected)) return parseImage(json, detected);
  if (INDEX_TYPES.has(detected)) return parseIndex(json, detected);
  return { ok: false, reason: `unknown manifest media type "${detected}"` };
}

function describeIssue(error: { issues: ReadonlyArray<{ path: PropertyKey[]; message: string }> }): string {
  const issue = error.issues[0];
  if (!issue) return 'does not match its schema';
  const where = issue.path.length > 0 ? issue.path.map(String).join('.') : 'manifest';
  return `${where}: ${issue.message}`;
}

function checkDescriptorDigest(descriptor: Descriptor, where: string): string | undefined {
  return isDigest(descriptor.digest) ? undefined : `${where} digest "${descriptor.digest}" is not a digest`;
}

function parseSchema1(json: unknown, mediaType: string | undefined): ParseResult {
  const parsed = Schema1Manifest.safeParse(json);
  if (!parsed.success) return { ok: false, reason: `schema1 ${describeIssue(parsed.error)}` };
  const blobs: BlobReference[] = [];
  for (const layer of parsed.data.fsLayers) {
    if (!isDigest(layer.blobSum)) return { ok: false, reason: `fsLayers blobSum "${layer.blobSum}" is not a digest` };
    blobs.push({ digest: layer.blobSum, size: undefined, mediaType: undefined, role: 'layer', foreign: false });
  }
  // The stored payload is unsigned (the registry strips signatures); it is still the prettyjws type on the wire.
  const type = mediaType === SCHEMA1 ? SCHEMA1 : SCHEMA1_SIGNED;
  return { ok: true, manifest: { kind: 'schema1', mediaType: type, blobs, children: [], subject: undefined } };
}

function parseImage(json: unknown, mediaType: string): ParseResult {
  const parsed = ImageManifest.safeParse(json);
  if (!parsed.success) return { ok: false, reason: describeIssue(parsed.error) };
  const { config, layers, subject } = parsed.data;
  const bad = checkDescriptorDigest(config, 'config') ?? layers.map((l, i) => checkDescriptorDigest(l, `layers.${i}`)).find(Boolean);
  if (bad) return { ok: false, reason: bad };
  const blobs: BlobReference[] = [
    { digest: config.digest, size: config.size, mediaType: config.mediaType, role: 'config', foreign: false },
    ...layers.map(
      (layer): BlobReference => ({
        digest: layer.digest,
        size: layer.size,
        mediaType: layer.mediaType,
        role: 'layer',
        foreign: isForeignLayer(layer.mediaType, layer.urls),
      }),
    ),
  ];
  return { ok: true, manifest: { kind: 'image', mediaType, blobs, children: [], subject: subject?.digest } };
}

function parseIndex(json: unknown, mediaType: string): ParseResult {
  const parsed = IndexManifest.safeParse(json);
  if (!parsed.success) return { ok: false, reason: describeIssue(parsed.error) };
  const children: ChildReference[] = [];
  for (const [i, child] of parsed.data.manifests.entries()) {
    const bad = checkDescriptorDigest(child, `manifests.${i}`);
    if (bad) return { ok: false, reason: bad };
    children.push({ digest: child.digest, size: child.size, mediaType: child.mediaType, platform: formatPlatform(child) });
  }
  return { ok: true, manifest: { kind: 'index', mediaType, blobs: [], children, subject: parsed.data.subject?.digest } };
}

function formatPlatform(descriptor: Descriptor): string | undefined {
  const p = descriptor.platform;
  if (!p?.os || !p.architecture) return undefined;
  // BuildKit attestation manifests carry unknown/unknown: not a platform anyone runs.
  if (p.os === 'unknown' && p.architecture === 'unknown') return undefined;
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

import * as z from 'zod';

/**
 * The parts of each manifest format that we read (docs/registry-behaviour.md, Manifests). Only the fields we use are declared and extras
 * pass through untouched: these schemas extract descriptors; the bytes we push are always the stored ones.
 */
export const Descriptor = z.looseObject({
  mediaType: z.string().optional(),
  digest: z.string(),
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  platform: z
    .looseObject({
      os: z.string().optional(),
      architecture: z.string().optional(),
      variant: z.string().optional(),
    })
    .optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type Descriptor = z.infer<typeof Descriptor>;

export const ManifestHead = z.looseObject({
  schemaVersion: z.number().int(),
  mediaType: z.string().optional(),
  manifests: z.unknown().optional(),
});
export type ManifestHead = z.infer<typeof ManifestHead>;

export const Schema1Manifest = z.looseObject({
  schemaVersion: z.literal(1),
  name: z.string().optional(),
  tag: z.string().optional(),
  architecture: z.string().optional(),
  fsLayers: z.array(z.looseObject({ blobSum: z.string() })),
  history: z.array(z.looseObject({ v1Compatibility: z.string() })).optional(),
});
export type Schema1Manifest = z.infer<typeof Schema1Manifest>;

export const ImageManifest = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: Descriptor,
  layers: z.array(Descriptor),
  subject: Descriptor.optional(),
});
export type ImageManifest = z.infer<typeof ImageManifest>;

export const IndexManifest = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(Descriptor),
  subject: Descriptor.optional(),
});
export type IndexManifest = z.infer<typeof IndexManifest>;

/** An image config, for its diff IDs (a schema1 conversion made earlier is recognised by them). */
export const ImageConfig = z.looseObject({
  rootfs: z.looseObject({ diff_ids: z.array(z.string()) }),
});
export type ImageConfig = z.infer<typeof ImageConfig>;

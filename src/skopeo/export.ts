import path from 'node:path';
import pLimit from 'p-limit';
import { errorMessage, UsageError } from '../errors.js';
import { scanStorage } from '../inventory/scan.js';
import { planMigration, selectCandidates, type Plan, type PlannedImage, type RejectedImage } from '../plan/plan.js';
import { cachedMapper } from '../plan/map-names.js';
import { shardSelector } from '../plan/shard.js';
import type { SourceSelection } from '../transfer/source.js';
import { openStorage } from '../storage/open.js';
import type { Storage } from '../storage/storage.js';
import type { ManifestRecord } from '../image/reader.js';
import { makeSigningKey, schema1Payload, signSchema1, type SigningKey } from '../image/schema1.js';
import { imageDirectory, layoutFiles, Linker, removeImageDirectory, writeImageDirectory, type LayoutSource, type LinkStats } from './dir-layout.js';
import type { OnNotice } from '../util/notice.js';

export interface ExportedImage {
  readonly image: PlannedImage;
  readonly directory: string;
  readonly ok: boolean;
  readonly reason?: string;
}

/**
 * Writes the `dir:` layouts of the plan's images under `out`, a few at a time; one image's failure stops no other.
 * Files are hard links to the storage's own files where it has them, else copies read from it.
 */
export async function exportImages(
  storage: Storage,
  plan: Pick<Plan, 'images' | 'blobs'>,
  out: string,
  linker: Linker,
  concurrency: number,
  manifests: ReadonlyMap<string, ManifestRecord>,
): Promise<ExportedImage[]> {
  const limit = pLimit(concurrency);
  const sizes = new Map(plan.blobs.map((b) => [b.digest, b.size]));
  const source = (digest: string): LayoutSource => ({ localPath: storage.localPath?.(digest), reader: storage.blobReader(digest, manifests.get(digest)?.bytes.length ?? sizes.get(digest) ?? 0) });
  let key: SigningKey | undefined;
  /** skopeo pushes a schema1 `manifest.json` as it finds it, and registries want it signed: sign it here. */
  const schema1Content = (image: PlannedImage) => {
    const record = manifests.get(image.digest);
    if (record?.kind !== 'schema1') return undefined;
    return { bytes: signSchema1(record.bytes, (key ??= makeSigningKey())), same: (existing: Buffer) => schema1Payload(existing).equals(record.bytes) && existing.length > record.bytes.length };
  };
  return Promise.all(
    plan.images.map((image) =>
      limit(async (): Promise<ExportedImage> => {
        const directory = imageDirectory(out, image);
        try {
          await writeImageDirectory(directory, layoutFiles(image, source, schema1Content(image)), linker);
          return { image, directory, ok: true };
        } catch (err) {
          await removeImageDirectory(directory).catch(() => undefined);
          return { image, directory, ok: false, reason: `export: ${errorMessage(err)}` };
        }
      }),
    ),
  );
}

/** Refuses an output directory inside the storage: the source is never written to. */
export function assertOutsideStorage(storage: Storage, out: string, what: string): void {
  const root = storage.enclosing?.(out);
  if (root !== undefined) throw new UsageError(`${what} ${out} is inside the registry storage ${root}`, 'the storage is never written to: choose a directory outside it');
}

export interface ExportOptions extends SourceSelection {
  readonly out: string;
  readonly concurrency: number;
  readonly onNotice?: OnNotice;
}

export interface ExportResult {
  readonly exported: readonly ExportedImage[];
  readonly rejected: readonly RejectedImage[];
  readonly links: LinkStats;
  /** The source: the storage as a sentence names it (src/storage/storage.ts describe), tag locations before any selection, and the tags selected. */
  readonly source: { readonly name: string; readonly foundTags: number; readonly tags: number };
}

/** `export`: every healthy tag as a skopeo `dir:` layout at `<out>/<destination repository>:<tag>`. */
export async function exportStorage(options: ExportOptions): Promise<ExportResult> {
  const storage = await openStorage(options.root, options.storageOptions);
  assertOutsideStorage(storage, options.out, '--out');
  const inventory = await scanStorage(storage, {
    include: options.include,
    exclude: options.exclude,
    verify: false,
    concurrency: options.concurrency,
    includeUntagged: options.includeUntagged ?? false,
    ...(options.tags ? { tags: options.tags } : {}),
    ...(options.shard ? { select: shardSelector(cachedMapper({ rules: options.maps, defaultProject: options.defaultProject, harbor: false }), options.shard) } : {}),
  });
  // No destination: only distribution's grammar applies to names (Harbor's project rule is checked at push).
  const candidates = selectCandidates(inventory, { rules: options.maps, defaultProject: options.defaultProject, harbor: false });
  const plan = planMigration(candidates, inventory.manifests, { projectExists: () => true, tags: new Map() });
  const linker = new Linker((message) => options.onNotice?.({ level: 'info', message }));
  if (storage.copyReason && plan.images.length > 0) options.onNotice?.({ level: 'info', message: storage.copyReason });
  const exported = await exportImages(storage, plan, path.resolve(options.out), linker, options.concurrency, inventory.manifests);
  return { exported, rejected: plan.rejected, links: linker.stats, source: { name: storage.describe(), foundTags: inventory.foundTags ?? 0, tags: inventory.tags.length } };
}

import { shortMediaType } from '../image/media-types.js';
import { shortDigest } from '../storage/digest.js';
import { count, csvLine, formatBytes, renderTable } from '../util/format.js';
import type { SelectionSizes } from './select.js';
import { tagRef, type InventorySummary, type ReadFault, type SourceInventory, type TagEntry } from './types.js';

export type OutputFormat = 'table' | 'json' | 'csv' | 'html';

/** Version of the `scan --output json` document; bump on any incompatible change. */
export const SCAN_JSON_VERSION = 1;

function status(tag: TagEntry): string {
  if (tag.faults.length === 0) return 'ok';
  const kinds = [...new Set(tag.faults.map((f) => f.kind))];
  return kinds.join(',');
}

export function renderScanTable(inventory: SourceInventory, summary: InventorySummary): string {
  const rows = inventory.tags.map((tag) => [
    tag.repository,
    tag.tag,
    shortDigest(tag.digest),
    shortMediaType(tag.mediaType),
    tag.platforms.join(',') || '-',
    formatBytes(tag.size),
    tag.pushedAt ? tag.pushedAt.slice(0, 16).replace('T', ' ') : '-',
    status(tag),
  ]);
  let out = renderTable(['REPOSITORY', 'TAG', 'DIGEST', 'TYPE', 'PLATFORMS', 'SIZE', 'PUSHED (UTC)', 'STATUS'], rows);
  const faulty = inventory.tags.filter((t) => t.faults.length > 0);
  if (faulty.length > 0 || inventory.readFaults.length > 0) {
    out += '\nFaults:\n';
    for (const fault of inventory.readFaults) out += `  ${describeReadFault(fault)}\n`;
    for (const tag of faulty) for (const fault of tag.faults) out += `  ${tagRef(tag)}: ${fault.kind}: ${fault.message}\n`;
  }
  out += '\n' + renderSummaryLine(summary) + '\n';
  return out;
}

export function renderSummaryLine(summary: InventorySummary): string {
  const faults = Object.entries(summary.faults)
    .filter(([, n]) => n > 0)
    .map(([kind, n]) => `${kind} ${n}`)
    .join(', ');
  return (
    `${count(summary.repositories, 'repository', 'repositories')}, ${count(summary.tags, 'tag')} (${summary.faultyTags} faulty), ` +
    `${count(summary.uniqueManifests, 'unique manifest')}, ${count(summary.uniqueBlobs, 'unique blob')}, ${formatBytes(summary.totalBytes)}` +
    (summary.untaggedManifests ? `, ${count(summary.untaggedManifests, 'untagged manifest')}` : '') +
    (faults ? `; faults: ${faults}` : '')
  );
}

/** One line naming the place and the error: `unreadable: …/repositories/team/_manifests/tags (EACCES): …`. */
export function describeReadFault(fault: ReadFault): string {
  if (fault.detail) return `unreadable: ${fault.detail}`;
  const what = fault.prefix ? (fault.repository ? `the tags of ${fault.prefix}` : `the repositories under ${fault.prefix}`) : 'every repository';
  return `unreadable: ${fault.location} (${fault.code}): ${what} could not be listed`;
}

function tagJson(tag: TagEntry) {
  return {
    repository: tag.repository,
    tag: tag.tag,
    digest: tag.digest ?? null,
    mediaType: tag.mediaType ?? null,
    platforms: tag.platforms,
    size: tag.size,
    pushedAt: tag.pushedAt ?? null,
    blobCount: tag.blobs.length,
    status: tag.faults.length === 0 ? 'ok' : 'faulty',
    manifests: tag.manifests,
    blobs: tag.blobs.map((b) => ({ digest: b.digest, size: b.size, mediaType: b.mediaType ?? null, foreign: b.foreign, present: b.present })),
    faults: tag.faults.map((f) => ({ kind: f.kind, digest: f.digest ?? null, message: f.message })),
  };
}

/**
 * The documented `scan --output json` document (docs/commands/scan.md, Output), produced piece by piece: one tag per line
 * inside `tags`, so a large inventory streams out and stays greppable while being one valid JSON value.
 */
export function* scanJsonPieces(inventory: SourceInventory, summary: InventorySummary, selection?: { projects: SelectionSizes[]; total: SelectionSizes }): Generator<string> {
  yield scanJsonHead(inventory.root);
  yield* scanJsonTags(inventory.tags, true);
  yield scanJsonTail(inventory.readFaults, summary, selection);
}

/** The scan's JSON in three parts, so a large scan can write its tags a batch at a time. */
export function scanJsonHead(root: string): string {
  return `{"schemaVersion":${SCAN_JSON_VERSION},"kind":"regmigrate.scan","root":${JSON.stringify(root)},"tags":[`;
}

export function* scanJsonTags(tags: readonly TagEntry[], first: boolean): Generator<string> {
  for (const [i, tag] of tags.entries()) yield (first && i === 0 ? '\n' : ',\n') + JSON.stringify(tagJson(tag));
}

export function scanJsonTail(faults: readonly ReadFault[], summary: InventorySummary, selection?: { projects: SelectionSizes[]; total: SelectionSizes }): string {
  const readFaults = faults.map((f) => ({ kind: 'unreadable', path: f.path, prefix: f.prefix, code: f.code, message: describeReadFault(f) }));
  return `\n],"readFaults":${JSON.stringify(readFaults)},"summary":${JSON.stringify(summary)}${selection ? `,"selection":${JSON.stringify(selection)}` : ''}}\n`;
}

export const SCAN_CSV_HEADER = ['repository', 'tag', 'digest', 'media_type', 'platforms', 'size', 'blob_count', 'status', 'faults', 'pushed_at'];

export function* scanCsvPieces(inventory: SourceInventory): Generator<string> {
  yield csvLine(SCAN_CSV_HEADER);
  yield* scanCsvFaults(inventory.readFaults);
  yield* scanCsvTags(inventory.tags);
}

export function* scanCsvFaults(faults: readonly ReadFault[]): Generator<string> {
  for (const fault of faults) yield csvLine([fault.prefix, '', '', '', '', '', '', 'unreadable', describeReadFault(fault), '']);
}

export function* scanCsvTags(tags: readonly TagEntry[]): Generator<string> {
  for (const tag of tags) {
    yield csvLine([
      tag.repository,
      tag.tag,
      tag.digest,
      tag.mediaType,
      tag.platforms.join(' '),
      tag.size,
      tag.blobs.length,
      status(tag),
      tag.faults.map((f) => `${f.kind}: ${f.message}`).join(' | '),
      tag.pushedAt,
    ]);
  }
}

/** What a tag selection keeps and drops, per project and in total (tags, unique bytes). */
export function renderSelectionSizes(sizes: { projects: SelectionSizes[]; total: SelectionSizes }): string {
  const row = (s: SelectionSizes) => [s.project, String(s.keptTags), formatBytes(s.keptBytes), String(s.droppedTags), formatBytes(s.droppedBytes)];
  return '\nSelection:\n' + renderTable(['PROJECT', 'KEPT TAGS', 'KEPT BYTES', 'DROPPED TAGS', 'BYTES SAVED'], [...sizes.projects.map(row), row(sizes.total)]);
}

/**
 * The layout follows the data flow (docs/architecture.md, Module layering): storage → image → inventory → plan → registry → harbor → destination → transfer → skopeo → push → sync → cutover →
 * report → cli, with util/, errors.ts and tuning.ts shared by all. No module imports from a folder later in the flow, so each
 * stage can be read, tested and replaced on its own.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT } from './helpers/cli.js';

const ORDER = ['storage', 'image', 'inventory', 'plan', 'registry', 'harbor', 'destination', 'transfer', 'skopeo', 'push', 'sync', 'cutover', 'report', 'cli'];
const SRC = path.join(PROJECT, 'src');

/** A module that imports the filesystem. */
const FS_IMPORT = /^(?:import|export)[^;]*? from '(?:node:)?fs(?:\/promises)?'|\bimport\(\s*'(?:node:)?fs/m;

/** The folders above storage/ that read the source: they reach it only through src/storage/storage.ts Storage. */
const ABOVE_STORAGE = ['image', 'inventory', 'plan', 'transfer', 'push', 'sync', 'skopeo'];

/**
 * Files in those folders that use the filesystem, or its error codes, for what is not the source, and what for:
 * output files, locks and journals are not the source (the journal's writes and the lock go through util/).
 */
const NOT_THE_SOURCE: Record<string, string> = {
  'skopeo/dir-layout.ts': 'writes the dir: layouts, and reads back its own copies to hash them; hard-links only a path the storage hands out (Storage.localPath)',
  'skopeo/skopeo.ts': 'its work directory, the authfile and the digest files',
  'sync/sync-state.ts': 'the sync journal: one that does not exist yet (ENOENT) is empty',
};

/** An errno code in a string: `'ENOENT'`. */
const ERRNO = /'E[A-Z]{3,}'/;

/** The storage modules the rest may import: the interface, opening one, the walk over the interface, digest grammar. */
const STORAGE_SURFACE = ['storage/storage.ts', 'storage/open.ts', 'storage/walk.ts', 'storage/digest.ts'];

/** What only a backend knows: its paths, its files, its kind. */
const BACKEND_DETAIL = [
  /\b(?:StorageLayout|locateStorage|blobDataPath|readSmall|readSmallFileSync|statData|dataSource|tagLinkPath|revisionLinkPath|modifiedAt|BlobSource|TarIndex|openTar|registryRoot|DirectoryStorage|TarStorage|S3Storage|S3SourceClient|parseS3Url)\b/,
  /\b(?:layout|storage|source)\.(?:tar|v2|blobs|repositories|given|file)\b/,
  /['`/]_manifests\b|\bblobs\/sha256\b/,
  /endsWith\('#'\)/,
];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

/** -1 for what every layer may use (util/, errors.ts, tuning.ts). */
function layer(file: string): number {
  const top = path.relative(SRC, file).split(path.sep)[0]!;
  return top === 'util' || top.startsWith('errors') || top === 'tuning.ts' ? -1 : ORDER.indexOf(top);
}

describe('module layout', () => {
  it('every folder under src/ is a known stage', () => {
    for (const file of sources(SRC)) expect(layer(file), path.relative(SRC, file)).toBeGreaterThanOrEqual(-1);
  });

  it('no import runs backwards against the data flow', () => {
    const backwards: string[] = [];
    for (const file of sources(SRC)) {
      for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)[^;]*? from '(\.[^']+)'/gm)) {
        const target = path.resolve(path.dirname(file), m[1]!.replace(/\.js$/, '.ts'));
        if (layer(target) > layer(file)) backwards.push(`${path.relative(SRC, file)} → ${path.relative(SRC, target)}`);
        if (layer(file) === -1 && layer(target) !== -1) backwards.push(`${path.relative(SRC, file)} (shared) → ${path.relative(SRC, target)}`);
      }
    }
    expect(backwards).toEqual([]);
  });

  it('the registry client opens no files: blobs reach it as readers, credentials and CA certificates as values', () => {
    const opening = sources(path.join(SRC, 'registry')).filter((file) => FS_IMPORT.test(readFileSync(file, 'utf8')));
    expect(opening.map((file) => path.relative(SRC, file))).toEqual([]);
  });

  it('nothing above storage/ opens, stats or joins a source path: the filesystem only for output, in the files that say so', () => {
    const above = ABOVE_STORAGE.flatMap((folder) => sources(path.join(SRC, folder))).map((file) => path.relative(SRC, file).split(path.sep).join('/'));
    const text = (file: string): string => readFileSync(path.join(SRC, file), 'utf8');
    const opening = above.filter((file) => FS_IMPORT.test(text(file)));
    expect(opening.filter((file) => !(file in NOT_THE_SOURCE))).toEqual([]);
    // Errors from the source come in the storage's words (absent, invalid, too-big, unreadable), never as errno codes.
    const errno = above.filter((file) => ERRNO.test(text(file)));
    expect(errno.filter((file) => !(file in NOT_THE_SOURCE))).toEqual([]);
    // The list stays honest: every file on it still needs to be there.
    expect(Object.keys(NOT_THE_SOURCE).filter((file) => !opening.includes(file) && !errno.includes(file))).toEqual([]);
  });

  it('above storage/, a storage is reached through its interface: no backend module, none of its paths or kinds', () => {
    const leaks: string[] = [];
    for (const file of sources(SRC)) {
      const rel = path.relative(SRC, file).split(path.sep).join('/');
      if (rel.startsWith('storage/')) continue;
      const text = readFileSync(file, 'utf8');
      // Code, not the examples comments give.
      const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
      for (const m of text.matchAll(/^(?:import|export)[^;]*? from '(\.[^']+)'/gm)) {
        const target = path.relative(SRC, path.resolve(path.dirname(file), m[1]!.replace(/\.js$/, '.ts'))).split(path.sep).join('/');
        if (target.startsWith('storage/') && !STORAGE_SURFACE.includes(target)) leaks.push(`${rel} imports ${target}`);
      }
      for (const pattern of BACKEND_DETAIL) {
        const hit = pattern.exec(code);
        if (hit) leaks.push(`${rel}: ${hit[0]}`);
      }
    }
    expect(leaks).toEqual([]);
  });
});

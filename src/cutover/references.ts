import { lstatSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { writeFileAtomic } from '../util/files.js';
import { siblingTag, type SiblingTag } from './helm-pair.js';
import type { ReferenceMap } from './reference-map.js';

/** One reference to the old registry found in a file. */
export interface FoundReference {
  /** Relative to the directory walked, `/`-separated. */
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly old: string;
  /** What to write instead; undefined when the tag was not migrated (failed) or is not in the map (unknown). */
  readonly new: string | undefined;
  /** A Helm `repository:` read with the `tag:` beside it (helm-pair.ts): that tag; only the repository is rewritten. */
  readonly tag?: string;
  readonly status: 'migrated' | 'failed' | 'unknown';
  readonly reason: string | undefined;
  /** Where it is in the file's text (string offsets), for the rewrite. */
  readonly start: number;
  readonly end: number;
}

export interface ReferenceScan {
  readonly references: readonly FoundReference[];
  /** Files naming the old registry that are not UTF-8 text: never read further, never written. */
  readonly refused: readonly string[];
  /** Files or directories that could not be read (with the error code). */
  readonly unreadable: readonly string[];
  readonly filesRead: number;
}

/** Version-control metadata is not the user's text. */
const SKIPPED_DIRECTORIES = new Set(['.git', '.hg', '.svn']);
/** Manifests, values and Dockerfiles are small; anything larger is not configuration. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A tag by distribution's grammar (reference/regexp.go). */
const TAG_SOURCE = '[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}';
const TAG = new RegExp(`^${TAG_SOURCE}$`);

/**
 * `<old-host>/<repository>[:<tag>][@<digest>]`, the repository and tag by distribution's grammar (reference/regexp.go:
 * path components `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`, tag `[\w][\w.-]{0,127}`). The host must not be the tail of
 * a longer host name (`my-old-registry:5000`).
 */
function referencePattern(oldHost: string): RegExp {
  const component = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
  return new RegExp(`(?<![A-Za-z0-9._-])${escapeRegExp(oldHost)}/(${component}(?:/${component})*)(?::(${TAG_SOURCE}))?(?:@(sha256:[a-f0-9]{64}))?`, 'g');
}


/**
 * Where one reference goes: its new form, or why it has none. `tagInText`: the tag is part of the reference's text
 * (not a Helm `tag:` key beside it), so the new form carries it.
 */
function resolveReference(map: ReferenceMap, newHost: string, repository: string, tag: string | undefined, digest: string | undefined, tagInText = true): Pick<FoundReference, 'new' | 'status' | 'reason'> {
  const target = map.repositories.get(repository);
  if (!target) return { new: undefined, status: 'unknown', reason: `repository ${repository} is not in the report` };
  if (tag === undefined && digest) {
    const entry = [...map.tags.values()].find((t) => t.repository === repository && t.status === 'migrated' && t.digest === digest);
    if (!entry) return { new: undefined, status: 'unknown', reason: `no migrated tag of ${repository} has digest ${digest}` };
    return { new: `${newHost}/${target}@${entry.destinationDigest ?? digest}`, status: 'migrated', reason: undefined };
  }
  // No tag means `latest`, as for any client.
  const name = tag ?? 'latest';
  const entry = map.tags.get(`${repository}:${name}`);
  if (!entry) return { new: undefined, status: 'unknown', reason: `tag ${repository}:${name} is not in the report` };
  if (entry.status === 'failed') return { new: undefined, status: 'failed', reason: `${repository}:${name} was not migrated: ${entry.reason ?? 'failed'}` };
  if (digest && digest !== entry.digest) return { new: undefined, status: 'unknown', reason: `${repository}:${name} was migrated at ${entry.digest ?? 'another digest'}, not ${digest}` };
  const newName = entry.destination ?? `${target}:${name}`;
  const newRepository = newName.slice(0, newName.lastIndexOf(':'));
  return { new: `${newHost}/${newRepository}${tag === undefined || !tagInText ? '' : `:${tag}`}${digest ? `@${entry.destinationDigest ?? digest}` : ''}`, status: 'migrated', reason: undefined };
}

/** A Helm pair: the tag from its own key, and the new repository without it (the `tag:` line stays as it is). */
function resolvePair(map: ReferenceMap, newHost: string, repository: string, pair: SiblingTag): Pick<FoundReference, 'new' | 'status' | 'reason'> {
  if (pair.value === '') return { new: undefined, status: 'unknown', reason: `the tag: beside it on line ${pair.line} is empty (the chart's appVersion): which tag of ${repository} is not known here` };
  if (!TAG.test(pair.value)) return { new: undefined, status: 'unknown', reason: `the tag: beside it on line ${pair.line}, "${pair.value}", is not a tag` };
  return resolveReference(map, newHost, repository, pair.value, undefined, false);
}

/** Text a rewrite can round-trip: no NUL byte, valid UTF-8. */
function asText(bytes: Buffer): string | undefined {
  if (bytes.includes(0)) return undefined;
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? text : undefined;
}

/**
 * Every reference to `oldHost` in the regular files below `dir` (symbolic links are not followed, so nothing outside
 * `dir` is read or later written), with the new reference and whether its tag was migrated.
 */
export function findReferences(dir: string, map: ReferenceMap, oldHost: string, newHost: string): ReferenceScan {
  let root: string;
  try {
    root = realpathSync(dir);
    if (!lstatSync(root).isDirectory()) throw new UsageError(`${dir}: not a directory`);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${dir}: cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const references: FoundReference[] = [];
  const refused: string[] = [];
  const unreadable: string[] = [];
  let filesRead = 0;
  const needle = Buffer.from(oldHost);
  const pattern = referencePattern(oldHost);
  const walk = (relative: string): void => {
    let entries;
    try {
      entries = readdirSync(path.join(root, relative), { withFileTypes: true });
    } catch (err) {
      unreadable.push(`${relative || '.'} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      const rel = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (!SKIPPED_DIRECTORIES.has(entry.name)) walk(rel);
        continue;
      }
      if (!entry.isFile()) continue;
      let bytes: Buffer;
      try {
        if (lstatSync(path.join(root, rel)).size > MAX_FILE_BYTES) continue;
        bytes = readFileSync(path.join(root, rel));
      } catch (err) {
        unreadable.push(`${rel} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
        continue;
      }
      filesRead++;
      if (!bytes.includes(needle)) continue;
      const text = asText(bytes);
      if (text === undefined) {
        refused.push(rel);
        continue;
      }
      let line = 1;
      let lineStart = 0;
      let scanned = 0;
      for (const m of text.matchAll(pattern)) {
        for (let i = text.indexOf('\n', scanned); i !== -1 && i < m.index; i = text.indexOf('\n', i + 1)) {
          line++;
          lineStart = i + 1;
        }
        scanned = m.index;
        const end = m.index + m[0].length;
        // `repository: old/x` with `tag: 1.1` beside it is old/x:1.1, not old/x:latest.
        const pair = m[2] === undefined && m[3] === undefined ? siblingTag(text, m.index, end) : undefined;
        references.push({
          file: rel,
          line,
          column: m.index - lineStart + 1,
          old: m[0],
          ...(pair ? { tag: pair.value, ...resolvePair(map, newHost, m[1]!, pair) } : resolveReference(map, newHost, m[1]!, m[2], m[3])),
          start: m.index,
          end,
        });
      }
    }
  };
  walk('');
  return { references, refused, unreadable, filesRead };
}

/** One rewritten file: its path and the changed lines, for the diff printed. */
export interface Rewrite {
  readonly file: string;
  readonly lines: ReadonlyArray<{ line: number; before: string; after: string }>;
}

/**
 * `--write`: the migrated references replaced in place, a file at a time, written aside and renamed (mode kept);
 * files without a migrated reference are not touched. A file changed since it was read is left alone and named.
 */
export function rewriteReferences(dir: string, scan: ReferenceScan): { rewrites: Rewrite[]; changedMeanwhile: string[] } {
  const root = realpathSync(dir);
  const byFile = new Map<string, FoundReference[]>();
  for (const r of scan.references) {
    if (r.status !== 'migrated' || r.new === undefined || r.new === r.old) continue;
    const list = byFile.get(r.file) ?? [];
    list.push(r);
    byFile.set(r.file, list);
  }
  const rewrites: Rewrite[] = [];
  const changedMeanwhile: string[] = [];
  for (const [file, found] of byFile) {
    const full = path.join(root, file);
    // Never outside the directory given, whatever a name holds.
    if (path.relative(root, full).startsWith('..')) continue;
    const stat = lstatSync(full);
    const before = readFileSync(full, 'utf8');
    if (found.some((r) => before.slice(r.start, r.end) !== r.old)) {
      changedMeanwhile.push(file);
      continue;
    }
    let after = '';
    let at = 0;
    for (const r of found) {
      after += before.slice(at, r.start) + r.new!;
      at = r.end;
    }
    after += before.slice(at);
    writeFileAtomic(full, after, file, stat.mode & 0o7777);
    const oldLines = before.split('\n');
    const newLines = after.split('\n');
    const lines = [...new Set(found.map((r) => r.line))].map((line) => ({ line, before: oldLines[line - 1]!, after: newLines[line - 1]! }));
    rewrites.push({ file, lines });
  }
  return { rewrites, changedMeanwhile };
}

/** A unified diff of the rewritten lines (one hunk per line: a rewrite never adds or removes lines). */
export function renderRewriteDiff(rewrites: readonly Rewrite[]): string {
  let out = '';
  for (const r of rewrites) {
    out += `--- a/${r.file}\n+++ b/${r.file}\n`;
    for (const l of r.lines) out += `@@ -${l.line} +${l.line} @@\n-${l.before}\n+${l.after}\n`;
  }
  return out;
}

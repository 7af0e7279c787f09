import type Semver from 'semver';
import type { ManifestRecord } from '../image/reader.js';
import { globProblem, globToRegExp } from '../util/glob.js';
import { tagRef, type TagEntry } from './types.js';
import { lazyPackage } from '../util/lazy-package.js';

const semver = lazyPackage<typeof Semver>('semver');

/** A tag pattern: a glob (`v1.*`, `release-?`), or a regular expression written `/…/`. */
export interface TagPattern {
  readonly text: string;
  readonly test: (tag: string) => boolean;
}

/** Which tags of the selected repositories move (issue "migrate what matters"). Empty: every tag. */
export interface TagSelection {
  readonly tagInclude: readonly TagPattern[];
  readonly tagExclude: readonly TagPattern[];
  /** A semver range (`>=1.2 <2`): only tags that parse as versions and satisfy it (prereleases by npm's rule). */
  readonly semver?: string;
  /** Only tags pushed at or after this instant (ms since epoch): the mtime of their `current/link`. */
  readonly pushedAfter?: number;
  /** Per repository, only the N most recently pushed (ties by tag name). */
  readonly keepLatest?: number;
}

export function tagSelectionActive(s: TagSelection | undefined): s is TagSelection {
  return s !== undefined && (s.tagInclude.length > 0 || s.tagExclude.length > 0 || s.semver !== undefined || s.pushedAfter !== undefined || s.keepLatest !== undefined);
}

/** `/regex/` or a glob, or the reason it is neither. */
export function parseTagPattern(text: string): TagPattern | string {
  if (text.length >= 2 && text.startsWith('/') && text.endsWith('/')) {
    try {
      const re = new RegExp(text.slice(1, -1));
      return { text, test: (tag) => re.test(tag) };
    } catch (err) {
      return `not a valid regular expression: ${(err as Error).message}`;
    }
  }
  if (text === '' || /\s/.test(text)) return 'a tag pattern is a glob without spaces, or /regex/';
  const problem = globProblem(text);
  if (problem) return problem;
  const re = globToRegExp(text);
  return { text, test: (tag) => re.test(tag) };
}

/**
 * A tag as a version, or undefined: `1.2.3`, `v1.2`, `1` and `1.2.3-rc.1` parse (missing parts are 0); `latest`,
 * `1.2.3-alpine3.19` with a non-version suffix still parses as a prerelease, as semver itself reads it.
 */
export function tagVersion(tag: string): string | undefined {
  const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/.exec(tag);
  if (!m) return undefined;
  const text = `${m[1]}.${m[2] ?? '0'}.${m[3] ?? '0'}${m[4] ?? ''}${m[5] ?? ''}`;
  return semver().valid(text) ?? undefined;
}

export function validSemverRange(range: string): boolean {
  return semver().validRange(range) !== null;
}

/** Name rules alone (patterns, semver): what can be judged of a tag that is no longer there. */
export function nameSelected(tag: string, s: TagSelection): boolean {
  if (s.tagInclude.length > 0 && !s.tagInclude.some((p) => p.test(tag))) return false;
  if (s.tagExclude.some((p) => p.test(tag))) return false;
  if (s.semver !== undefined) {
    const version = tagVersion(tag);
    // npm's rule: a prerelease (`2.0.0-rc.1`) satisfies a range only when the range names a prerelease of the same
    // version (`>=2.0.0-0`, `^2.0.0-rc.0`), so `>=1.2 <3` means releases, as users of npm ranges expect.
    if (!version || !semver().satisfies(version, s.semver)) return false;
  }
  return true;
}

const COSIGN_TAG = /^sha256-([a-f0-9]{64})\.(sig|att|sbom)$/;

/** The image this entry belongs to (a cosign tag's digest, an OCI `subject`), or undefined for an image. */
function subjectOf(entry: TagEntry, manifests: ReadonlyMap<string, ManifestRecord>): string | undefined {
  const cosign = COSIGN_TAG.exec(entry.tag);
  if (cosign) return `sha256:${cosign[1]}`;
  return (entry.digest ? manifests.get(entry.digest)?.parsed.subject : undefined) ?? entry.subject;
}

export interface SelectionResult {
  readonly kept: TagEntry[];
  readonly dropped: TagEntry[];
}

/**
 * Applies a tag selection per repository. Images are selected by their tags; signatures, attestations, SBOMs and
 * other referrers follow their subject: kept when an image they refer to is kept, dropped with it otherwise, so a
 * kept image never loses its signature and a dropped one leaves no orphan. Pure.
 */
export function selectTags(tags: readonly TagEntry[], manifests: ReadonlyMap<string, ManifestRecord>, s: TagSelection | undefined): SelectionResult {
  if (!tagSelectionActive(s)) return { kept: [...tags], dropped: [] };
  const byRepository = new Map<string, TagEntry[]>();
  for (const t of tags) {
    let list = byRepository.get(t.repository);
    if (!list) byRepository.set(t.repository, (list = []));
    list.push(t);
  }
  const keep = new Set<TagEntry>();
  for (const entries of byRepository.values()) {
    const images: TagEntry[] = [];
    const followers: Array<{ entry: TagEntry; subject: string }> = [];
    for (const entry of entries) {
      const subject = subjectOf(entry, manifests);
      if (subject) followers.push({ entry, subject });
      else images.push(entry);
    }
    let chosen = images.filter((e) => e.untagged || (nameSelected(e.tag, s) && (s.pushedAfter === undefined || (e.pushedAt !== undefined && Date.parse(e.pushedAt) >= s.pushedAfter))));
    if (s.keepLatest !== undefined) {
      const untagged = chosen.filter((e) => e.untagged);
      const tagged = chosen
        .filter((e) => !e.untagged)
        .sort((a, b) => (Date.parse(b.pushedAt ?? '') || 0) - (Date.parse(a.pushedAt ?? '') || 0) || (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0))
        .slice(0, s.keepLatest);
      chosen = [...tagged, ...untagged];
    }
    for (const e of chosen) keep.add(e);
    // Referrers follow: kept when an image they refer to is kept (a referrer of a referrer follows in turn).
    const keptDigests = new Set(chosen.map((e) => e.digest));
    for (let changed = true; changed; ) {
      changed = false;
      for (const f of followers) {
        if (keep.has(f.entry) || !keptDigests.has(f.subject)) continue;
        keep.add(f.entry);
        if (f.entry.digest) keptDigests.add(f.entry.digest);
        changed = true;
      }
    }
  }
  const kept: TagEntry[] = [];
  const dropped: TagEntry[] = [];
  for (const t of tags) (keep.has(t) ? kept : dropped).push(t);
  return { kept, dropped };
}

/** Per project and in total: tags and unique bytes a selection keeps and drops (for sizing Harbor quotas). */
export interface SelectionSizes {
  readonly project: string;
  readonly keptTags: number;
  readonly droppedTags: number;
  /** Unique blob bytes of the kept tags. */
  readonly keptBytes: number;
  /** Unique blob bytes only the dropped tags use: what leaving them out saves. */
  readonly droppedBytes: number;
}

export function selectionSizes(result: SelectionResult, projectOf: (repository: string) => string): { projects: SelectionSizes[]; total: SelectionSizes } {
  const groups = new Map<string, { kept: TagEntry[]; dropped: TagEntry[] }>();
  const group = (p: string) => {
    let g = groups.get(p);
    if (!g) groups.set(p, (g = { kept: [], dropped: [] }));
    return g;
  };
  for (const t of result.kept) group(projectOf(t.repository)).kept.push(t);
  for (const t of result.dropped) group(projectOf(t.repository)).dropped.push(t);
  const sizes = (project: string, kept: readonly TagEntry[], dropped: readonly TagEntry[]): SelectionSizes => {
    const keptBlobs = new Map<string, number>();
    for (const t of kept) for (const b of t.blobs) keptBlobs.set(b.digest, b.size);
    const droppedBlobs = new Map<string, number>();
    for (const t of dropped) for (const b of t.blobs) if (!keptBlobs.has(b.digest)) droppedBlobs.set(b.digest, b.size);
    const sum = (m: Map<string, number>) => [...m.values()].reduce((n, v) => n + v, 0);
    return { project, keptTags: kept.length, droppedTags: dropped.length, keptBytes: sum(keptBlobs), droppedBytes: sum(droppedBlobs) };
  };
  const projects = [...groups].sort(([a], [b]) => (a < b ? -1 : 1)).map(([p, g]) => sizes(p, g.kept, g.dropped));
  return { projects, total: sizes('(total)', result.kept, result.dropped) };
}

/** `repo:tag` of every dropped entry: still in the source, so never "gone" for sync. */
export function droppedRefs(result: SelectionResult): string[] {
  return result.dropped.map((t) => tagRef(t));
}

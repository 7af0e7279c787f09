/**
 * The most common way a Helm chart names its image: the repository and the tag as two keys of one mapping,
 *
 *   image:
 *     repository: old-registry:5000/team/api
 *     tag: "1.1"
 *     pullPolicy: IfNotPresent
 *
 * Read as text (the files are never parsed and re-serialized: a rewrite changes nothing but the reference).
 */

/** The `tag:` beside a `repository:` whose whole value is the reference at [start, end), if there is one. */
export interface SiblingTag {
  /** The tag as written, quotes taken off; empty for `tag: ""` or `tag:` (the chart's appVersion then). */
  readonly value: string;
  /** 1-based line of the `tag:` key. */
  readonly line: number;
}

/** `  repository: "` or `- repository: ` before the reference, and nothing but a quote, blanks or a comment after it. */
const REPOSITORY_BEFORE = /^([ \t]*(?:-[ \t]+)*)repository:[ \t]*(["']?)$/;
const KEY = /^([ \t]*(?:-[ \t]+)*)([A-Za-z0-9_.-]+):(?:[ \t]|$)/;
const TAG_VALUE = /^[ \t]*(?:-[ \t]+)*tag:[ \t]*(?:"([^"]*)"|'([^']*)'|([^\s#"'][^#]*?))?[ \t]*(?:#.*)?$/;

export function siblingTag(text: string, start: number, end: number): SiblingTag | undefined {
  const lineStart = text.lastIndexOf('\n', start - 1) + 1;
  const lineEnd = text.indexOf('\n', end) === -1 ? text.length : text.indexOf('\n', end);
  const before = REPOSITORY_BEFORE.exec(text.slice(lineStart, start));
  if (!before) return undefined;
  const quote = before[2] ?? '';
  if (!new RegExp(`^${quote}[ \\t]*(?:#.*)?\\r?$`).test(text.slice(end, lineEnd))) return undefined;
  // The mapping's keys sit at the column of `repository`; it ends at the first line indented less.
  const column = before[1]!.length;
  const lines = text.split('\n');
  const here = text.slice(0, lineStart).split('\n').length - 1;
  const look = (index: number): 'sibling' | 'inside' | 'end' => {
    const line = lines[index]!.replace(/\r$/, '');
    if (line.trim() === '' || line.trimStart().startsWith('#')) return 'inside';
    const key = KEY.exec(line);
    const indent = line.length - line.trimStart().length;
    if (key && key[1]!.length === column) return 'sibling';
    return indent < column ? 'end' : 'inside';
  };
  const found = (index: number): SiblingTag | undefined => {
    const m = TAG_VALUE.exec(lines[index]!.replace(/\r$/, ''));
    return m ? { value: m[1] ?? m[2] ?? m[3] ?? '', line: index + 1 } : undefined;
  };
  for (let i = here + 1; i < lines.length; i++) {
    const kind = look(i);
    if (kind === 'end') break;
    // A later item of the same list starts a mapping of its own.
    if (kind === 'sibling' && /^[ \t]*-[ \t]/.test(lines[i]!)) break;
    const tag = kind === 'sibling' ? found(i) : undefined;
    if (tag) return tag;
  }
  // Above: up to the line that opened the mapping (`- tag: …` opens a list item's mapping and is one of its keys).
  for (let i = here - 1; i >= 0 && !/^[ \t]*-[ \t]/.test(lines[i + 1]!); i--) {
    const kind = look(i);
    if (kind === 'end') break;
    const tag = kind === 'sibling' ? found(i) : undefined;
    if (tag) return tag;
  }
  return undefined;
}

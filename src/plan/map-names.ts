import { checkRepositoryName } from '../storage/digest.js';

/** Harbor's project name rule (docs/registry-behaviour.md, Harbor API): stricter than distribution's (no `__`, no `--`). */
export const PROJECT_NAME_RE = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;

export interface MapRule {
  /** A source repository prefix, matched on whole components: `old` matches `old` and `old/x`, not `older`. */
  readonly from: string;
  readonly to: string;
}

export interface NameMapping {
  readonly rules: readonly MapRule[];
  /** Where single-level names go (`busybox` → `library/busybox`). */
  readonly defaultProject: string;
  /** Enforce Harbor's project-name rule on the first component. */
  readonly harbor: boolean;
  /**
   * `--tag-untagged`: a manifest no tag points at goes to the destination under a tag made from its digest
   * (`untagged-{digest12}`), not by digest alone: Harbor's garbage collection keeps tagged artifacts.
   */
  readonly untaggedTag?: string;
}

/** The placeholders of an `--tag-untagged` template: the digest's first 12 hex digits, or all 64. */
const UNTAGGED_PLACEHOLDER = /\{digest(12)?\}/g;
const TAG_RE = /^[\w][\w.-]{0,127}$/;

/** The destination tag of an untagged manifest under `template` (`untagged-{digest12}` → `untagged-0123456789ab`). */
export function untaggedTagName(template: string, digest: string): string {
  const hex = digest.slice(digest.indexOf(':') + 1);
  return template.replace(UNTAGGED_PLACEHOLDER, (_, short: string | undefined) => (short ? hex.slice(0, 12) : hex));
}

/** Why a `--tag-untagged` template cannot be used, or undefined. */
export function untaggedTemplateProblem(template: string): string | undefined {
  if (!/\{digest(12)?\}/.test(template)) return `--tag-untagged "${template}" must hold {digest12} or {digest}, so each manifest gets its own tag`;
  const sample = untaggedTagName(template, `sha256:${'0'.repeat(64)}`);
  if (!TAG_RE.test(sample)) return `--tag-untagged "${template}" does not make a valid tag (letters, digits, _ . -, at most 128, not starting with . or -): "${sample}"`;
  return undefined;
}

export type MappedName = { ok: true; repository: string; project: string } | { ok: false; reason: string };

/** `--map from=to` → a rule, or the reason it is not one. */
export function parseMapRule(text: string): MapRule | string {
  const eq = text.indexOf('=');
  if (eq <= 0) return `--map "${text}" is not from=to`;
  const from = text.slice(0, eq).replace(/^\/+|\/+$/g, '');
  const to = text.slice(eq + 1).replace(/^\/+|\/+$/g, '');
  if (!from) return `--map "${text}" has an empty source prefix`;
  if (checkRepositoryName(from)) return `--map "${text}": "${from}" is not a repository name prefix`;
  if (to && checkRepositoryName(to)) return `--map "${text}": "${to}" is not a repository name prefix`;
  return { from, to };
}

/**
 * Source repository → destination repository. The longest matching `--map` prefix is replaced; nested names are
 * kept whole; a single-level name goes to the default project. The result must be a valid repository name and,
 * for Harbor, start with a valid project name.
 */
export function mapRepository(source: string, mapping: NameMapping): MappedName {
  let name = source;
  let best: MapRule | undefined;
  for (const rule of mapping.rules) {
    if ((source === rule.from || source.startsWith(`${rule.from}/`)) && (!best || rule.from.length > best.from.length)) best = rule;
  }
  if (best) {
    const rest = source.slice(best.from.length).replace(/^\//, '');
    name = [best.to, rest].filter(Boolean).join('/');
    if (!name) return { ok: false, reason: `--map ${best.from}=${best.to} maps "${source}" to an empty name` };
  }
  if (!name.includes('/')) name = `${mapping.defaultProject}/${name}`;
  const invalid = checkRepositoryName(name);
  if (invalid) return { ok: false, reason: `destination name "${name}" is invalid: ${invalid}` };
  const project = name.slice(0, name.indexOf('/'));
  if (mapping.harbor && !PROJECT_NAME_RE.test(project)) {
    return {
      ok: false,
      reason: `"${project}" (from "${source}") is not a valid Harbor project name ([a-z0-9] separated by single ".", "_" or "-")`,
    };
  }
  return { ok: true, repository: name, project };
}

/** `mapRepository` with a cache: a repository has many tags, and its name maps the same way for each. */
export function cachedMapper(mapping: NameMapping): (source: string) => MappedName {
  const cache = new Map<string, MappedName>();
  return (source) => {
    let mapped = cache.get(source);
    if (!mapped) {
      mapped = mapRepository(source, mapping);
      cache.set(source, mapped);
    }
    return mapped;
  };
}

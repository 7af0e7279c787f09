import picomatch from 'picomatch';
import type { ImmutableRule, ImmutableSelector } from './schema.js';

/**
 * Which of a project's immutability rules protects `repository:tag`, evaluated as Harbor does
 * (src/pkg/immutable/match/rule/match.go Matcher.Match): rules in order, disabled ones skipped; a rule applies when
 * its first repository selector selects the repository (the name without the project) and its first tag selector
 * selects the tag. Selectors are doublestar patterns (src/lib/selector/selectors/doublestar/selector.go):
 * `repoMatches`/`matches` select what matches, `repoExcludes`/`excludes` what does not, an empty pattern matches
 * everything; a rule whose selector Harbor cannot evaluate (another kind, a bad pattern) protects nothing, as
 * Harbor's tag controller then counts the tag as not immutable (src/controller/tag/controller.go
 * populateImmutableStatus). Returns a description of the rule, or undefined.
 */
export function protectingRule(rules: readonly ImmutableRule[], repository: string, tag: string): string | undefined {
  const name = repository.slice(repository.indexOf('/') + 1);
  for (const rule of rules) {
    if (rule.disabled) continue;
    const repo = rule.scope_selectors?.repository?.[0];
    const tags = rule.tag_selectors?.[0];
    if (!repo || !tags) continue;
    if (selects(repo, name, 'repoMatches', 'repoExcludes') && selects(tags, tag, 'matches', 'excludes')) return describeRule(rule, repo, tags);
  }
  return undefined;
}

function selects(selector: ImmutableSelector, value: string, matches: string, excludes: string): boolean {
  if (selector.kind !== 'doublestar') return false;
  const matched = doublestar(selector.pattern ?? '', value);
  if (matched === undefined) return false;
  if (selector.decoration === matches) return matched;
  if (selector.decoration === excludes) return !matched;
  return false;
}

/**
 * bmatcuk/doublestar v1 `Match` (the version Harbor builds with): `*` and `?` stay within one `/`-separated
 * component, `**` as a whole component spans any number of them, `[…]` and `{a,b}` as in a shell; no hidden files,
 * no extended globs, no leading `!`. Undefined for a pattern it cannot read (Harbor's ErrBadPattern).
 */
function doublestar(pattern: string, value: string): boolean | undefined {
  if (pattern === '') return true;
  let re: RegExp;
  try {
    // doublestar negates a set with `!` as with `^`; picomatch only with `^`.
    re = picomatch.makeRe(pattern.replace(/(?<!\\)\[!/g, '[^'), { dot: true, noextglob: true, nonegate: true, strictBrackets: true });
  } catch {
    return undefined;
  }
  return re.source === '$^' ? undefined : re.test(value);
}

function describeRule(rule: ImmutableRule, repo: ImmutableSelector, tags: ImmutableSelector): string {
  const part = (what: string, s: ImmutableSelector, excludes: string): string => `${what} ${s.decoration === excludes ? 'not matching' : 'matching'} "${s.pattern ?? ''}"`;
  return `immutability rule${rule.id !== undefined ? ` #${rule.id}` : ''} (${part('repositories', repo, 'repoExcludes')}, ${part('tags', tags, 'excludes')})`;
}

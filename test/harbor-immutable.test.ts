import { describe, expect, it } from 'vitest';
import { protectingRule } from '../src/harbor/immutable.js';
import type { ImmutableRule } from '../src/harbor/schema.js';

function rule(repositories: string, tags: string, more: { repoDecoration?: string; tagDecoration?: string; disabled?: boolean; kind?: string; id?: number } = {}): ImmutableRule {
  return {
    id: more.id ?? 1,
    disabled: more.disabled ?? false,
    tag_selectors: [{ kind: more.kind ?? 'doublestar', decoration: more.tagDecoration ?? 'matches', pattern: tags }],
    scope_selectors: { repository: [{ kind: more.kind ?? 'doublestar', decoration: more.repoDecoration ?? 'repoMatches', pattern: repositories }] },
  };
}

describe('protectingRule: immutability rules evaluated as Harbor evaluates them (doublestar v1 on the repository without its project, and on the tag)', () => {
  it.each([
    ['**', '**', 'team/app', 'v1', true],
    ['**', 'v*', 'team/app', 'v1.2', true],
    ['**', 'v*', 'team/app', 'latest', false],
    // `*` stays within one component; the repository is matched without its project.
    ['*', '**', 'team/app', 'x', true],
    ['*', '**', 'team/a/b', 'x', false],
    ['a/**', '**', 'team/a/b/c', 'x', true],
    ['a/**/c', '**', 'team/a/c', 'x', true],
    ['team/*', '**', 'team/app', 'x', false],
    ['{app,web}', '{1.0,2.0}', 'team/web', '2.0', true],
    ['**', '[0-9]*', 'team/app', '7-slim', true],
    ['**', '[!0-9]*', 'team/app', '7-slim', false],
    // An empty pattern selects everything; a dot is an ordinary character.
    ['', '', 'team/app', '.hidden', true],
    ['**', '*', 'team/app', '.hidden', true],
  ])('repositories %j, tags %j: %s:%s → %s', (repos, tags, repository, tag, protectedTag) => {
    expect(protectingRule([rule(repos, tags)], repository, tag) !== undefined).toBe(protectedTag);
  });

  it('takes excluding decorations, skips disabled rules and selectors of another kind, and names the first rule that applies', () => {
    expect(protectingRule([rule('app', '**', { repoDecoration: 'repoExcludes' })], 'team/app', 'v1')).toBeUndefined();
    expect(protectingRule([rule('app', 'v*', { tagDecoration: 'excludes' })], 'team/app', 'latest')).toBeDefined();
    expect(protectingRule([rule('**', '**', { disabled: true })], 'team/app', 'v1')).toBeUndefined();
    expect(protectingRule([rule('**', '**', { kind: 'label' })], 'team/app', 'v1')).toBeUndefined();
    // A pattern Harbor cannot read (doublestar's ErrBadPattern) protects nothing.
    expect(protectingRule([rule('**', '[v', { id: 1 })], 'team/app', '[v')).toBeUndefined();
    expect(protectingRule([rule('other', '**', { id: 1 }), rule('**', 'v*', { id: 2 })], 'team/app', 'v1')).toBe('immutability rule #2 (repositories matching "**", tags matching "v*")');
  });
});

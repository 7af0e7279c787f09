/**
 * Repository and tag globs (src/util/glob.ts): the syntax users know from shells, with `*` inside one name
 * component and `**` across them; a glob that cannot be read is refused, never left to match nothing.
 */
import { describe, expect, it } from 'vitest';
import { globProblem, includePrefixes, makeRepositoryFilter } from '../src/util/glob.js';
import { parseTagPattern } from '../src/inventory/select.js';

describe('repository globs', () => {
  it.each([
    ['library/*', 'library/nginx', true],
    ['library/*', 'library/a/b', false],
    ['team/**', 'team', true],
    ['team/**', 'team/a/b', true],
    ['team/**', 'teamx/a', false],
    ['**/nginx', 'nginx', true],
    ['**/nginx', 'a/b/nginx', true],
    ['team/legacy-*', 'team/legacy-api', true],
    ['proj?/*', 'proj1/app', true],
    ['proj[01]/*', 'proj0/app', true],
    ['proj[01]/*', 'proj1/app', true],
    ['proj[01]/*', 'proj2/app', false],
    ['proj[0-9]/**', 'proj7/a/b', true],
    ['{team,ops}/*', 'ops/app', true],
    ['{team,ops}/*', 'dev/app', false],
    ['a.b', 'axb', false],
  ])('%s on %s: %s', (glob, name, expected) => {
    expect(makeRepositoryFilter({ include: [glob], exclude: [] })(name)).toBe(expected);
  });

  it('exclude wins over include', () => {
    const selected = makeRepositoryFilter({ include: ['proj[01]/**'], exclude: ['proj1/*'] });
    expect(['proj0/a', 'proj1/a', 'proj2/a'].filter(selected)).toEqual(['proj0/a']);
  });

  it.each(['a{b', '[z-a]'])('refuses %s, which could match nothing', (glob) => {
    expect(globProblem(glob)).toMatch(/is not a valid glob/);
    expect(parseTagPattern(glob)).toMatch(/is not a valid glob/);
  });

  it('a tag glob has the same syntax', () => {
    const pattern = parseTagPattern('v1.[0-2]');
    if (typeof pattern === 'string') throw new Error(pattern);
    expect(['v1.0', 'v1.2', 'v1.3', 'v1x0'].filter(pattern.test)).toEqual(['v1.0', 'v1.2']);
  });

  it.each([
    [['team/**'], ['team']],
    [['library/nginx', 'proj[01]/*'], ['library/nginx', 'proj']],
    [['{team,ops}/*'], undefined],
    [['**/nginx'], undefined],
    [[], undefined],
  ])('include %j: a listing may start at %j', (include, prefixes) => {
    expect(includePrefixes({ include, exclude: [] })).toEqual(prefixes);
  });

  it('every name an include passes starts with one of its prefixes', () => {
    const include = ['team/**', 'library/ngin?', 'a.b/c*'];
    const prefixes = includePrefixes({ include, exclude: [] })!;
    const selected = makeRepositoryFilter({ include, exclude: [] });
    for (const name of ['team', 'team/a', 'team/a/b', 'library/nginx', 'a.b/cd', 'teams/x', 'library/ngin', 'a.b/x']) {
      if (selected(name)) expect(prefixes.some((p) => name.startsWith(p)), name).toBe(true);
    }
  });
});

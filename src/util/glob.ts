import picomatch from 'picomatch';

/**
 * Repository and tag globs for --include/--exclude/--tag-include, with the syntax users know from shells and
 * .gitignore (picomatch, the matcher fast-glob itself uses): `*` matches within one name component, `**` across
 * components, `?` one character, `[01]` and `[a-z]` one of a set, `{a,b}` either. `library/*` matches
 * `library/nginx` but not `library/a/b`; `team/**` matches everything under `team/` and `team` itself.
 */
export function globToRegExp(glob: string): RegExp {
  // dot: a component starting with `.` is an ordinary name here, not a hidden file.
  return picomatch.makeRe(glob, { dot: true });
}

/**
 * Why a glob cannot be used, or undefined. picomatch turns a pattern it cannot compile (`a{b`, `[z-a]`) into a
 * regular expression that matches nothing (`/$^/`, see its lib/picomatch.js `makeRe`); such a pattern is refused
 * rather than left to select nothing in silence.
 */
export function globProblem(glob: string): string | undefined {
  return globToRegExp(glob).source === '$^' ? 'is not a valid glob (unbalanced {…} or a reversed [a-z] range?)' : undefined;
}

export interface RepositoryFilter {
  readonly include: readonly string[];
  readonly exclude: readonly string[];
}

/** A name passes when it matches some include (or there are none) and no exclude. */
export function makeRepositoryFilter(filter: RepositoryFilter): (name: string) => boolean {
  const include = filter.include.map(globToRegExp);
  const exclude = filter.exclude.map(globToRegExp);
  return (name) => (include.length === 0 || include.some((re) => re.test(name))) && !exclude.some((re) => re.test(name));
}

/**
 * The literal start of each include glob (`team` for `team/**`, which matches `team` itself too; `library/nginx` for
 * itself): every name the filter passes starts with one of them, so a storage may list only there. Undefined when
 * some include could match anything, or there are none.
 */
export function includePrefixes(filter: RepositoryFilter): string[] | undefined {
  if (filter.include.length === 0) return undefined;
  const prefixes: string[] = [];
  for (const glob of filter.include) {
    const special = glob.search(/[*?[\]{}()!+@\\]/);
    const prefix = (special === -1 ? glob : glob.slice(0, special)).replace(/\/+$/, '');
    if (!prefix) return undefined;
    prefixes.push(prefix);
  }
  return prefixes;
}

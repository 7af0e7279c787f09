/**
 * Repository globs for --include/--exclude: `*` matches within one name component, `**` across components,
 * `?` one character. `library/*` matches `library/nginx` but not `library/a/b`; `team/**` matches everything
 * under `team/` and `team` itself.
 */
export function globToRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++;
        if (glob[i + 1] === '/') {
          i++;
          out += '(?:.*/)?';
        } else {
          out += '.*';
        }
      } else {
        out += '[^/]*';
      }
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '/' && glob.slice(i + 1) === '**') {
      out += '(?:/.*)?';
      i += 2;
    } else {
      out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${out}$`);
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

/** Digest and name grammar from distribution's `reference` package (docs/registry-behaviour.md, Storage layout). */

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const NAME_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const MAX_NAME_LENGTH = 255;

export function isDigest(value: string): boolean {
  return DIGEST_RE.test(value);
}

/** `sha256:abc…` → `['sha256', 'abc…']`. Call only on a value that passed `isDigest`. */
export function splitDigest(digest: string): [algorithm: string, hex: string] {
  const at = digest.indexOf(':');
  return [digest.slice(0, at), digest.slice(at + 1)];
}

/** Why a repository name breaks distribution's grammar, or undefined when it is valid. */
export function checkRepositoryName(name: string): string | undefined {
  if (name.length === 0) return 'empty repository name';
  if (name.length > MAX_NAME_LENGTH) return `repository name is ${name.length} characters, the limit is ${MAX_NAME_LENGTH}`;
  for (const component of name.split('/')) {
    if (!NAME_COMPONENT_RE.test(component)) {
      return `repository name component "${component}" is not [a-z0-9] separated by ".", "_", "__" or "-"`;
    }
  }
  return undefined;
}

/** Why a tag breaks distribution's grammar, or undefined when it is valid. */
export function checkTag(tag: string): string | undefined {
  if (!TAG_RE.test(tag)) return `tag "${tag}" does not match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`;
  return undefined;
}

export function shortDigest(digest: string | undefined): string {
  if (!digest) return '-';
  const [, hex] = splitDigest(digest);
  return hex.slice(0, 12);
}

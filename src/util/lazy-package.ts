import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * A CommonJS package loaded on its first use instead of at start-up: the YAML parser, semver and the progress bars
 * serve a flag or a terminal most runs do not have, and loading each costs tens of milliseconds of CPU.
 */
export function lazyPackage<T>(name: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(name) as T);
}

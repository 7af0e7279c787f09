/**
 * A flat copy of a string that is kept for the whole run, one per tag. V8 keeps `${repository}:${tag}` as a tree of
 * its pieces (a cons string: about five 32-byte nodes over a name sliced from a path) until something reads it
 * whole, and reading it (Number(), a Map lookup) does not always flatten it; at 200,000 tags the trees of the names
 * kept (taken names, tags seen, reports) took 50 MB. A JSON round trip always makes one flat string, for any string
 * (lone surrogates included), at a third of a microsecond.
 */
export function flattenString(s: string): string {
  return JSON.parse(JSON.stringify(s)) as string;
}

import { isDigest } from './digest.js';

/** A link file holds a digest (71 bytes for sha256): anything far larger is not a link, and is not read whole. */
export const MAX_LINK_BYTES = 1024;

/**
 * A link file holds exactly `sha256:<hex>` with no newline; older writers and hand edits add whitespace, which we
 * accept. Anything else is invalid.
 */
export function parseLink(bytes: Buffer): { ok: true; digest: string } | { ok: false; detail: string } {
  const text = bytes.toString('latin1').trim();
  if (isDigest(text)) return { ok: true, digest: text };
  const shown = JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
  return { ok: false, detail: `holds ${shown}, not sha256:<64 hex>` };
}

/** Every blob file of a registry storage, largest first: what a reference uploader sends. */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

export interface BlobFile {
  readonly digest: string;
  readonly file: string;
  readonly size: number;
}

export function listBlobFiles(root: string): BlobFile[] {
  const base = path.join(root, 'docker/registry/v2/blobs/sha256');
  const out: BlobFile[] = [];
  for (const fan of readdirSync(base)) {
    for (const hex of readdirSync(path.join(base, fan))) {
      const file = path.join(base, fan, hex, 'data');
      out.push({ digest: `sha256:${hex}`, file, size: statSync(file).size });
    }
  }
  return out.sort((a, b) => b.size - a.size);
}

import { execa } from 'execa';
import { createHash } from 'node:crypto';

/** Polls until `condition` holds; fails the test after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The digest of the manifest a registry serves for `ref`, read with skopeo; undefined when it serves none. */
export async function servedDigest(host: string, ref: string): Promise<string | undefined> {
  const result = await execa('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host}/${ref}`], { reject: false, encoding: 'buffer', stripFinalNewline: false });
  if (result.exitCode !== 0) return undefined;
  return `sha256:${createHash('sha256').update(Buffer.from(result.stdout)).digest('hex')}`;
}

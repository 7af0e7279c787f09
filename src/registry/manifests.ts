import { createHash } from 'node:crypto';
import { MANIFEST_MEDIA_TYPES } from '../image/media-types.js';
import { headerValue } from './auth.js';
import { isSchema1Refusal } from './errors.js';
import { pullScope, pushScope, type RegistryHttp } from './http.js';

/** Manifests (docs/registry-behaviour.md, Manifests): read, probe, put as stored, delete. */

const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');

export interface ServedManifest {
  readonly bytes: Buffer;
  readonly mediaType: string | undefined;
  readonly digestHeader: string | undefined;
}

export interface ManifestHead {
  readonly digest: string | undefined;
  readonly mediaType: string | undefined;
}

function manifestUrl(http: RegistryHttp, repository: string, reference: string): URL {
  return http.url(`/v2/${repository}/manifests/${reference}`);
}

/** GET a manifest's bytes, or undefined when absent: verification hashes what the destination really serves. */
export async function getManifest(http: RegistryHttp, repository: string, reference: string): Promise<ServedManifest | undefined> {
  return http.retrying(async () => {
    const res = await http.request({ method: 'GET', url: manifestUrl(http, repository, reference), scopes: [pullScope(repository)], headers: { accept: MANIFEST_ACCEPT }, ok: [200, 404], keepBody: true });
    if (res.status === 404) return undefined;
    return {
      bytes: res.body,
      mediaType: headerValue(res.headers['content-type'])?.split(';')[0],
      digestHeader: headerValue(res.headers['docker-content-digest']),
    };
  });
}

/**
 * A manifest's digest and media type, or undefined when absent. A GET, not a HEAD, though the body is thrown
 * away: undici closes the connection after every HEAD (for servers that send a body anyway), and a new TCP
 * connection per tag costs three times the request; a manifest body is a few hundred bytes.
 */
export async function probeManifest(http: RegistryHttp, repository: string, reference: string): Promise<ManifestHead | undefined> {
  const got = await getManifest(http, repository, reference);
  return got && { digest: got.digestHeader, mediaType: got.mediaType };
}

/**
 * PUT the exact stored bytes with their media type; returns the digest the registry computed. A registry without
 * schema1 support refuses a schema1 manifest with a 500 that never changes (registry/errors.ts isSchema1Refusal):
 * that one is permanent and says so.
 */
export async function putManifest(http: RegistryHttp, repository: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
  return http.retrying(async () => {
    const res = await http.request({
      method: 'PUT',
      url: manifestUrl(http, repository, reference),
      scopes: [pushScope(repository)],
      headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
      body: () => bytes,
      bodySize: bytes.length,
      ok: [201],
      explain: (status, text) => (isSchema1Refusal(status, mediaType, text) ? { failure: 'permanent', note: 'manifest schema v1 unsupported (a registry without schema1 support)' } : undefined),
    });
    const digest = headerValue(res.headers['docker-content-digest']);
    return digest ?? `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  });
}

/** Deletes a manifest by digest (every tag pointing at it goes with it). */
export async function deleteManifest(http: RegistryHttp, repository: string, digest: string): Promise<void> {
  await http.retrying(() => http.request({ method: 'DELETE', url: manifestUrl(http, repository, digest), scopes: [`repository:${repository}:delete,pull,push`], ok: [202, 200] }));
}

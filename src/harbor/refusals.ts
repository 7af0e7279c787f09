import { RegistryError } from '../registry/errors.js';

/**
 * A push Harbor refused by one of its policies, named by Harbor's error code, never by its words:
 * - 403 `DENIED` to a blob upload, a mount or a manifest PUT is the quota middleware (src/server/middleware/quota/
 *   quota.go sends a quota overflow as a DeniedError). Harbor's other 403 `DENIED` on a push, a proxy-cache project
 *   (src/server/middleware/repoproxy/proxy.go), is refused before any upload, and a missing push right is a 401.
 * - 412 `PRECONDITION` to a manifest PUT or a tag creation is an immutability rule protecting the tag
 *   (src/server/middleware/immutable/pushmf.go, src/controller/tag/controller.go Ensure).
 * Undefined for anything else. Never retried: the registry client sorts 403 and 412 as not transient.
 */
export function harborRefusal(err: unknown): PolicyRefusal | undefined {
  if (!(err instanceof RegistryError)) return undefined;
  if (err.status === 403 && err.registryCode === 'DENIED') return { reason: `quota-exceeded: ${err.message}` };
  if (err.status === 412 && err.registryCode === 'PRECONDITION') return { reason: `immutable: ${err.message}`, immutable: true };
  return undefined;
}

/** A push refused by a policy: why, and whether it is an immutable tag (drift Harbor forbids fixing, not a failure). */
export interface PolicyRefusal {
  readonly reason: string;
  readonly immutable?: true;
}

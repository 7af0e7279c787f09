import * as z from 'zod';

/**
 * `GET /api/v2.0/systeminfo`: `auth_mode` is there for anyone; the version, the creation restriction and read-only
 * only for an authenticated caller (src/controller/systeminfo/controller.go). Harbor is recognised by `auth_mode`.
 */
export const SystemInfo = z.looseObject({
  auth_mode: z.string(),
  harbor_version: z.string().optional(),
  project_creation_restriction: z.string().optional(),
  read_only: z.boolean().optional(),
});
export type SystemInfo = z.infer<typeof SystemInfo>;

export const Project = z.looseObject({ project_id: z.number().optional(), name: z.string() });
export type Project = z.infer<typeof Project>;

/** `GET /projects/{name}` with `X-Is-Resource-Name: true`: the caller's role and the project's policies. */
export const ProjectDetail = z.looseObject({
  project_id: z.number().optional(),
  name: z.string(),
  current_user_role_id: z.number().nullable().optional(),
  /** Set (above 0) for a proxy-cache project (src/pkg/project/models/project.go IsProxy). */
  registry_id: z.number().nullable().optional(),
  metadata: z.record(z.string(), z.string()).nullable().optional(),
});
export type ProjectDetail = z.infer<typeof ProjectDetail>;

/** Resource amounts by name (`storage` in bytes; -1 = unlimited), as Harbor's `ResourceList`. */
const ResourceList = z.record(z.string(), z.number());

/** `GET /quotas?reference=project&reference_id=ID` (one item) and a project summary's `quota`. */
export const Quota = z.looseObject({ hard: ResourceList.nullable().optional(), used: ResourceList.nullable().optional() });
export type Quota = z.infer<typeof Quota>;

export const ProjectSummary = z.looseObject({ quota: Quota.nullable().optional() });

export const Repository = z.looseObject({ name: z.string(), artifact_count: z.number().optional() });
export type Repository = z.infer<typeof Repository>;

export const Artifact = z.looseObject({
  digest: z.string(),
  manifest_media_type: z.string().optional(),
  media_type: z.string().optional(),
  size: z.number().optional(),
  /** When the artifact was first pushed (ISO 8601; src/controller/artifact/controller.go ensureArtifact). */
  push_time: z.string().nullable().optional(),
  /** `immutable` only with `with_immutable_status=true`; `push_time`: when the tag was created or last moved. */
  tags: z.array(z.looseObject({ name: z.string(), immutable: z.boolean().optional(), push_time: z.string().nullable().optional() })).nullable().optional(),
});
export type Artifact = z.infer<typeof Artifact>;

/** One selector of an immutability rule (api/v2.0/swagger.yaml ImmutableSelector). */
export const ImmutableSelector = z.looseObject({ kind: z.string().optional(), decoration: z.string().optional(), pattern: z.string().optional() });
export type ImmutableSelector = z.infer<typeof ImmutableSelector>;

/** `GET /projects/{p}/immutabletagrules` items (api/v2.0/swagger.yaml ImmutableRule). */
export const ImmutableRule = z.looseObject({
  id: z.number().optional(),
  disabled: z.boolean().optional(),
  tag_selectors: z.array(ImmutableSelector).nullable().optional(),
  scope_selectors: z.record(z.string(), z.array(ImmutableSelector)).nullable().optional(),
});
export type ImmutableRule = z.infer<typeof ImmutableRule>;

/** One item of `GET /users/current/permissions` (api/v2.0/swagger.yaml Permission). */
export const Permission = z.looseObject({ resource: z.string(), action: z.string() });

/** Harbor's project name rule, where the name mapping keeps it (plan/ decides names; Harbor enforces them). */
export { PROJECT_NAME_RE } from '../plan/map-names.js';

/** Project role ids (src/common/const.go RoleProjectAdmin…RoleLimitedGuest). */
export const ROLE_NAMES: Readonly<Record<number, string>> = { 1: 'project admin', 2: 'developer', 3: 'guest', 4: 'maintainer', 5: 'limited guest' };

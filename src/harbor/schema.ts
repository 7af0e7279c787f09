import { z } from 'zod';

/** `GET /api/v2.0/systeminfo`: only the version tells Harbor from a plain registry. */
export const SystemInfo = z.looseObject({ harbor_version: z.string() });
export type SystemInfo = z.infer<typeof SystemInfo>;

export const Project = z.looseObject({ project_id: z.number().optional(), name: z.string() });
export type Project = z.infer<typeof Project>;

export const Repository = z.looseObject({ name: z.string(), artifact_count: z.number().optional() });
export type Repository = z.infer<typeof Repository>;

export const Artifact = z.looseObject({
  digest: z.string(),
  manifest_media_type: z.string().optional(),
  media_type: z.string().optional(),
  size: z.number().optional(),
  tags: z.array(z.looseObject({ name: z.string() })).nullable().optional(),
});
export type Artifact = z.infer<typeof Artifact>;

/** Harbor's project name rule (PROTOCOL.md §5): stricter than distribution's (no `__`, no `--`). */
export const PROJECT_NAME_RE = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;

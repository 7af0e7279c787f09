import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

/** A region as AWS and S3-compatible stores name them (`eu-west-1`, `us-gov-west-1`, RGW zonegroups). */
const REGION_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** What `--s3-region` may be, or why not. */
export function s3RegionProblem(value: string): string | undefined {
  return REGION_RE.test(value) ? undefined : 'is not a region name (like eu-west-1)';
}

/** Where the region came from, for messages ("region eu-west-1 from AWS_REGION"). */
export interface ResolvedRegion {
  readonly region: string;
  readonly from: string;
}

/**
 * The bucket's region as AWS tools choose it: `--s3-region`, then AWS_REGION, AWS_DEFAULT_REGION, then the profile's
 * `region` in the shared config file, else us-east-1 (an S3-compatible store behind `--s3-endpoint` usually accepts
 * any; AWS names the right one in its refusal, see errors.ts `wrong-region`).
 */
export function resolveS3Region(flag: string | undefined, env: NodeJS.ProcessEnv): ResolvedRegion {
  if (flag) return { region: flag, from: '--s3-region' };
  if (env.AWS_REGION) return { region: env.AWS_REGION, from: 'AWS_REGION' };
  if (env.AWS_DEFAULT_REGION) return { region: env.AWS_DEFAULT_REGION, from: 'AWS_DEFAULT_REGION' };
  const profile = env.AWS_PROFILE || 'default';
  const file = env.AWS_CONFIG_FILE || path.join(env.HOME || homedir(), '.aws', 'config');
  const region = profileSetting(readOptional(file), profile, 'region');
  if (region) return { region, from: `profile "${profile}" in ${file}` };
  return { region: 'us-east-1', from: 'the default' };
}

function readOptional(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * One top-level setting of a profile in the shared config file's INI dialect: `[default]` or `[profile NAME]`,
 * `key = value`, `#` and `;` comments; indented lines belong to a nested setting (`s3 =`) and are skipped.
 */
export function profileSetting(text: string, profile: string, key: string): string | undefined {
  const wanted = profile === 'default' ? ['default', 'profile default'] : [`profile ${profile}`];
  let inProfile = false;
  let value: string | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[\s*([^\]]*?)\s*\]/.exec(line);
    if (section) {
      inProfile = wanted.includes(section[1]!.replace(/\s+/g, ' '));
      continue;
    }
    if (!inProfile || /^\s/.test(raw)) continue;
    const eq = line.indexOf('=');
    if (eq > 0 && line.slice(0, eq).trim().toLowerCase() === key) value = line.slice(eq + 1).trim() || undefined;
  }
  return value;
}

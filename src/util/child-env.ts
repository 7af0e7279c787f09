/**
 * The environment for programs regmigrate starts (skopeo, credential helpers): ours, less regmigrate's own
 * credentials and anything named like a secret. A child that logs its environment, or a core dump of it, then
 * holds no password it was not meant to have; credentials reach skopeo through its authfile only.
 */
export function childEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (/^REGMIGRATE_/i.test(key) || /PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL/i.test(key)) continue;
    out[key] = value;
  }
  return out;
}

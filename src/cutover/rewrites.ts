import { csvLine } from '../util/format.js';
import type { ReferenceMap } from './reference-map.js';

/** One `[[registry]]` table of containers-registries.conf(5): names starting with `prefix` are pulled from `location`. */
export interface RewriteRule {
  /** Old repository path (or path prefix) without the host. */
  readonly from: string;
  readonly to: string;
  /** How many migrated repositories it covers (a prefix rule covers every one below it). */
  readonly repositories: number;
}

/**
 * The fewest rules that send every migrated repository to its new name. A path prefix (whole components) becomes one
 * rule when every migrated repository below it moved by the same rename (`--map team=platform`: `team` → `platform`)
 * and no repository below it failed entirely; otherwise a rule per repository (a single-level name moved into
 * `library/` cannot be said with a prefix: `busybox` → `library/busybox`). Repositories whose every tag failed
 * get no rule: a client asking for them should not be sent to a registry that does not hold them.
 */
export function rewriteRules(map: ReferenceMap): RewriteRule[] {
  const migrated = new Map<string, string>();
  const unmigrated = new Set<string>();
  for (const t of map.tags.values()) {
    const to = map.repositories.get(t.repository);
    if (t.status === 'migrated' && to) migrated.set(t.repository, to);
  }
  for (const t of map.tags.values()) if (!migrated.has(t.repository)) unmigrated.add(t.repository);
  const under = (prefix: string, name: string): boolean => name.startsWith(`${prefix}/`);
  const rules: RewriteRule[] = [];
  const covered = new Set<string>();
  for (const [from, to] of [...migrated].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (covered.has(from)) continue;
    const fromParts = from.split('/');
    const toParts = to.split('/');
    let rule: RewriteRule = { from, to, repositories: 1 };
    // The shortest prefix that holds: the rename of its first k components, the rest of the name unchanged.
    for (let k = 1; k < fromParts.length; k++) {
      const rest = fromParts.slice(k).join('/');
      if (!to.endsWith(`/${rest}`)) continue;
      const prefixFrom = fromParts.slice(0, k).join('/');
      const prefixTo = toParts.slice(0, toParts.length - (fromParts.length - k)).join('/');
      const members = [...migrated].filter(([name]) => under(prefixFrom, name));
      const holds = members.every(([name, target]) => target === `${prefixTo}/${name.slice(prefixFrom.length + 1)}`) && ![...unmigrated].some((name) => under(prefixFrom, name));
      if (holds) {
        rule = { from: prefixFrom, to: prefixTo, repositories: members.length };
        for (const [name] of members) covered.add(name);
        break;
      }
    }
    covered.add(from);
    rules.push(rule);
  }
  return rules;
}

/** TOML basic strings take JSON's escapes for the characters a registry name or host can hold. */
function tomlString(value: string): string {
  return JSON.stringify(value);
}

export function renderRegistriesConf(map: ReferenceMap, oldHost: string, newHost: string, options: { insecure: boolean; source: string }): string {
  const rules = rewriteRules(map);
  let out =
    `# containers-registries.conf(5) rules written by regmigrate from ${options.source}:\n` +
    `# images asked for under ${oldHost} are pulled from their new names on ${newHost}.\n` +
    `# Drop into /etc/containers/registries.conf.d/ (CRI-O, podman, buildah, skopeo); the longest matching prefix wins.\n`;
  for (const rule of rules) {
    out += `\n[[registry]]\n`;
    if (rule.repositories > 1) out += `# ${rule.repositories} repositories below ${rule.from}/\n`;
    out += `prefix = ${tomlString(`${oldHost}/${rule.from}`)}\nlocation = ${tomlString(`${newHost}/${rule.to}`)}\n`;
    if (options.insecure) out += `insecure = true\n`;
  }
  return out;
}

/** One row of the reference map: what clients wrote, what they should write now. */
export interface ReferenceRow {
  readonly old: string;
  readonly new: string | null;
  /** The digest the new reference resolves to (the destination's), and the source's. */
  readonly digest: string | null;
  readonly sourceDigest: string | null;
  readonly status: 'migrated' | 'failed';
  readonly reason: string | null;
}

export function referenceRows(map: ReferenceMap, oldHost: string, newHost: string): ReferenceRow[] {
  return [...map.tags.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([ref, t]) => ({
      old: `${oldHost}/${ref}`,
      new: t.destination ? `${newHost}/${t.destination}` : null,
      digest: t.destinationDigest ?? null,
      sourceDigest: t.digest ?? null,
      status: t.status,
      reason: t.reason ?? null,
    }));
}

export const REWRITES_JSON_VERSION = 1;

export function renderReferenceJson(rows: readonly ReferenceRow[], oldHost: string, newHost: string): string {
  return JSON.stringify({ schemaVersion: REWRITES_JSON_VERSION, kind: 'regmigrate.rewrites', oldHost, newHost, references: rows }, null, 2) + '\n';
}

export function renderReferenceCsv(rows: readonly ReferenceRow[]): string {
  let out = csvLine(['old_reference', 'new_reference', 'digest', 'source_digest', 'status', 'reason']);
  for (const r of rows) out += csvLine([r.old, r.new ?? undefined, r.digest ?? undefined, r.sourceDigest ?? undefined, r.status, r.reason ?? undefined]);
  return out;
}

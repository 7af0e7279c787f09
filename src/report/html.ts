import type { InventorySummary, SourceInventory, TagEntry } from '../inventory/types.js';
import { describeReadFault } from '../inventory/render.js';
import { tagRef } from '../inventory/types.js';
import { count, formatBytes } from '../util/format.js';
import { friendlyMediaType } from '../image/media-types.js';

/**
 * Reports people look at: one self-contained HTML file each (inline CSS and SVG, no script, no font, no request of
 * any kind), readable offline on a laptop and printable. Charts are plain SVG rectangles with labels.
 */

/** Appends to the list under `key` (one list per key, never copied). */
function pushTo<V>(map: Map<string, V[]>, key: string, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const STYLE = `
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; }
  h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2.2rem; border-bottom: 1px solid #d8dde6; padding-bottom: .3rem; }
  .sub { color: #5b6475; margin-top: 0; }
  .cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1.2rem 0; }
  .card { border: 1px solid #d8dde6; border-radius: 8px; padding: .7rem 1rem; min-width: 9rem; }
  .card b { display: block; font-size: 1.35rem; } .card span { color: #5b6475; font-size: .85rem; }
  .card.bad b { color: #b42318; } .card.good b { color: #1a7f37; }
  table { border-collapse: collapse; width: 100%; margin: .6rem 0; font-size: .9rem; }
  th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #eceff4; vertical-align: top; }
  td { overflow-wrap: anywhere; } /* a reason can be a registry's whole error body, a name one long word */
  th { background: #f5f7fa; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  code { font-size: .85em; } .muted { color: #5b6475; }
  svg text { font: 12px system-ui, sans-serif; fill: #1d2330; }
  .legend span { display: inline-block; margin-right: 1rem; } .legend i { display: inline-block; width: .8rem; height: .8rem; margin-right: .3rem; vertical-align: -1px; }
  @media print { body { margin: 0; } h2 { break-after: avoid; } table, svg { break-inside: avoid; } }
`;

function page(title: string, subtitle: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title><style>${STYLE}</style></head>
<body><h1>${esc(title)}</h1><p class="sub">${esc(subtitle)}</p>
${body}
</body></html>
`;
}

function card(value: string, label: string, tone = ''): string {
  return `<div class="card ${tone}"><b>${esc(value)}</b><span>${esc(label)}</span></div>`;
}

interface BarRow {
  readonly label: string;
  /** Stacked parts, drawn left to right. */
  readonly parts: readonly number[];
  readonly note: string;
}

/** A horizontal (stacked) bar chart as SVG: one `rect.bar` per non-empty part. */
function barChart(id: string, rows: readonly BarRow[], colors: readonly string[]): string {
  const labelWidth = 190;
  const barWidth = 600;
  const rowHeight = 24;
  const max = Math.max(1, ...rows.map((r) => r.parts.reduce((a, b) => a + b, 0)));
  let y = 0;
  let out = '';
  for (const row of rows) {
    let x = labelWidth;
    out += `<text x="${labelWidth - 8}" y="${y + 16}" text-anchor="end">${esc(row.label.length > 28 ? `${row.label.slice(0, 27)}…` : row.label)}</text>`;
    row.parts.forEach((value, i) => {
      if (value <= 0) return;
      const w = Math.max(1, (value / max) * barWidth);
      out += `<rect class="bar" x="${x.toFixed(1)}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowHeight - 8}" fill="${colors[i % colors.length]}"><title>${esc(row.label)}: ${esc(row.note)}</title></rect>`;
      x += w;
    });
    out += `<text x="${(x + 6).toFixed(1)}" y="${y + 16}">${esc(row.note)}</text>`;
    y += rowHeight;
  }
  return `<svg id="${id}" role="img" width="100%" viewBox="0 0 ${labelWidth + barWidth + 260} ${Math.max(rowHeight, y)}">${out}</svg>`;
}

function legend(items: ReadonlyArray<[string, string]>): string {
  return `<p class="legend">${items.map(([color, text]) => `<span><i style="background:${color}"></i>${esc(text)}</span>`).join('')}</p>`;
}

const AGE_BUCKETS: ReadonlyArray<[string, number]> = [
  ['under a week', 7],
  ['1–4 weeks', 30],
  ['1–3 months', 91],
  ['3–6 months', 182],
  ['6–12 months', 365],
  ['1–2 years', 730],
  ['over 2 years', Number.POSITIVE_INFINITY],
];

/** `scan --output html`: what is in the old registry, for the people who approve the migration and size Harbor. */
export function renderInventoryHtml(inventory: SourceInventory, summary: InventorySummary, projectOf: (repository: string) => string, now = Date.now()): string {
  const tags = inventory.tags;
  // Space by project: blobs used by one project only (unique) and by several (shared, counted in each).
  const projectsOfBlob = new Map<string, Set<string>>();
  const blobSize = new Map<string, number>();
  const tagsByProject = new Map<string, TagEntry[]>();
  for (const t of tags) {
    const p = projectOf(t.repository);
    pushTo(tagsByProject, p, t);
    for (const b of t.blobs) {
      blobSize.set(b.digest, b.size);
      let set = projectsOfBlob.get(b.digest);
      if (!set) projectsOfBlob.set(b.digest, (set = new Set()));
      set.add(p);
    }
  }
  const space = [...tagsByProject.keys()].map((project) => {
    let unique = 0;
    let shared = 0;
    const seen = new Set<string>();
    for (const t of tagsByProject.get(project)!) {
      for (const b of t.blobs) {
        if (seen.has(b.digest)) continue;
        seen.add(b.digest);
        if (projectsOfBlob.get(b.digest)!.size > 1) shared += b.size;
        else unique += b.size;
      }
    }
    return { project, unique, shared, tags: tagsByProject.get(project)!.length };
  });
  space.sort((a, b) => b.unique + b.shared - (a.unique + a.shared));
  const sharedBytes = [...blobSize].filter(([d]) => projectsOfBlob.get(d)!.size > 1).reduce((n, [, s]) => n + s, 0);

  // Tags by age, from each tag's push time.
  const ages = AGE_BUCKETS.map(([label]) => ({ label, count: 0 }));
  let unknownAge = 0;
  for (const t of tags) {
    if (!t.pushedAt) {
      unknownAge++;
      continue;
    }
    const days = (now - Date.parse(t.pushedAt)) / 86_400_000;
    ages[AGE_BUCKETS.findIndex(([, limit]) => days < limit)]!.count++;
  }
  if (unknownAge) ages.push({ label: 'unknown (tar source)', count: unknownAge });

  const faulty = tags.filter((t) => t.faults.length > 0);
  const byKind = new Map<string, string[]>();
  for (const t of faulty) for (const f of t.faults) pushTo(byKind, f.kind, `${tagRef(t)}: ${f.message}`);
  for (const f of inventory.readFaults) pushTo(byKind, 'unreadable', describeReadFault(f));
  const largest = [...tags].filter((t) => t.digest).sort((a, b) => b.size - a.size).slice(0, 20);

  const body = [
    `<div class="cards">${[
      card(String(summary.repositories), 'repositories'),
      card(String(summary.tags), 'tags'),
      card(formatBytes(summary.totalBytes), 'unique blob bytes'),
      card(formatBytes(sharedBytes), 'shared by several projects'),
      card(String(summary.uniqueManifests), 'unique manifests'),
      card(String(summary.untaggedManifests), 'untagged manifests'),
      card(String(summary.faultyTags + inventory.readFaults.length), 'faulty tags and unreadable directories', summary.faultyTags + inventory.readFaults.length > 0 ? 'bad' : 'good'),
    ].join('')}</div>`,
    `<h2>Space by project</h2>${legend([['#3b6fd8', 'only this project uses it'], ['#9db7ee', 'shared with other projects (counted in each)']])}`,
    barChart('space-by-project', space.map((s) => ({ label: s.project, parts: [s.unique, s.shared], note: `${formatBytes(s.unique)} + ${formatBytes(s.shared)} shared · ${count(s.tags, 'tag')}` })), ['#3b6fd8', '#9db7ee']),
    '<h2>Tags by age</h2><p class="muted">From each tag\'s last push (the mtime of its <code>current/link</code>).</p>',
    barChart('tags-by-age', ages.map((a) => ({ label: a.label, parts: [a.count], note: count(a.count, 'tag') })), ['#6a8f3b']),
    `<h2>Faults</h2>${
      byKind.size === 0
        ? '<p>None: every tag can be migrated.</p>'
        : barChart('faults-by-kind', [...byKind].map(([kind, list]) => ({ label: kind, parts: [list.length], note: `${list.length}` })), ['#c4452f']) +
          [...byKind]
            .map(([kind, list]) => `<h3>${esc(kind)} (${list.length})</h3><table><tbody>${list.map((l) => `<tr><td><code>${esc(l)}</code></td></tr>`).join('')}</tbody></table>`)
            .join('')
    }`,
    `<h2>Largest images</h2><table id="largest"><thead><tr><th>image</th><th>type</th><th>platforms</th><th class="num">size</th><th>pushed</th></tr></thead><tbody>${largest
      .map((t) => `<tr><td><code>${esc(tagRef(t))}</code></td>${t.mediaType ? `<td title="${esc(t.mediaType)}">${esc(friendlyMediaType(t.mediaType))}</td>` : '<td>–</td>'}<td>${esc(t.platforms.join(', ') || '–')}</td><td class="num">${formatBytes(t.size)}</td><td>${esc(t.pushedAt?.slice(0, 10) ?? '–')}</td></tr>`)
      .join('')}</tbody></table>`,
  ].join('\n');
  return page('Registry inventory', `${inventory.root} · scanned ${new Date(now).toISOString().slice(0, 16).replace('T', ' ')} UTC`, body);
}

/** The push or sync report (`--report x.json`) as a page: what was verified, skipped and failed, and why. */
export interface PushReportDocument {
  readonly command?: 'push' | 'sync';
  readonly source?: string;
  readonly destination?: string;
  readonly startedAt?: string;
  readonly endedAt?: string;
  readonly regmigrateVersion?: string;
  readonly images: ReadonlyArray<{ source: string; destination: string | null; digest: string | null; status: string; reason: string | null; size?: number; sourcePushedAt?: string | null; destinationPushedAt?: string | null }>;
  readonly summary: { verified: number; skipped: number; failed: number; interrupted?: number; bytesUploaded?: number; bytesMounted?: number; bytesSkipped?: number; projectsCreated?: string[] };
}

/** A push time to the second, or a dash. */
function pushedCell(iso: string | null | undefined): string {
  return iso ? `<time datetime="${esc(iso)}">${esc(iso.slice(0, 19).replace('T', ' '))}</time>` : '–';
}

/** `2024-05-01T10:00:00.000Z` → `2024-05-01 10:00:00 UTC`. */
function utc(iso: string): string {
  return `${iso.slice(0, 19).replace('T', ' ')} UTC`;
}

export function renderPushHtml(doc: PushReportDocument): string {
  const s = doc.summary;
  // Not done: failed, or interrupted by a stop (listed together, an interrupted one with that as its reason).
  const failed = doc.images.filter((i) => i.status === 'failed' || i.status === 'interrupted');
  const done = doc.images.filter((i) => !failed.includes(i));
  const interrupted = s.interrupted ?? 0;
  const reasons = new Map<string, number>();
  for (const f of failed) {
    const kind = (f.reason ?? f.status).split(':')[0]!.slice(0, 40);
    reasons.set(kind, (reasons.get(kind) ?? 0) + 1);
  }
  const body = [
    `<div class="cards">${[
      card(String(s.verified), 'verified', 'good'),
      card(String(s.skipped), 'already there or skipped'),
      card(String(s.failed), 'failed', s.failed > 0 ? 'bad' : 'good'),
      ...(interrupted ? [card(String(interrupted), 'interrupted', 'bad')] : []),
      card(formatBytes(s.bytesUploaded ?? 0), 'uploaded'),
      card(formatBytes(s.bytesMounted ?? 0), 'mounted'),
      card(formatBytes(s.bytesSkipped ?? 0), 'already there'),
    ].join('')}</div>`,
    '<h2>Outcome</h2>',
    barChart('outcome', [{ label: 'images', parts: [s.verified, s.skipped, s.failed + interrupted], note: `${s.verified} verified · ${s.skipped} skipped · ${s.failed} failed${interrupted ? ` · ${interrupted} interrupted` : ''}` }], ['#1a7f37', '#9aa5b8', '#c4452f']),
    legend([['#1a7f37', 'verified'], ['#9aa5b8', 'already there / skipped'], ['#c4452f', interrupted ? 'failed or interrupted' : 'failed']]),
    failed.length
      ? `<h2>Failed (${failed.length})</h2>${barChart('failures', [...reasons].map(([k, n]) => ({ label: k, parts: [n], note: String(n) })), ['#c4452f'])}<table id="failed"><thead><tr><th>source</th><th>destination</th><th>reason</th></tr></thead><tbody>${failed
          .map((f) => `<tr><td><code>${esc(f.source)}</code></td><td><code>${esc(f.destination ?? '–')}</code></td><td>${esc(f.reason ?? f.status)}</td></tr>`)
          .join('')}</tbody></table>`
      : '<h2>Failed</h2><p>None.</p>',
    `<h2>Verified and skipped (${done.length})</h2><table id="done"><thead><tr><th>source</th><th>destination</th><th>digest</th><th class="num">size</th><th>pushed to the source</th><th>pushed to the destination</th><th>status</th></tr></thead><tbody>${done
      .map((i) => `<tr><td><code>${esc(i.source)}</code></td><td><code>${esc(i.destination ?? '')}</code></td><td><code>${esc((i.digest ?? '').slice(0, 19))}</code></td><td class="num">${i.size === undefined ? '–' : formatBytes(i.size)}</td><td>${pushedCell(i.sourcePushedAt)}</td><td>${pushedCell(i.destinationPushedAt)}</td><td>${esc(i.status)}${i.reason ? ` <span class="muted">(${esc(i.reason)})</span>` : ''}</td></tr>`)
      .join('')}</tbody></table>`,
    s.projectsCreated?.length ? `<p>Projects created: ${s.projectsCreated.map((p) => `<code>${esc(p)}</code>`).join(', ')}</p>` : '',
  ].join('\n');
  const run = [
    doc.source !== undefined || doc.destination !== undefined ? `${doc.source ?? '?'} → ${doc.destination ?? '?'}` : '',
    doc.startedAt ? `${utc(doc.startedAt)} – ${doc.endedAt ? utc(doc.endedAt) : '?'}` : '',
    doc.regmigrateVersion ? `regmigrate ${doc.regmigrateVersion}` : '',
  ];
  return page(doc.command === 'sync' ? 'Sync report' : 'Push report', run.filter(Boolean).join(' · '), body);
}

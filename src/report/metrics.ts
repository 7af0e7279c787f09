import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { writeFileAtomic } from '../util/files.js';
import type { PushResult } from '../push/push.js';
import type { Deletion } from '../sync/sync.js';
import { FAULT_KINDS } from '../inventory/types.js';
import { countReports } from './push-report.js';

/** What one run of push or sync tells monitoring. `result` is absent when the run stopped before any work. */
export interface RunMetrics {
  readonly command: 'push' | 'sync';
  readonly startedAt: number;
  readonly endedAt: number;
  readonly exitCode: number;
  readonly result: PushResult | undefined;
  readonly deletions: readonly Deletion[];
  /** `k/n` when the run is one shard of several. */
  readonly shard: string | undefined;
  /** When an earlier run last succeeded (Unix ms), carried over by a failing run. */
  readonly previousSuccessAt?: number;
}

interface Sample {
  readonly labels?: Record<string, string>;
  readonly value: number;
}

interface Family {
  readonly name: string;
  readonly type: 'gauge' | 'counter';
  readonly help: string;
  readonly samples: readonly Sample[];
}

/** One sample per outcome, in the order given (absent counts are 0). */
function byOutcome(values: Record<string, number | undefined>): Sample[] {
  return Object.entries(values).map(([outcome, value]) => ({ labels: { outcome }, value: value ?? 0 }));
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/**
 * The Prometheus text exposition (the node_exporter textfile collector's and the Pushgateway's format). Names and
 * units follow Prometheus conventions: counts of this run end in `_total`, times in `_seconds`, sizes in `_bytes`.
 */
export function renderMetrics(m: RunMetrics): string {
  const base: Record<string, string> = { command: m.command, ...(m.shard ? { shard: m.shard } : {}) };
  const r = m.result;
  const counts = r ? countReports(r.reports) : undefined;
  const skipped = r ? r.reports.filter((x) => x.status === 'skipped').length : 0;
  const deleted = m.deletions.filter((d) => d.status === 'deleted').length;
  const faults = new Map<string, number>(FAULT_KINDS.map((k) => [k, 0]));
  if (r) for (const kind of FAULT_KINDS) faults.set(kind, r.source.faults[kind]);
  // Name collisions are found when names are mapped, not on the tag itself: the only faults a tag does not carry.
  for (const rejected of r?.rejected ?? []) for (const f of rejected.faults) if (f.kind === 'name-collision') faults.set(f.kind, (faults.get(f.kind) ?? 0) + 1);
  if (r) faults.set('unreadable', (faults.get('unreadable') ?? 0) + r.source.readFaults.length);
  const s = r?.stats;
  const families: Family[] = [
    { name: 'regmigrate_last_run_start_timestamp_seconds', type: 'gauge', help: 'When the last run started (Unix time).', samples: [{ value: m.startedAt / 1000 }] },
    { name: 'regmigrate_last_run_end_timestamp_seconds', type: 'gauge', help: 'When the last run ended (Unix time).', samples: [{ value: m.endedAt / 1000 }] },
    { name: 'regmigrate_last_run_duration_seconds', type: 'gauge', help: 'How long the last run took.', samples: [{ value: (m.endedAt - m.startedAt) / 1000 }] },
    { name: 'regmigrate_last_run_success', type: 'gauge', help: '1 when the last run ended with exit status 0, else 0.', samples: [{ value: m.exitCode === 0 ? 1 : 0 }] },
    ...(m.exitCode === 0 || m.previousSuccessAt !== undefined
      ? [{ name: 'regmigrate_last_success_timestamp_seconds', type: 'gauge' as const, help: 'When a run last ended with exit status 0 (Unix time).', samples: [{ value: (m.exitCode === 0 ? m.endedAt : m.previousSuccessAt!) / 1000 }] }]
      : []),
    { name: 'regmigrate_last_run_exit_code', type: 'gauge', help: 'Exit status of the last run (0 ok, 1 images failed, 2 configuration, 3 destination, 4 locked, 5 output, 6 only immutable tags left, 70 a bug).', samples: [{ value: m.exitCode }] },
    {
      name: 'regmigrate_tags_total',
      type: 'counter',
      help: 'Source tags in the last run, by outcome.',
      samples: byOutcome({
        verified: counts?.verified,
        unchanged: r ? r.reports.filter((x) => x.status === 'skipped-existing').length : 0,
        failed: counts?.failed,
        immutable: counts?.immutable,
        interrupted: counts?.interrupted,
        skipped,
        deleted,
      }),
    },
    {
      name: 'regmigrate_blob_bytes_total',
      type: 'counter',
      help: 'Blob bytes in the last run, by how they reached the destination.',
      samples: byOutcome({ uploaded: s?.bytesUploaded, mounted: s?.bytesMounted, skipped: s?.bytesSkipped }),
    },
    {
      name: 'regmigrate_blobs_total',
      type: 'counter',
      help: 'Blobs in the last run, by how they reached the destination.',
      samples: byOutcome({ uploaded: s?.blobsUploaded, mounted: s?.blobsMounted, skipped: s?.blobsSkipped }),
    },
    { name: 'regmigrate_faults_total', type: 'counter', help: 'Faults found in the source storage in the last run, by kind.', samples: [...faults].map(([kind, value]) => ({ labels: { kind }, value })) },
    { name: 'regmigrate_requests_total', type: 'counter', help: 'Requests sent to the destination in the last run.', samples: [{ value: r?.requests ?? 0 }] },
    { name: 'regmigrate_retries_total', type: 'counter', help: 'Requests repeated after a transient failure in the last run.', samples: [{ value: r?.retries ?? 0 }] },
  ];
  if (m.command === 'sync') {
    families.push({
      name: 'regmigrate_destination_behind_tags',
      type: 'gauge',
      help: 'Source tags the destination does not hold at their digest after the last sync.',
      samples: [{ value: counts?.failed ?? 0 }],
    });
    families.push({
      name: 'regmigrate_tags_kept_total',
      type: 'counter',
      help: 'Destination tags whose source tag is gone that --delete-extra keeps in the last sync: tags that stay share their manifest, and a plain registry deletes a tag only with its manifest.',
      samples: [{ value: m.deletions.filter((d) => d.sharedWith).length }],
    });
  }
  let out = '';
  for (const f of families) {
    out += `# HELP ${f.name} ${f.help}\n# TYPE ${f.name} ${f.type}\n`;
    for (const sample of f.samples) {
      const labels = { ...base, ...sample.labels };
      const text = Object.entries(labels)
        .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
        .join(',');
      out += `${f.name}{${text}} ${Number.isInteger(sample.value) ? sample.value : sample.value.toFixed(3)}\n`;
    }
  }
  return out;
}

/** The textfile collector reads whole files only: written aside, flushed, renamed. */
export function writeMetricsFile(file: string, metrics: RunMetrics): void {
  // A failing run keeps the time of the last success, read from the file it replaces.
  let previousSuccessAt = metrics.previousSuccessAt;
  if (metrics.exitCode !== 0 && previousSuccessAt === undefined) {
    try {
      const match = /^regmigrate_last_success_timestamp_seconds\{[^}]*\} ([\d.e+]+)$/m.exec(readFileSync(file, 'utf8'));
      if (match) previousSuccessAt = Number(match[1]) * 1000;
    } catch {
      // no earlier file
    }
  }
  writeFileAtomic(file, renderMetrics({ ...metrics, ...(previousSuccessAt !== undefined ? { previousSuccessAt } : {}) }), '--metrics-file');
}

/**
 * POST to a Pushgateway, `<url>/metrics/job/<job>[/shard/<k>]`: replaces the metrics of the same names in that group
 * and keeps the others, so a failing run, which sends no `regmigrate_last_success_timestamp_seconds`, leaves the
 * last success's time in place. The shard goes into the grouping key, so shards never overwrite each other.
 */
export async function pushMetrics(url: string, job: string, metrics: RunMetrics): Promise<void> {
  const shard = metrics.shard?.split('/')[0];
  const target = `${url.replace(/\/+$/, '')}/metrics/job/${encodeURIComponent(job)}${shard !== undefined ? `/shard/${encodeURIComponent(shard)}` : ''}`;
  const text = renderMetrics({ ...metrics, shard: undefined });
  const res = await request(target, { method: 'POST', headers: { 'content-type': 'text/plain; version=0.0.4' }, body: text });
  const body = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`Pushgateway ${target} answered ${res.statusCode}: ${body.trim().slice(0, 200)}`);
}

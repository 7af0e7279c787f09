/**
 * `npm run bench [-- section ...]`: every speed and memory goal, measured side by side with its baselines in the
 * same run. Sections: scan, push, sync, large, scale, ceiling, wan, cpu, shards, s3 (all by default). Figures go to stdout, progress to stderr. Work files live in
 * $REGMIGRATE_BENCH_DIR (default: a folder in the system temp dir) and are reused between runs.
 */
import { execa } from 'execa';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchCeiling } from './ceiling-section.js';
import { benchCpu } from './cpu.js';
import { benchLarge } from './large.js';
import { benchPush } from './push.js';
import { benchScale } from './scale.js';
import { benchScan } from './scan.js';
import { benchS3 } from './s3.js';
import { benchShards } from './shards.js';
import { benchSync } from './sync.js';
import { benchWan } from './wan.js';

const project = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(project, 'bin', 'regmigrate');
const sections = process.argv.slice(2);
const wanted = (name: string): boolean => sections.length === 0 || sections.includes(name);
const workDir = process.env.REGMIGRATE_BENCH_DIR ?? path.join(tmpdir(), 'regmigrate-bench');

const deps = ['docker-registry', 'skopeo', ...(wanted('s3') ? ['radosgw', 'ceph-mon', 'ceph-osd', 'ceph', 'radosgw-admin'] : [])];
await execa('bash', [path.join(project, 'scripts', 'ensure-deps'), ...deps], { stdio: 'inherit' });
if (wanted('scan')) await benchScan({ bin, workDir });
if (wanted('push')) await benchPush({ bin, project, workDir });
if (wanted('sync')) await benchSync({ bin, workDir });
if (wanted('large')) await benchLarge({ bin, workDir });
if (wanted('scale')) await benchScale({ bin, project, workDir });
if (wanted('ceiling')) await benchCeiling({ bin, project, workDir });
if (wanted('wan')) await benchWan({ bin, project, workDir });
if (wanted('cpu')) await benchCpu({ bin, project, workDir });
if (wanted('shards')) await benchShards({ bin, workDir });
if (wanted('s3')) await benchS3({ bin, workDir });

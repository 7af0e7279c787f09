/**
 * `npm run bench [-- section ...]`: every speed and memory goal, measured side by side with its baselines in the
 * same run. Sections: scan. Figures go to stdout; progress to stderr.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchScan } from './scan.js';

const project = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(project, 'bin', 'regmigrate');
const sections = process.argv.slice(2);
const wanted = (name: string): boolean => sections.length === 0 || sections.includes(name);
const workDir = process.env.REGMIGRATE_BENCH_DIR;

if (wanted('scan')) await benchScan({ bin, ...(workDir ? { workDir } : {}) });

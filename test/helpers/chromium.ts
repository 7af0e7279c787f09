/**
 * Debian's chromium, headless, as the tests' renderer of HTML reports: the network is off (every host resolves to
 * nothing) and Chromium's own net log records every request it tried, so a test can tell that none left the file.
 */
import { execa } from 'execa';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from './tmp.js';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-extensions',
  '--host-resolver-rules=MAP * ~NOTFOUND',
  // Chromium's own background queries (network time, hints): off, so the net log holds only what the page asked.
  '--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate,AutofillServerCommunication',
];

export interface Rendering {
  /** The DOM after the page rendered (`--dump-dom`). */
  readonly dom: string;
  /** Every URL Chromium's network stack was asked for while rendering, from its net log. */
  readonly requestedUrls: string[];
}

async function chromium(args: string[]): Promise<string> {
  const profile = tempDir('regmigrate-chromium-');
  const result = await execa('chromium', [...FLAGS, `--user-data-dir=${profile}`, ...args], { reject: false, timeout: 90_000 });
  if (result.exitCode !== 0) throw new Error(`chromium exited ${result.exitCode}: ${String(result.stderr).slice(-500)}`);
  return String(result.stdout);
}

/**
 * Chromium's own background services (sign-in, component updates) call home whatever page is open, flags or not;
 * their requests are the browser's, not the page's, and the host resolver sends them nowhere.
 */
const BROWSER_SERVICES = /^https?:\/\/(accounts\.google\.com|update\.googleapis\.com|clients\d*\.google\.com|redirector\.gvt1\.com)\//;

/** What the page asked for beyond its own file. */
export function pageRequests(rendering: Rendering): string[] {
  return rendering.requestedUrls.filter((u) => !u.startsWith('file:') && !BROWSER_SERVICES.test(u));
}

export async function renderHtml(file: string): Promise<Rendering> {
  const netlog = path.join(tempDir('regmigrate-netlog-'), 'net.json');
  const dom = await chromium([`--log-net-log=${netlog}`, '--net-log-capture-mode=Everything', '--dump-dom', `file://${file}`]);
  const log = readFileSync(netlog, 'utf8');
  const requestedUrls = [...log.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1]!);
  return { dom, requestedUrls };
}

export async function screenshot(file: string, png: string, width = 1200, height = 1500): Promise<void> {
  await chromium([`--screenshot=${png}`, `--window-size=${width},${height}`, '--hide-scrollbars', `file://${file}`]);
}

export async function printToPdf(file: string, pdf: string): Promise<void> {
  await chromium([`--print-to-pdf=${pdf}`, '--no-pdf-header-footer', `file://${file}`]);
}

/** How wide a page lays out in a viewport `width` px wide: the document's scroll width and the widest table cell's right edge. */
export interface Layout {
  readonly scrollWidth: number;
  readonly widestCell: number;
}

/**
 * Lays the page out at `width` px and measures it. The report pages hold no script, so a copy of the page gets one
 * that writes the measurements into the DOM Chromium dumps.
 */
export async function measureLayout(file: string, width: number): Promise<Layout> {
  const copy = path.join(tempDir('regmigrate-layout-'), path.basename(file));
  const probe = `<script>
    const cells = [...document.querySelectorAll('td')].map((td) => td.getBoundingClientRect().right);
    document.body.setAttribute('data-layout', JSON.stringify({ scrollWidth: document.documentElement.scrollWidth, widestCell: Math.max(0, ...cells) }));
  </script>`;
  writeFileSync(copy, readFileSync(file, 'utf8').replace('</body>', `${probe}</body>`));
  const dom = await chromium([`--window-size=${width},900`, '--hide-scrollbars', '--dump-dom', `file://${copy}`]);
  const json = /data-layout="([^"]*)"/.exec(dom)?.[1];
  if (!json) throw new Error(`no layout measured for ${file}`);
  return JSON.parse(json.replace(/&quot;/g, '"')) as Layout;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  // Whole bytes below 1 KiB (a rate is a fraction: 761.96 B/s reads 762 B/s); 3 significant digits above. The
  // precision follows the rounded value: 99.97 KiB reads 100 KiB, and 1023.6 B, which rounds to 1024, reads 1.0 KiB.
  for (;;) {
    const text = unit === 0 ? String(Math.round(value)) : value.toFixed(value >= 99.95 ? 0 : 1);
    if (Number(text) < 1024 || unit === UNITS.length - 1) return `${text} ${UNITS[unit]}`;
    value /= 1024;
    unit++;
  }
}

/** Bytes per second, at the precision of formatBytes. */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(Number.isFinite(bytesPerSecond) && bytesPerSecond > 0 ? bytesPerSecond : 0)}/s`;
}

/** `1 image`, `2 images`, `0 images`; `count(n, 'repository', 'repositories')` for irregular plurals. */
export function count(n: number, singular: string, plural = `${singular}s`): string {
  return `${n} ${n === 1 ? singular : plural}`;
}

export function formatDuration(ms: number): string {
  // Each unit is chosen by the rounded value, so 999.6 ms reads 1.0 s and 119.96 s reads 2 min 0 s.
  if (Math.round(ms) < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 119.95) return `${s.toFixed(1)} s`;
  const whole = Math.round(s);
  if (whole < 7200) return `${Math.floor(whole / 60)} min ${whole % 60} s`;
  return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} min`;
}

/** Renders rows as aligned columns: what a person reads on a terminal. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** RFC 4180 field quoting. */
export function csvField(value: string | number | undefined): string {
  const s = value === undefined ? '' : String(value);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvLine(values: readonly (string | number | undefined)[]): string {
  return values.map(csvField).join(',') + '\n';
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tb: 1000 ** 4, tib: 1024 ** 4 };

/** `16MiB`, `16M`, `500MB`, `1048576` → bytes; undefined when it is not a size. */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!m) return undefined;
  const unit = SIZE_UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return undefined;
  return Math.round(Number(m[1]) * unit);
}

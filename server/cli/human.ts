// Readable numbers for tables: durations, sizes, relative times. `--json` keeps the raw values
// (seconds, bytes, ISO times); only the human rendering goes through these.

/** 42 s, 3 min, 2 h 5 min, 3 d 4 h. */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '-';
  const s = Math.abs(seconds);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 90) return `${Math.round(s)} s`;
  const min = Math.round(s / 60);
  if (min < 60) return `${min} min`;
  if (min < 24 * 60) return min % 60 ? `${Math.floor(min / 60)} h ${min % 60} min` : `${min / 60} h`;
  const hours = Math.round(s / 3600);
  return hours % 24 ? `${Math.floor(hours / 24)} d ${hours % 24} h` : `${hours / 24} d`;
}

/** 812 B, 4.2 KB, 18.5 MB, 1.21 GB (decimal units, as disk tools show). */
export function size(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '-';
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} KB`;
  if (bytes < 1e9) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

/** "3 min ago", "in 2 d", "just now"; `-` for no time. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = (now - t) / 1000;
  if (Math.abs(s) < 5) return 'just now';
  return s > 0 ? `${duration(s)} ago` : `in ${duration(-s)}`;
}

/** Replaces the named columns of each row with their relative time (for tables only). */
export function withAgo<T extends Record<string, unknown>>(rows: T[], columns: string[], now = Date.now()): T[] {
  return rows.map((r) => ({ ...r, ...Object.fromEntries(columns.filter((c) => c in r).map((c) => [c, ago(r[c] as string | null, now)])) }));
}

// Time buckets for rollups and query windows. Every timestamp the monitoring tables store is UTC ISO 8601
// with milliseconds (`Date.toISOString()`), so string order is time order and range queries use the indexes.

export type Granularity = 'minute' | 'hour';

const MS: Record<Granularity, number> = { minute: 60_000, hour: 3_600_000 };

/** Normalises any ISO 8601 time (offsets included) to the stored UTC form. */
export function isoUtc(t: string | number | Date): string {
  return new Date(t).toISOString();
}

/** Start of the minute/hour holding `t`, in the stored form. */
export function bucketStart(t: string | number | Date, granularity: Granularity): string {
  const ms = new Date(t).getTime();
  return new Date(Math.floor(ms / MS[granularity]) * MS[granularity]).toISOString();
}

/**
 * `90s`, `15m`, `1h`, `7d` (or plain seconds) → seconds; `null` when unreadable or not positive.
 *
 * @example
 * parseWindowSeconds('15m') // 900
 */
export function parseWindowSeconds(text: string): number | null {
  const m = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!m) return null;
  const n = Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  return n > 0 && Number.isSafeInteger(n) ? n : null;
}

/** Which rollups answer a window: minutes up to 6 hours (≤ 361 buckets to merge), hours beyond. */
export function granularityFor(windowS: number): Granularity {
  return windowS <= 6 * 3600 ? 'minute' : 'hour';
}

export interface QueryWindow {
  /** Requested start and end (end exclusive). */
  start: string;
  end: string;
  seconds: number;
  granularity: Granularity;
  /**
   * First bucket included: the bucket holding `start`. Windows are therefore aligned to whole
   * buckets and may include up to one bucket's worth of data before `start`.
   */
  fromBucket: string;
}

/** The window of `seconds` ending at `end` (default now) and the rollup buckets that cover it. */
export function queryWindow(seconds: number, end: Date = new Date()): QueryWindow {
  const start = new Date(end.getTime() - seconds * 1000);
  const granularity = granularityFor(seconds);
  return { start: start.toISOString(), end: end.toISOString(), seconds, granularity, fromBucket: bucketStart(start, granularity) };
}

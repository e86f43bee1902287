// Bounds on request parameters that size the server's work: time windows and buckets, label sets.
// Shared so every route refuses the same inputs with the same 400 (and the OpenAPI document says so).
import { z } from '@hono/zod-openapi';
import { parseWindowSeconds } from '../ingest/buckets.ts';
import { Invalid } from '../errors.ts';

/** Longest query window: a year of hourly rollups (8,784 buckets to merge) — and far from Date's range. */
export const MAX_WINDOW_S = 366 * 86400;
/** Most time buckets one answer may have (window / bucket). */
export const MAX_BUCKETS = 1000;
/** Most labels on one device, enrollment token or selector. */
export const MAX_LABELS = 64;

/** A duration such as `90s`, `15m`, `1h`, `7d` (or plain seconds), at most MAX_WINDOW_S. */
export const Duration = z
  .string()
  .max(16)
  .refine((v) => {
    const s = parseWindowSeconds(v);
    return s !== null && s <= MAX_WINDOW_S;
  }, `a duration such as 90s, 15m, 1h or 7d, at most ${MAX_WINDOW_S / 86400}d`)
  .openapi({ description: `duration: 90s, 15m, 1h, 7d (at most ${MAX_WINDOW_S / 86400}d)`, example: '1h' });

/** Seconds of a Duration that passed validation, or the fallback when absent. */
export function durationSeconds(text: string | undefined, fallback: number): number {
  return text === undefined ? fallback : parseWindowSeconds(text)!;
}

/** Refuses a window that would be cut into more than MAX_BUCKETS buckets. */
export function checkBuckets(windowS: number, bucketS: number): void {
  if (Math.ceil(windowS / bucketS) > MAX_BUCKETS) {
    throw Invalid(`a ${windowS} s window in ${bucketS} s buckets makes more than ${MAX_BUCKETS} buckets: use a larger bucket`, { maxBuckets: MAX_BUCKETS });
  }
}

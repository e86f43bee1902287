// How many buffered messages the next ingest transaction takes. Under a backlog a batch grows (doubling,
// up to 8 × the configured batch size) while its transaction stays under the target time, and shrinks
// (halving, never below the configured size) when one takes more than twice that: fewer commits (each a
// WAL fsync) and fewer rewrites of the shared cohort and fleet rollups per message, while the write lock
// that every other writer of the process queues behind is held for a bounded time.

/**
 * The limit after a transaction of `size` messages that took `ms`, given the current `limit`, the
 * configured batch size `base` and the target duration `targetMs`.
 *
 * @example
 * nextBatchLimit({ limit: 500, size: 500, ms: 120, base: 500, targetMs: 500 }) // 1000
 */
export function nextBatchLimit(o: { limit: number; size: number; ms: number; base: number; targetMs: number }): number {
  if (o.size >= o.limit && o.ms < o.targetMs) return Math.min(o.limit * 2, o.base * 8);
  if (o.ms > 2 * o.targetMs) return Math.max(Math.floor(o.limit / 2), o.base);
  return o.limit;
}

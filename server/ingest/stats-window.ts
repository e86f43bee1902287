// A `stats` window as ingest keeps it between its checks and its batch's commit: the message's fields,
// the sketch's stored bytes and their layout, and the sketch as an object only on demand. A window
// sent as `sketchBase64` (agents now) is checked on its bytes (stats-wire-fast-path.ts) and never
// decoded unless a fallback needs the object (a reference mismatch to name, a rollup whose windows
// list their features in another order); one sent as a `sketch` object (older agents) is encoded once.
import type { StatsMessage } from '../../protocol/messages/stats.ts';
import type { WireStatsWindow } from '../../protocol/messages/stats-wire-fast-path.ts';
import type { FeatureSetSketch } from '../../protocol/sketch/feature-set-sketch.ts';
import { decodeSketch, encodeSketch, sketchNumbersLayout } from '../../protocol/sketch/sketch-blob.ts';

/** `bytes` is the sketch's stored form: as the device sent it (`sketchBase64`), or encoded from the object. */
export interface StatsWindow extends Omit<WireStatsWindow, 'deviceId'> {
  /** The sketch as an object (decoded at most once), for the object fallbacks. */
  sketch(): FeatureSetSketch;
}

/** A window accepted on its bytes. */
export function windowFromWire(w: WireStatsWindow): StatsWindow {
  let decoded: FeatureSetSketch | undefined;
  const { bundleId, model, windowStart, windowEnd, seq, rows, bytes, layout } = w;
  return { bundleId, model, windowStart, windowEnd, seq, rows, bytes, layout, sketch: () => (decoded ??= decodeSketch(bytes)) };
}

/** A window accepted as a message object; `bytes` when it came as `sketchBase64` (they equal encodeSketch of its sketch). */
export function windowFromMessage(m: StatsMessage, bytes?: Buffer): StatsWindow {
  const stored = bytes ?? encodeSketch(m.sketch);
  const { bundleId, model, windowStart, windowEnd, seq, sketch } = m;
  return { bundleId, model, windowStart, windowEnd, seq, rows: sketch.quality.rows, bytes: stored, layout: sketchNumbersLayout(stored), sketch: () => sketch };
}

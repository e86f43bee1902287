// Writes a batch of accepted `stats` windows inside the caller's transaction: raw windows first
// (insert-or-ignore on device + seq, so a resend is stored once), then only the windows that were
// new are merged into the per-minute and per-hour rollups of their cohorts and the fleet. There are
// no per-device rollups: nothing reads them (drift reads cohorts and the fleet), and a device's
// windows are its raw rows, kept for the stats retention. With one window per device a minute, a
// device rollup cost a read, a merge and a rewrite of a whole sketch per window, more than the raw
// insert itself. Sketches are stored binary (protocol/sketch/sketch-blob.ts) and bound as blobs in multi-row
// statements (multi-row.ts).
import { sql } from 'drizzle-orm';
import { SketchMismatchError } from '../../protocol/sketch/errors.ts';
import { mergeAllFeatureSetSketches, mergeFeatureSetSketches, type FeatureSetSketch } from '../../protocol/sketch/feature-set-sketch.ts';
import { mergeSketchNumbers, sketchBytesWith, sketchNumbers, sketchNumbersView } from '../../protocol/sketch/sketch-blob-merge.ts';
import type { Tx } from '../db/client.ts';
import { decodeSketch, encodeSketch, readStoredSketch, sketchNumbersLayout, storedSketchBytes, type SketchNumbersLayout } from '../../protocol/sketch/sketch-blob.ts';
import { bucketStart, isoUtc, type Granularity } from './buckets.ts';
import { insertNewMessages, insertRows } from './multi-row.ts';
import type { StatsWindow } from './stats-window.ts';

export interface StatsItem {
  deviceId: string;
  /** The window; its sketch's bytes are stored as they are. */
  message: StatsWindow;
  modelVersionId: number;
  cohorts: string[];
}

type Scope = 'cohort' | 'fleet';
interface RollupId {
  scope: Scope;
  key: string;
  modelVersionId: number;
  granularity: Granularity;
  bucketStart: string;
}
/** A window as the rollups see it: its stored bytes and their layout, its sketch object on demand. */
type Member = Pick<StatsWindow, 'bytes' | 'layout' | 'sketch'>;
/** A rollup's new windows of this batch, merged once at the end. */
type Pending = RollupId & { windows: number; rows: number; members: Member[] };

const GRANULARITIES: Granularity[] = ['minute', 'hour'];
export const FLEET_KEY = '*';

const rollupKey = (r: RollupId) => `${r.scope}\u0000${r.key}\u0000${r.modelVersionId}\u0000${r.granularity}\u0000${r.bucketStart}`;

export interface StatsWriteResult {
  stored: number;
  duplicates: number;
  /** Rollups whose stored layout no longer matched (a replaced reference): restarted from this batch. */
  layoutResets: number;
}

/**
 * Stores the windows and updates rollups. A window lands in the minute and hour buckets of its
 * start; windows are what the agent makes them (60 s by default), so a minute bucket holds the
 * windows that began in that minute.
 */
export async function writeStats(tx: Tx, items: StatsItem[], now: Date): Promise<StatsWriteResult> {
  const receivedAt = now.toISOString();
  // The same (device, seq) twice in one batch, or a resend: stored and rolled up once.
  const fresh = await insertNewMessages(
    tx,
    'INSERT INTO stats_windows (device_id, model_version_id, bundle_id, window_start, window_end, seq, rows, sketch, received_at)',
    items,
    ({ deviceId, modelVersionId, message: w }) => [deviceId, modelVersionId, w.bundleId, isoUtc(w.windowStart), isoUtc(w.windowEnd), w.seq, w.rows, w.bytes, receivedAt],
  );

  const acc = new Map<string, Pending>();
  for (const it of fresh) {
    const member: Member = it.message;
    const rows = it.message.rows;
    for (const granularity of GRANULARITIES) {
      const bucket = bucketStart(it.message.windowStart, granularity);
      for (let i = 0; i <= it.cohorts.length; i++) {
        const id: RollupId = i < it.cohorts.length ? { scope: 'cohort', key: it.cohorts[i], modelVersionId: it.modelVersionId, granularity, bucketStart: bucket } : { scope: 'fleet', key: FLEET_KEY, modelVersionId: it.modelVersionId, granularity, bucketStart: bucket };
        const k = rollupKey(id);
        const cur = acc.get(k);
        if (!cur) acc.set(k, { ...id, windows: 1, rows, members: [member] });
        else {
          cur.windows++;
          cur.rows += rows;
          cur.members.push(member);
        }
      }
    }
  }
  const layoutResets = await upsertRollups(tx, [...acc.values()], receivedAt);
  return { stored: fresh.length, duplicates: items.length - fresh.length, layoutResets };
}

/** A rollup's windows of this batch merged: the stored bytes and their layout. */
interface BatchSum {
  bytes: Buffer;
  layout: SketchNumbersLayout;
  /** The merged sketch as an object, only for the object merge's fallbacks. */
  sketch(): FeatureSetSketch;
}

/**
 * Merges a rollup's windows left to right, as mergeAllFeatureSetSketches does: on their numbers in place
 * (sketch-blob-merge.ts) when they share one header, else as objects (windows with their features in
 * another order: the object merge accepts those, and its result keeps the first window's order).
 */
function sumWindows(members: Member[], scratch: Float64Array): BatchSum {
  const first = members[0];
  const layout = first.layout;
  if (members.length === 1) return { bytes: first.bytes, layout, sketch: first.sketch };
  const nums = sketchNumbers(first.bytes, layout);
  const window = scratch.length >= layout.count ? scratch : new Float64Array(layout.count);
  let inPlace = true;
  for (let i = 1; i < members.length && inPlace; i++) {
    const m = members[i];
    inPlace = (m.layout === layout || m.layout.text === layout.text) && mergeSketchNumbers(layout, nums, sketchNumbersView(m.bytes, layout, window));
  }
  if (inPlace) {
    const bytes = sketchBytesWith(first.bytes, layout, nums);
    return { bytes, layout, sketch: () => decodeSketch(bytes) };
  }
  const merged = mergeAllFeatureSetSketches(members.map((m) => m.sketch()));
  const bytes = encodeSketch(merged);
  return { bytes, layout: sketchNumbersLayout(bytes), sketch: () => merged };
}

/**
 * A stored rollup merged with the batch's (the stored one first, as mergeFeatureSetSketches(old, batch)):
 * its bytes, or null when the layouts differ (a replaced reference: the rollup restarts from the batch).
 * In place on the stored row's numbers when both share a header; JSON text (rows before migration 0015)
 * and other headers go through the objects.
 */
function mergeStored(stored: unknown, batch: BatchSum): Buffer | null {
  const bytes = storedSketchBytes(stored);
  const layout = bytes ? sketchNumbersLayout(bytes) : null;
  if (bytes && layout?.text === batch.layout.text) {
    const nums = sketchNumbers(bytes, layout);
    return mergeSketchNumbers(layout, nums, sketchNumbersView(batch.bytes, layout)) ? sketchBytesWith(bytes, layout, nums) : null;
  }
  try {
    return encodeSketch(mergeFeatureSetSketches(readStoredSketch(stored), batch.sketch()));
  } catch (err) {
    if (!(err instanceof SketchMismatchError)) throw err;
    return null;
  }
}

/**
 * Merges the batch's rollups into the stored ones: one read of the existing rows (the keys joined in
 * as a JSON array, each one primary-key lookup) and one upsert of the merged rows, whatever the batch
 * size, each rollup row written once per batch.
 */
async function upsertRollups(tx: Tx, rollups: Pending[], updatedAt: string): Promise<number> {
  if (!rollups.length) return 0;
  const keys = JSON.stringify(rollups.map((r) => [r.scope, r.key, r.modelVersionId, r.granularity, r.bucketStart]));
  // CROSS JOIN keeps the key list as the outer loop, so each key is one primary-key lookup.
  const found = await tx.all<{ scope: Scope; key: string; model_version_id: number; granularity: Granularity; bucket_start: string; windows: number; rows: number; sketch: unknown }>(sql`
    SELECT r.scope, r.key, r.model_version_id, r.granularity, r.bucket_start, r.windows, r.rows, r.sketch FROM json_each(${keys}) k CROSS JOIN stats_rollups r
    ON r.scope = k.value->>0 AND r.key = k.value->>1 AND r.model_version_id = k.value->>2 AND r.granularity = k.value->>3 AND r.bucket_start = k.value->>4`);
  const byKey = new Map(found.map((r) => [rollupKey({ scope: r.scope, key: r.key, modelVersionId: r.model_version_id, granularity: r.granularity, bucketStart: r.bucket_start }), r]));
  // One buffer to read each window's numbers into (a layout needing more gets its own).
  const scratch = new Float64Array(rollups[0].members[0].layout.count);
  let resets = 0;
  const values = rollups.map((r) => {
    const batch = sumWindows(r.members, scratch);
    const old = byKey.get(rollupKey(r));
    let row = { windows: r.windows, rows: r.rows, bytes: batch.bytes };
    if (old) {
      const merged = mergeStored(old.sketch, batch);
      if (merged) row = { windows: old.windows + r.windows, rows: old.rows + r.rows, bytes: merged };
      else resets++;
    }
    return [r.scope, r.key, r.modelVersionId, r.granularity, r.bucketStart, row.windows, row.rows, row.bytes, updatedAt];
  });
  await insertRows(
    tx,
    'INSERT INTO stats_rollups (scope, key, model_version_id, granularity, bucket_start, windows, rows, sketch, updated_at)',
    values,
    `ON CONFLICT (scope, key, model_version_id, granularity, bucket_start)
     DO UPDATE SET windows = excluded.windows, rows = excluded.rows, sketch = excluded.sketch, updated_at = excluded.updated_at`,
  );
  return resets;
}

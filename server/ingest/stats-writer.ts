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
import type { StatsMessage } from '../../protocol/messages/stats.ts';
import type { Tx } from '../db/client.ts';
import { encodeSketch, readStoredSketch } from '../../protocol/sketch/sketch-blob.ts';
import { bucketStart, isoUtc, type Granularity } from './buckets.ts';
import { insertNewMessages, insertRows } from './multi-row.ts';

export interface StatsItem {
  deviceId: string;
  message: StatsMessage;
  /** The sketch's binary form as the device sent it (`sketchBase64`): stored as is. */
  sketchBytes?: Buffer;
  modelVersionId: number;
  cohorts: string[];
}

type Scope = 'cohort' | 'fleet';
interface RollupAcc {
  scope: Scope;
  key: string;
  modelVersionId: number;
  granularity: Granularity;
  bucketStart: string;
  windows: number;
  rows: number;
  sketch: FeatureSetSketch;
}
/** A rollup's new windows of this batch, merged once at the end (in place: no new arrays per window). */
type Pending = Omit<RollupAcc, 'sketch'> & { members: FeatureSetSketch[] };

const GRANULARITIES: Granularity[] = ['minute', 'hour'];
export const FLEET_KEY = '*';

const rollupKey = (r: Pick<RollupAcc, 'scope' | 'key' | 'modelVersionId' | 'granularity' | 'bucketStart'>) => `${r.scope}\u0000${r.key}\u0000${r.modelVersionId}\u0000${r.granularity}\u0000${r.bucketStart}`;

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
  // A rollup holding a single new window is that window's sketch object: encoded once for both rows.
  const blobs = new Map<FeatureSetSketch, Buffer>();
  for (const it of items) if (it.sketchBytes) blobs.set(it.message.sketch, it.sketchBytes);
  const blob = (sk: FeatureSetSketch) => {
    let b = blobs.get(sk);
    if (b === undefined) blobs.set(sk, (b = encodeSketch(sk)));
    return b;
  };
  // The same (device, seq) twice in one batch, or a resend: stored and rolled up once.
  const fresh = await insertNewMessages(
    tx,
    'INSERT INTO stats_windows (device_id, model_version_id, bundle_id, window_start, window_end, seq, rows, sketch, received_at)',
    items,
    (it) => [
      it.deviceId,
      it.modelVersionId,
      it.message.bundleId,
      isoUtc(it.message.windowStart),
      isoUtc(it.message.windowEnd),
      it.message.seq,
      it.message.sketch.quality.rows,
      blob(it.message.sketch),
      receivedAt,
    ],
  );

  const acc = new Map<string, Pending>();
  for (const it of fresh) {
    const scopes: Array<[Scope, string]> = [...it.cohorts.map((c): [Scope, string] => ['cohort', c]), ['fleet', FLEET_KEY]];
    for (const granularity of GRANULARITIES) {
      const bucket = bucketStart(it.message.windowStart, granularity);
      for (const [scope, key] of scopes) {
        const id = { scope, key, modelVersionId: it.modelVersionId, granularity, bucketStart: bucket };
        const k = rollupKey(id);
        const cur = acc.get(k);
        if (!cur) acc.set(k, { ...id, windows: 1, rows: it.message.sketch.quality.rows, members: [it.message.sketch] });
        else {
          cur.windows++;
          cur.rows += it.message.sketch.quality.rows;
          cur.members.push(it.message.sketch);
        }
      }
    }
  }
  // The same arithmetic in the same order as merging pairwise; a single window stays its own object (and text).
  const rollups = [...acc.values()].map(({ members, ...r }): RollupAcc => ({ ...r, sketch: members.length === 1 ? members[0] : mergeAllFeatureSetSketches(members) }));
  const layoutResets = await upsertRollups(tx, rollups, receivedAt, blob);
  return { stored: fresh.length, duplicates: items.length - fresh.length, layoutResets };
}

/**
 * Merges the batch's rollups into the stored ones: one read of the existing rows (the keys joined in
 * as a JSON array, each one primary-key lookup) and one upsert of the merged rows, whatever the batch size.
 */
async function upsertRollups(tx: Tx, rollups: RollupAcc[], updatedAt: string, blob: (s: FeatureSetSketch) => Buffer): Promise<number> {
  if (!rollups.length) return 0;
  const keys = JSON.stringify(rollups.map((r) => [r.scope, r.key, r.modelVersionId, r.granularity, r.bucketStart]));
  // CROSS JOIN keeps the key list as the outer loop, so each key is one primary-key lookup.
  const found = await tx.all<{ scope: Scope; key: string; model_version_id: number; granularity: Granularity; bucket_start: string; windows: number; rows: number; sketch: unknown }>(sql`
    SELECT r.scope, r.key, r.model_version_id, r.granularity, r.bucket_start, r.windows, r.rows, r.sketch FROM json_each(${keys}) k CROSS JOIN stats_rollups r
    ON r.scope = k.value->>0 AND r.key = k.value->>1 AND r.model_version_id = k.value->>2 AND r.granularity = k.value->>3 AND r.bucket_start = k.value->>4`);
  const byKey = new Map(found.map((r) => [rollupKey({ scope: r.scope, key: r.key, modelVersionId: r.model_version_id, granularity: r.granularity, bucketStart: r.bucket_start }), r]));
  let resets = 0;
  const values = rollups.map((r) => {
    const old = byKey.get(rollupKey(r));
    let merged = { windows: r.windows, rows: r.rows, sketch: r.sketch };
    if (old) {
      try {
        merged = { windows: old.windows + r.windows, rows: old.rows + r.rows, sketch: mergeFeatureSetSketches(readStoredSketch(old.sketch), r.sketch) };
      } catch (err) {
        if (!(err instanceof SketchMismatchError)) throw err;
        resets++;
      }
    }
    return [r.scope, r.key, r.modelVersionId, r.granularity, r.bucketStart, merged.windows, merged.rows, blob(merged.sketch), updatedAt];
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

// Writes a batch of accepted `stats` windows inside the caller's transaction: raw windows first
// (insert-or-ignore on device + seq, so a resend is stored once), then only the windows that were
// new are merged into the per-minute and per-hour rollups of their device, cohorts and the fleet.
import { sql } from 'drizzle-orm';
import { SketchMismatchError } from '../../protocol/sketch/errors.ts';
import { mergeFeatureSetSketches, type FeatureSetSketch } from '../../protocol/sketch/feature-set-sketch.ts';
import type { StatsMessage } from '../../protocol/messages/stats.ts';
import type { Tx } from '../db/client.ts';
import { statsRollups, statsWindows } from '../db/schema.ts';
import { bucketStart, isoUtc, type Granularity } from './buckets.ts';
import { rowsByKey } from './rows-by-key.ts';

export interface StatsItem {
  deviceId: string;
  message: StatsMessage;
  modelVersionId: number;
  cohorts: string[];
}

type Scope = 'device' | 'cohort' | 'fleet';
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

const INSERT_CHUNK = 200;
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
  const fresh: StatsItem[] = [];
  for (let i = 0; i < items.length; i += INSERT_CHUNK) {
    const chunk = items.slice(i, i + INSERT_CHUNK);
    const inserted = await tx
      .insert(statsWindows)
      .values(
        chunk.map((it) => ({
          deviceId: it.deviceId,
          modelVersionId: it.modelVersionId,
          bundleId: it.message.bundleId,
          windowStart: isoUtc(it.message.windowStart),
          windowEnd: isoUtc(it.message.windowEnd),
          seq: it.message.seq,
          rows: it.message.sketch.quality.rows,
          sketch: it.message.sketch,
          receivedAt,
        })),
      )
      .onConflictDoNothing()
      .returning({ deviceId: statsWindows.deviceId, seq: statsWindows.seq });
    // The same (device, seq) twice in one chunk: only the first insert wins, and only it is rolled up.
    const added = new Set(inserted.map((r) => `${r.deviceId}\u0000${r.seq}`));
    for (const it of chunk) {
      const k = `${it.deviceId}\u0000${it.message.seq}`;
      if (added.delete(k)) fresh.push(it);
    }
  }

  const acc = new Map<string, RollupAcc>();
  for (const it of fresh) {
    const scopes: Array<[Scope, string]> = [['device', it.deviceId], ...it.cohorts.map((c): [Scope, string] => ['cohort', c]), ['fleet', FLEET_KEY]];
    for (const granularity of GRANULARITIES) {
      const bucket = bucketStart(it.message.windowStart, granularity);
      for (const [scope, key] of scopes) {
        const id = { scope, key, modelVersionId: it.modelVersionId, granularity, bucketStart: bucket };
        const k = rollupKey(id);
        const cur = acc.get(k);
        if (!cur) acc.set(k, { ...id, windows: 1, rows: it.message.sketch.quality.rows, sketch: it.message.sketch });
        else {
          cur.windows++;
          cur.rows += it.message.sketch.quality.rows;
          cur.sketch = mergeFeatureSetSketches(cur.sketch, it.message.sketch);
        }
      }
    }
  }
  const layoutResets = await upsertRollups(tx, [...acc.values()], receivedAt);
  return { stored: fresh.length, duplicates: items.length - fresh.length, layoutResets };
}

async function upsertRollups(tx: Tx, rollups: RollupAcc[], updatedAt: string): Promise<number> {
  let resets = 0;
  for (let i = 0; i < rollups.length; i += INSERT_CHUNK) {
    const chunk = rollups.slice(i, i + INSERT_CHUNK);
    const t = statsRollups;
    const found = await rowsByKey(tx, t, [t.scope, t.key, t.modelVersionId, t.granularity, t.bucketStart], chunk.map((r) => [r.scope, r.key, r.modelVersionId, r.granularity, r.bucketStart]));
    const existing = found.map((r) => ({
      scope: r.scope as Scope,
      key: r.key as string,
      modelVersionId: r.model_version_id as number,
      granularity: r.granularity as Granularity,
      bucketStart: r.bucket_start as string,
      windows: r.windows as number,
      rows: r.rows as number,
      sketch: JSON.parse(r.sketch as string) as FeatureSetSketch,
    }));
    const byKey = new Map(existing.map((r) => [rollupKey(r), r]));
    const values = chunk.map((r) => {
      const old = byKey.get(rollupKey(r));
      if (!old) return { ...r, updatedAt };
      try {
        return { ...r, windows: old.windows + r.windows, rows: old.rows + r.rows, sketch: mergeFeatureSetSketches(old.sketch, r.sketch), updatedAt };
      } catch (err) {
        if (!(err instanceof SketchMismatchError)) throw err;
        resets++;
        return { ...r, updatedAt };
      }
    });
    await tx
      .insert(t)
      .values(values)
      .onConflictDoUpdate({
        target: [t.scope, t.key, t.modelVersionId, t.granularity, t.bucketStart],
        set: { windows: sql`excluded.windows`, rows: sql`excluded.rows`, sketch: sql`excluded.sketch`, updatedAt: sql`excluded.updated_at` },
      });
  }
  return resets;
}

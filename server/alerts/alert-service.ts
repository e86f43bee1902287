// Drift alerts: a new drift opens one (at most one open per cohort and model version, enforced by a
// partial unique index so a second replica cannot duplicate it), a changed set of drifted features
// updates it, a clean evaluation closes it. Every transition goes to the audit log (the event log) and,
// with `notify`, to the webhook outbox (deliveries.ts) in the same transaction.
import { and, desc, eq } from 'drizzle-orm';
import type { FeatureDriftResult } from '../../protocol/drift/evaluate.ts';
import { P_VALUE_METHODS } from '../../protocol/drift/config.ts';
import { recordAudit } from '../audit/audit-log.ts';
import { recordEvent } from '../events/event-log.ts';
import { randomId } from '../auth/secrets.ts';
import type { Db, Tx } from '../db/client.ts';
import { alerts, models, modelVersions } from '../db/schema.ts';
import { formatRef } from '../models/model-ref.ts';
import { enqueueDelivery } from './deliveries.ts';

export const ALERT_ACTOR = 'system:drift-monitor';

type AlertRow = typeof alerts.$inferSelect;
export type AlertFeature = AlertRow['features'][number];

export interface AlertView {
  id: string;
  kind: 'drift';
  model: string;
  cohort: string;
  status: 'open' | 'closed';
  feature: string;
  score: number | null;
  threshold: number;
  features: AlertFeature[];
  window: { start: string; end: string };
  openedAt: string;
  updatedAt: string;
  closedAt: string | null;
}

export type AlertTransition = 'opened' | 'updated' | 'closed';

function view(row: AlertRow, model: string): AlertView {
  return {
    id: row.id,
    kind: row.kind,
    model,
    cohort: row.cohort,
    status: row.status,
    feature: row.feature,
    score: row.score,
    threshold: row.threshold,
    features: row.features,
    window: { start: row.windowStart, end: row.windowEnd },
    openedAt: row.openedAt,
    updatedAt: row.updatedAt,
    closedAt: row.closedAt,
  };
}

/** How far past its threshold a drifted result is (≥ 1): threshold/p for tests, distance/threshold otherwise. */
function severity(f: AlertFeature): number {
  if (f.score === null) return 0;
  return P_VALUE_METHODS.has(f.method as never) ? f.threshold / Math.max(f.score, Number.MIN_VALUE) : f.score / f.threshold;
}

export function driftedOf(features: FeatureDriftResult[], outputs: FeatureDriftResult[]): AlertFeature[] {
  const pick = (kind: 'input' | 'output') => (r: FeatureDriftResult) => ({ feature: r.feature, kind, method: r.method, score: r.score, threshold: r.threshold });
  return [...features.filter((f) => f.drifted).map(pick('input')), ...outputs.filter((f) => f.drifted).map(pick('output'))];
}

/**
 * Applies one evaluation to the alert state of (cohort, version). `drifted` empty and `evaluated`
 * true (some feature had enough data) is a recovery; with nothing evaluated the state stays as is.
 * With `notify` (an alert webhook is configured) each transition enqueues its webhook delivery in `tx`.
 */
export async function applyDriftVerdict(
  tx: Tx,
  input: { cohort: string; modelVersionId: number; model: string; drifted: AlertFeature[]; evaluated: boolean; window: { start: string; end: string }; notify?: boolean },
  now = new Date(),
): Promise<{ transition: AlertTransition | null; alert: AlertView | null }> {
  const at = now.toISOString();
  const done = async (transition: AlertTransition, alert: AlertView) => {
    if (input.notify) await enqueueDelivery(tx, { event: `alert.${transition}`, at, alert });
    if (transition !== 'updated') {
      // input.model is `name@N`.
      const cut = input.model.lastIndexOf('@');
      await recordEvent(tx, transition === 'opened' ? 'alert.opened' : 'alert.closed', alert.id, {
        alertId: alert.id,
        cohort: alert.cohort,
        model: input.model.slice(0, cut),
        version: Number(input.model.slice(cut + 1)),
      });
    }
    return { transition, alert };
  };
  const open = await tx.query.alerts.findFirst({
    where: and(eq(alerts.kind, 'drift'), eq(alerts.cohort, input.cohort), eq(alerts.modelVersionId, input.modelVersionId), eq(alerts.status, 'open')),
  });
  if (input.drifted.length) {
    const worst = input.drifted.reduce((a, b) => (severity(b) > severity(a) ? b : a));
    const fields = { features: input.drifted, feature: worst.feature, score: worst.score, threshold: worst.threshold, windowStart: input.window.start, windowEnd: input.window.end, updatedAt: at };
    if (!open) {
      const id = randomId('alt', 8);
      const inserted = await tx
        .insert(alerts)
        .values({ id, kind: 'drift', modelVersionId: input.modelVersionId, cohort: input.cohort, status: 'open', openedAt: at, ...fields })
        .onConflictDoNothing()
        .returning();
      if (inserted.length) {
        await recordAudit(tx, ALERT_ACTOR, 'alert.open', id, { model: input.model, cohort: input.cohort, features: input.drifted.map((f) => f.feature), window: input.window });
        return done('opened', view(inserted[0], input.model));
      }
      return { transition: null, alert: null }; // another replica opened it a moment ago
    }
    const before = open.features.map((f) => f.feature).sort().join(',');
    const after = input.drifted.map((f) => f.feature).sort().join(',');
    const [row] = await tx.update(alerts).set(fields).where(and(eq(alerts.id, open.id), eq(alerts.status, 'open'))).returning();
    if (!row) return { transition: null, alert: null };
    if (before === after) return { transition: null, alert: view(row, input.model) };
    await recordAudit(tx, ALERT_ACTOR, 'alert.update', open.id, { features: input.drifted.map((f) => f.feature), window: input.window });
    return done('updated', view(row, input.model));
  }
  if (open && input.evaluated) {
    const [row] = await tx
      .update(alerts)
      .set({ status: 'closed', closedAt: at, updatedAt: at, windowEnd: input.window.end })
      .where(and(eq(alerts.id, open.id), eq(alerts.status, 'open')))
      .returning();
    if (!row) return { transition: null, alert: null }; // closed concurrently
    await recordAudit(tx, ALERT_ACTOR, 'alert.close', open.id, { model: input.model, cohort: input.cohort, window: input.window });
    return done('closed', view(row, input.model));
  }
  return { transition: null, alert: open ? view(open, input.model) : null };
}

export async function listAlerts(db: Db, filter: { status?: 'open' | 'closed'; limit: number; offset?: number }): Promise<AlertView[]> {
  const rows = await db
    .select({ alert: alerts, name: models.name, version: modelVersions.version })
    .from(alerts)
    .innerJoin(modelVersions, eq(modelVersions.id, alerts.modelVersionId))
    .innerJoin(models, eq(models.id, modelVersions.modelId))
    .where(filter.status ? eq(alerts.status, filter.status) : undefined)
    .orderBy(desc(alerts.openedAt))
    .limit(filter.limit)
    .offset(filter.offset ?? 0);
  return rows.map((r) => view(r.alert, formatRef(r.name, r.version)));
}

/** Open alerts as (cohort, version) pairs, so the monitor re-evaluates them even when their windows went quiet. */
export async function openAlertPairs(tx: Tx): Promise<Array<{ cohort: string; modelVersionId: number }>> {
  return tx.select({ cohort: alerts.cohort, modelVersionId: alerts.modelVersionId }).from(alerts).where(eq(alerts.status, 'open'));
}

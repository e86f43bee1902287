// Fleet-level Prometheus gauges, computed from the database at scrape time (so every replica reports
// the same numbers) and with bounded cardinality: no series per device. Drifted features are per
// (cohort, model version) — as many series as pairs evaluated in the last FRESH_MS. Monitoring data
// lost on the devices is by kind only (three series), summed over the fleet.
import { and, eq, gte, isNotNull, sql } from 'drizzle-orm';
import { Gauge } from 'prom-client';
import type { Db } from '../db/client.ts';
import { alerts, devices, driftEvaluations, models, modelVersions, telemetryLast, telemetryRollups } from '../db/schema.ts';
import { bucketStart } from '../ingest/buckets.ts';
import { FLEET_KEY } from '../ingest/stats-writer.ts';
import type { Metrics } from '../metrics.ts';
import { totalsOf } from './telemetry-service.ts';

const RATE_WINDOW_MS = 5 * 60_000;
const FRESH_MS = 2 * 3_600_000;

export class FleetMetrics {
  constructor(db: Db, metrics: Metrics) {
    const registers = [metrics.registry];
    new Gauge({
      name: 'flotilla_devices_online',
      help: 'Approved devices whose broker session is up (status topic)',
      registers,
      async collect() {
        const [r] = await db.select({ n: sql<number>`count(*)` }).from(devices).where(and(eq(devices.online, true), eq(devices.status, 'approved')));
        this.set(r.n);
      },
    });
    // prom-client starts every collect() of a scrape in the same tick: the three share the query in flight.
    let inflight: Promise<ReturnType<typeof totalsOf>> | null = null;
    const fleet = () =>
      (inflight ??= db
        .select()
        .from(telemetryRollups)
        .where(and(eq(telemetryRollups.scope, 'fleet'), eq(telemetryRollups.key, FLEET_KEY), gte(telemetryRollups.bucketStart, bucketStart(Date.now() - RATE_WINDOW_MS, 'minute'))))
        .then(totalsOf)
        .finally(() => {
          inflight = null;
        }));
    new Gauge({
      name: 'flotilla_fleet_inferences_per_second',
      help: 'Fleet inference rate over the last 5 minutes of telemetry',
      registers,
      async collect() {
        this.set((await fleet()).ratePerSecond ?? 0);
      },
    });
    new Gauge({
      name: 'flotilla_fleet_errors_per_second',
      help: 'Fleet inference errors per second over the last 5 minutes of telemetry',
      registers,
      async collect() {
        this.set((await fleet()).errorsPerSecond ?? 0);
      },
    });
    new Gauge({
      name: 'flotilla_fleet_error_ratio',
      help: 'Failed share of fleet inference requests over the last 5 minutes (errors / (inferences + errors))',
      registers,
      async collect() {
        this.set((await fleet()).errorRatio ?? 0);
      },
    });
    new Gauge({
      name: 'flotilla_fleet_monitoring_lost',
      help: 'Monitoring data lost on the devices over the last 5 minutes of telemetry, by kind: outbox_dropped (oldest outbox messages dropped at the size bound), outbox_corrupt (unreadable outbox files skipped), stats_dropped (prediction samples dropped by the full stats queue)',
      labelNames: ['kind'] as const,
      registers,
      async collect() {
        const lost = (await fleet()).monitoringLost;
        this.set({ kind: 'outbox_dropped' }, lost?.outboxDropped ?? 0);
        this.set({ kind: 'outbox_corrupt' }, lost?.outboxCorrupt ?? 0);
        this.set({ kind: 'stats_dropped' }, lost?.statsDropped ?? 0);
      },
    });
    new Gauge({
      name: 'flotilla_fleet_outbox_pending_messages',
      help: "Messages waiting in the devices' outboxes (sum of each device's latest report of the last 2 hours)",
      registers,
      async collect() {
        const since = new Date(Date.now() - FRESH_MS).toISOString();
        const [r] = await db
          .select({ n: sql<number | null>`sum(${telemetryLast.outboxPending})` })
          .from(telemetryLast)
          .where(and(isNotNull(telemetryLast.outboxPending), gte(telemetryLast.at, since)));
        this.set(r.n ?? 0);
      },
    });
    new Gauge({
      name: 'flotilla_drifted_features',
      help: 'Drifted input features and outputs in the latest drift evaluation of each cohort and model version (evaluated in the last 2 hours)',
      labelNames: ['cohort', 'model'] as const,
      registers,
      async collect() {
        const since = new Date(Date.now() - FRESH_MS).toISOString();
        const latest = db
          .select({ latestId: sql<number>`max(${driftEvaluations.id})`.as('latest_id') })
          .from(driftEvaluations)
          .where(gte(driftEvaluations.at, since))
          .groupBy(driftEvaluations.cohort, driftEvaluations.modelVersionId)
          .as('latest');
        const rows = await db
          .select({ cohort: driftEvaluations.cohort, name: models.name, version: modelVersions.version, n: sql<number>`json_array_length(${driftEvaluations.driftedFeatures})` })
          .from(driftEvaluations)
          .innerJoin(latest, eq(latest.latestId, driftEvaluations.id))
          .innerJoin(modelVersions, eq(modelVersions.id, driftEvaluations.modelVersionId))
          .innerJoin(models, eq(models.id, modelVersions.modelId));
        this.reset();
        for (const r of rows) this.set({ cohort: r.cohort, model: `${r.name}@${r.version}` }, r.n);
      },
    });
    new Gauge({
      name: 'flotilla_alerts_open',
      help: 'Open alerts',
      registers,
      async collect() {
        const [r] = await db.select({ n: sql<number>`count(*)` }).from(alerts).where(eq(alerts.status, 'open'));
        this.set(r.n);
      },
    });
  }
}

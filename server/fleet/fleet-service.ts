// One read of the whole fleet for the console's fleet page: every device with its cohorts, the bundle
// it runs (model name@version), its last update failure and its own telemetry over a window. One
// request instead of one /telemetry call per device, so 10,000 devices load in one round trip.
import { sql } from 'drizzle-orm';
import { matches, parseSelector, type SelectorTerm } from '../cohorts/selector.ts';
import type { Tx } from '../db/client.ts';
import { bundles, cohorts, deviceDesired, devices, models, modelVersions } from '../db/schema.ts';
import { bucketStart } from '../ingest/buckets.ts';
import { deviceWindowTelemetry, type DeviceWindowTelemetry } from './fleet-telemetry.ts';

export interface FleetDevice {
  id: string;
  name: string | null;
  status: 'pending' | 'approved' | 'revoked';
  labels: Record<string, string>;
  online: boolean;
  lastSeen: string | null;
  enrolledAt: string;
  cohorts: string[];
  /** What the device reports it runs (null: nothing active yet). */
  active: { bundleId: string; bundleName: string; model: string; version: number } | null;
  /** What the server asked it to run. */
  desired: { bundleId: string; model: string | null; version: number | null; cohort: string | null; deploymentId: string | null } | null;
  updateState: string | null;
  lastError: { code: string; message: string; at: string } | null;
  telemetry: { ratePerSecond: number | null; errorRatio: number | null; p95: number | null };
}

interface DeviceRow {
  id: string;
  name: string | null;
  status: FleetDevice['status'];
  labels: Record<string, string>;
  online: 0 | 1;
  lastSeen: string | null;
  enrolledAt: string;
  updateState: string | null;
  active: { bundleId: string; bundleName: string; model: { name: string; version: number } } | null;
  desired: FleetDevice['desired'];
  lastError: { code: string; message: string; at: string } | null;
}

// SQLite builds the whole list as one JSON document: the client's per-row, per-column conversion
// cost ~0.1 ms a row (≈1 s for 10,000 devices here), one JSON.parse is about five times faster.
// Only the parts of `reported` the page shows are extracted (not its transition history), and of the
// desired state only its bundle, cohort and deployment with the bundle's model (not the signed manifest).
const DEVICE_LIST = sql`select json_group_array(json_object(
  'id', id, 'name', name, 'status', status, 'labels', json(labels),
  'online', online, 'lastSeen', last_seen, 'enrolledAt', created_at, 'updateState', update_state,
  'active', json_extract(reported, '$.active'), 'lastError', json_extract(reported, '$.lastError'),
  'desired', case when desired_bundle is null then null else json_object(
    'bundleId', desired_bundle, 'model', desired_model, 'version', desired_version, 'cohort', desired_cohort, 'deploymentId', desired_deployment) end
)) as list from (
  select d.*, w.bundle_id as desired_bundle, w.cohort as desired_cohort, w.deployment_id as desired_deployment, m.name as desired_model, v.version as desired_version
  from ${devices} d
  left join ${deviceDesired} w on w.device_id = d.id
  left join ${bundles} b on b.id = w.bundle_id
  left join ${modelVersions} v on v.id = b.model_version_id
  left join ${models} m on m.id = v.model_id
  order by d.created_at
)`;

/**
 * The fleet page's answer. `telemetry: false` leaves every device's telemetry null without reading the
 * rollups (the cohorts and rollouts pages show membership and versions only).
 */
export async function fleetOverview(db: Tx, windowS: number, now = new Date(), opts: { telemetry?: boolean } = {}): Promise<{ window: { start: string; end: string; seconds: number }; devices: FleetDevice[] }> {
  const start = new Date(now.getTime() - windowS * 1000);
  const [listed, cohortRows, telemetry] = await Promise.all([
    db.all<{ list: string }>(DEVICE_LIST),
    db.select().from(cohorts),
    opts.telemetry === false ? new Map<string, DeviceWindowTelemetry>() : deviceWindowTelemetry(db, bucketStart(start, 'minute')),
  ]);
  const rows = JSON.parse(listed[0]?.list ?? '[]') as DeviceRow[];
  // A cohort whose stored selector no longer parses matches nothing rather than failing the page.
  const selectors: Array<{ name: string; terms: SelectorTerm[] }> = [];
  for (const c of cohortRows) {
    try {
      selectors.push({ name: c.name, terms: parseSelector(c.selector) });
    } catch {
      // matches nothing
    }
  }
  const none: DeviceWindowTelemetry = { ratePerSecond: null, errorRatio: null, p95: null };
  const out = rows.map((d): FleetDevice => ({
    id: d.id,
    name: d.name,
    status: d.status,
    labels: d.labels,
    online: d.online === 1,
    lastSeen: d.lastSeen,
    enrolledAt: d.enrolledAt,
    cohorts: selectors.filter((s) => matches(s.terms, d.labels)).map((s) => s.name),
    active: d.active ? { bundleId: d.active.bundleId, bundleName: d.active.bundleName, model: d.active.model.name, version: d.active.model.version } : null,
    desired: d.desired,
    updateState: d.updateState,
    lastError: d.lastError ? { code: d.lastError.code, message: d.lastError.message, at: d.lastError.at } : null,
    telemetry: telemetry.get(d.id) ?? none,
  }));
  return { window: { start: start.toISOString(), end: now.toISOString(), seconds: windowS }, devices: out };
}

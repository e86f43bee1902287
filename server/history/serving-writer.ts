// Opens and closes serving intervals (`serving_history`) from a device's `reported` messages, inside the
// device-state writer's transaction. Driven by the reported active bundle, not by what was desired: a
// device that failed an update or rolled itself back keeps (or returns to) its old bundle, and history says
// so. Two indexed statements per message; the interval's deployment, cohort and starter are read from the
// desired state that gave the bundle, with no extra round trip.
import type { Tx } from '../db/client.ts';
import { runStatement, statement } from '../db/tx-statement.ts';
import type { Reported } from '../events/device-events.ts';

// Fixed texts prepared once per connection (tx-statement.ts): every `reported` message runs them.
const CLOSE_OTHER = statement('UPDATE serving_history SET ended_at = ? WHERE device_id = ? AND ended_at IS NULL AND bundle_id IS NOT ?');
// The bundle came from the device's desired state when it is the desired bundle; otherwise (the agent
// went back to a bundle it ran before) from the last interval in which it served that bundle.
// Parameters: ?1 device, ?2 bundle, ?3 model, ?4 version, ?5 counter, ?6 agent rollback (0/1), ?7 at, ?8 activatedAt.
const OPEN = statement(`WITH d AS (
    SELECT CASE WHEN dd.bundle_id = ?2 THEN dd.deployment_id ELSE (SELECT h.deployment_id FROM serving_history h WHERE h.device_id = ?1 AND h.bundle_id = ?2 ORDER BY h.id DESC LIMIT 1) END AS dep,
           CASE WHEN dd.bundle_id = ?2 THEN dd.cohort ELSE (SELECT h.cohort FROM serving_history h WHERE h.device_id = ?1 AND h.bundle_id = ?2 ORDER BY h.id DESC LIMIT 1) END AS cohort
    FROM (SELECT 1) LEFT JOIN device_desired dd ON dd.device_id = ?1)
  INSERT INTO serving_history (device_id, bundle_id, model, version, counter, cohort, deployment_id, via, started_by, started_at, activated_at)
  SELECT ?1, ?2, ?3, ?4, ?5, d.cohort, d.dep,
    CASE WHEN ?6 = 1 THEN 'agent-rollback'
         WHEN r.id IS NOT NULL THEN 'rollout'
         WHEN dep.kind = 'rollback' THEN 'rollback'
         WHEN dep.id IS NOT NULL THEN 'deployment'
         ELSE 'unknown' END,
    COALESCE(dep.created_by, r.created_by), ?7, ?8
  FROM d LEFT JOIN deployments dep ON dep.id = d.dep LEFT JOIN rollouts r ON r.id = d.dep
  WHERE NOT EXISTS (SELECT 1 FROM serving_history WHERE device_id = ?1 AND ended_at IS NULL)`);
const NOTE_FAILURE = statement(`UPDATE serving_history SET last_failure = ? WHERE device_id = ? AND ended_at IS NULL
  AND (last_failure IS NULL OR json_extract(last_failure, '$.at') IS NOT ?)`);

/** Records what `reported` says the device serves, as of `at` (server time of the message). */
export async function recordServingInTx(tx: Tx, deviceId: string, reported: Reported, at: string): Promise<void> {
  // A report that does not name its active bundle (not sent by agents; partial documents in tests) says nothing.
  if (reported.active === undefined) return;
  const active = reported.active;
  await runStatement(tx, CLOSE_OTHER, [at, deviceId, active?.bundleId ?? null]);
  if (active) {
    const agentRollback = reported.state === 'rolled_back' ? 1 : 0;
    await runStatement(tx, OPEN, [deviceId, active.bundleId, active.model.name, active.model.version, active.counter, agentRollback, at, active.activatedAt]);
  }
  // A failed attempt to replace what serves is kept on the interval it failed to end.
  const err = reported.lastError;
  if (err && (reported.state === 'failed' || reported.state === 'rolled_back')) {
    const failure = JSON.stringify({ code: err.code, message: err.message, at: err.at, ...(reported.desired ? { bundleId: reported.desired.bundleId } : {}) });
    await runStatement(tx, NOTE_FAILURE, [failure, deviceId, err.at]);
  }
}

/**
 * The reported document as stored on the device row: a `lastError` older than the activation of the bundle
 * the device now runs is history (kept on the serving interval and in the events), no longer the device's state.
 */
export function withoutStaleError<T extends Reported>(reported: T): T {
  const { lastError, active, state } = reported;
  if (!lastError || !active || state === 'failed' || state === 'rolled_back') return reported;
  return Date.parse(active.activatedAt) >= Date.parse(lastError.at) ? { ...reported, lastError: null } : reported;
}

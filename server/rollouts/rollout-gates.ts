// The gates a rollout stage must pass, each measured and reported the same way: name, value,
// threshold, status and a reason. A gate without enough data `waits` (it never passes for lack of
// data); the ticker ends a stage that waits past its limit. `no-data` is a gate that still has nothing
// to measure once the bake is over (the latency gate on idle devices): never a pass; it holds the stage
// until the stage limit like `waiting` when the rollout has one, and is recorded, not waited on, when it
// has none (the data may never come: waiting forever would hang the rollout). `skipped` is a gate that
// does not apply (e.g. a regressor-only gate on a classifier), said with its reason, never a silent pass.
import { and, eq, gte, inArray, lt, or, sql } from 'drizzle-orm';
import { ShadowReport, type ShadowOutput } from '../../protocol/messages/shadow.ts';
import type { Tx } from '../db/client.ts';
import { createLatencyHistogram, latencySummary, mergeJoinedLatencies, mergeLatencyHistograms, type LatencyHistogram } from '../../protocol/sketch/latency-histogram.ts';
import { alerts, bundles, devices, telemetry, telemetryRollups } from '../db/schema.ts';
import type { RolloutGates } from '../jobs/retrain-policy.ts';
import { inIds } from '../db/in-ids.ts';
import type { StageAggregate } from './stage-aggregate.ts';
import { readStageRollups, worstLatency, type StageRollups, type StageWindow } from './stage-rollups.ts';

export type GateStatus = 'pass' | 'fail' | 'waiting' | 'no-data' | 'skipped';

export interface GateResult {
  name: string;
  /** What was measured (null: no data yet). */
  value: number | null;
  /** The limit, with its direction: `≥ 0.95`, `≤ 1.5`. */
  threshold: string;
  status: GateStatus;
  reason: string;
}

export interface StageDevices {
  /** Devices of the stage still counted (superseded and timed-out ones left out). */
  ids: string[];
  active: string[];
  failed: string[];
  /** When each active device activated the bundle, by its own clock (its telemetry's); NaN: unknown. */
  switchedAt: ReadonlyMap<string, number>;
}

const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(4).replace(/0+$/, ''));

/** The gate that holds the last stage until every device is done (the rollout's completion rule). */
export const STAGE_COMPLETE = 'stageComplete';

/**
 * Failed updates, update success ratio, error rate, latency regression and drift for a switched stage;
 * on the last stage (`last`) also `stageComplete`: the rollout succeeds only once every counted device of
 * it reports the bundle active or failed — the success ratio alone would end it with devices still
 * updating. Past a stage limit the ticker times the rest out and counts them as failed updates.
 */
export async function stageGates(
  tx: Tx,
  o: { gates: RolloutGates; stage: StageDevices; bundleId: string; cohort: string; stageStartedAt: string; rolloutCreatedAt: string; hasPrevious: boolean; now: Date; bakeS: number; last: boolean; aggregate?: StageAggregate },
): Promise<GateResult[]> {
  const { gates, stage } = o;
  const out: GateResult[] = [];
  const n = stage.ids.length;
  out.push({
    name: 'failedUpdates',
    value: stage.failed.length,
    threshold: `≤ ${gates.maxFailedUpdates}`,
    status: stage.failed.length > gates.maxFailedUpdates ? 'fail' : 'pass',
    reason: stage.failed.length ? `failed: ${stage.failed.join(', ')}` : 'no failed update',
  });
  const pending = n - stage.active.length - stage.failed.length;
  const ratio = n ? stage.active.length / n : null;
  out.push({
    name: 'updateSuccessRatio',
    value: ratio,
    threshold: `≥ ${fmt(gates.minUpdateSuccessRatio)}`,
    status: ratio === null ? 'waiting' : ratio >= gates.minUpdateSuccessRatio ? 'pass' : pending > 0 ? 'waiting' : 'fail',
    reason: n === 0 ? 'the stage has no devices' : `${stage.active.length} of ${n} active${pending ? `, ${pending} not done` : ''}`,
  });
  if (o.last) {
    const done = new Set([...stage.active, ...stage.failed]);
    const updating = stage.ids.filter((id) => !done.has(id));
    out.push({
      name: STAGE_COMPLETE,
      value: updating.length,
      threshold: '= 0 devices updating',
      status: updating.length ? 'waiting' : 'pass',
      reason: updating.length ? `still updating: ${updating.slice(0, 5).join(', ')}${updating.length > 5 ? `, … (${updating.length})` : ''}` : `all ${n} devices active or failed`,
    });
  }
  const window = stageWindow(o);
  // One grouped read of the stage's device rollups for both gates (stage-rollups.ts), not a telemetry summary per
  // device; with the rollout's stage aggregate only what changed since the last tick (stage-aggregate.ts).
  const rollups = window ? await readStageRollups(tx, stage.ids, window, o.aggregate) : null;
  // Active devices without a whole minute on the candidate yet: their raw reports served wholly on it.
  const leading = window ? await recentReports(tx, { ...o, cuts: window.cuts }) : new Map<string, ReportsOn>();
  if (gates.maxErrorRate !== undefined) {
    let errors = rollups!.errors;
    let total = rollups!.inferences + rollups!.errors;
    for (const r of leading.values()) {
      errors += r.errors;
      total += r.inferences + r.errors;
    }
    const rate = total > 0 ? errors / total : null;
    out.push({
      name: 'errorRate',
      value: rate,
      threshold: `≤ ${fmt(gates.maxErrorRate)}`,
      status: rate === null ? 'waiting' : rate > gates.maxErrorRate ? 'fail' : 'pass',
      reason: rate === null ? 'no requests served on the new bundle yet' : `${errors} errors in ${total} requests`,
    });
  }
  if (gates.maxLatencyRatio !== null) out.push(await latencyGate(tx, { ...o, maxRatio: gates.maxLatencyRatio, leading, rollups }));
  if (gates.drift) out.push(await driftGate(tx, o));
  return out;
}

const MINUTE = 60_000;
/**
 * How long after its switch a device's reports may still hold requests the previous bundle served: a report
 * covers the interval before its `at` (the agent's telemetry interval, 10 s by default), and lands in the
 * minute bucket of its `at`. Intervals up to this are counted exactly; longer ones may mix in a little.
 */
const REPORT_SPAN_MS = 60_000;

/**
 * Per active device, the first minute bucket that holds only requests served on the candidate: the first
 * whole minute after its switch (and its reports' span), and never one that began before the stage did.
 * A device counts from its rollups once that minute is over; until then (no whole minute yet) it is measured
 * from its raw reports served wholly on the candidate (latencyGate), so the gate measures within seconds of a switch.
 */
export function candidateCuts(o: { stage: Pick<StageDevices, 'active' | 'switchedAt'>; stageStartedAt: string; now: Date }): Map<string, number> {
  const stageMinute = Math.ceil(Date.parse(o.stageStartedAt) / MINUTE) * MINUTE;
  const cuts = new Map<string, number>();
  for (const id of o.stage.active) {
    const switched = switchTime(o, id);
    const cut = Math.max(stageMinute, Math.ceil((switched + REPORT_SPAN_MS) / MINUTE) * MINUTE);
    if (o.now.getTime() >= cut + MINUTE) cuts.set(id, cut);
  }
  return cuts;
}

/** When a device switched (an unreadable activation time: when the stage started). */
const switchTime = (o: { stage: Pick<StageDevices, 'switchedAt'>; stageStartedAt: string }, id: string) => {
  const t = o.stage.switchedAt.get(id) ?? Number.NaN;
  return Number.isNaN(t) ? Date.parse(o.stageStartedAt) : t;
};

/**
 * The window of the stage rollups the error-rate and latency gates read (null: neither gate is on): each active
 * device from its cut (candidateCuts); `from` (the stage's first minute, at least the last minute) bounds what
 * the stage aggregate keeps.
 */
export function stageWindow(o: { gates: RolloutGates; stage: Pick<StageDevices, 'active' | 'switchedAt'>; stageStartedAt: string; hasPrevious: boolean; now: Date }): StageWindow | null {
  const latencyOn = o.gates.maxLatencyRatio !== null && o.hasPrevious;
  if (o.gates.maxErrorRate === undefined && !latencyOn) return null;
  const windowS = Math.max(60, Math.ceil((o.now.getTime() - Date.parse(o.stageStartedAt)) / 1000));
  return { from: new Date(o.now.getTime() - windowS * 1000), cuts: candidateCuts(o), end: o.now };
}

async function latencyGate(
  tx: Tx,
  o: { stage: StageDevices; bundleId: string; cohort: string; rolloutCreatedAt: string; stageStartedAt: string; bakeS: number; hasPrevious: boolean; now: Date; maxRatio: number; leading: ReadonlyMap<string, ReportsOn>; rollups: StageRollups | null },
): Promise<GateResult> {
  const threshold = `≤ ${fmt(o.maxRatio)} × previous p95`;
  if (!o.hasPrevious || !o.rollups) return { name: 'latencyRegression', value: null, threshold, status: 'skipped', reason: 'the cohort ran no bundle before: nothing to compare with' };
  // The baseline: the cohort's hour before the rollout. The minute bucket the rollout started in also fills
  // with the new bundle's first requests, so it is read from the raw reports sent before the rollout instead.
  const created = Date.parse(o.rolloutCreatedAt);
  const createdMinute = Math.floor(created / 60_000) * 60_000;
  const beforeRaw = await reportsOn(tx, { ids: o.stage.ids, from: new Date(createdMinute).toISOString(), to: o.rolloutCreatedAt });
  const before = latencySummary(
    [...beforeRaw.values()].map((r) => r.latency).reduce(mergeLatencyHistograms, await cohortLatency(tx, o.cohort, new Date(createdMinute - 3_600_000), new Date(createdMinute))),
  );
  // The stage's active devices' minute rollups, read with the error rate's (stage-rollups.ts), and the raw
  // reports of those without a whole minute on the candidate yet.
  const worst = worstLatency(o.stage.active, o.rollups, new Map([...o.leading].map(([id, r]) => [id, r.latency])));
  if (before.p95 === null || !worst) {
    const missing = [before.p95 === null ? 'no requests in the hour before the rollout (no baseline)' : null, worst ? null : 'no requests served on the new bundle'].filter(Boolean).join(' and ');
    // During the bake the data may still come; after it the gate says it could not measure.
    const baked = o.now.getTime() - Date.parse(o.stageStartedAt) >= o.bakeS * 1000;
    return { name: 'latencyRegression', value: null, threshold, status: baked ? 'no-data' : 'waiting', reason: baked ? `${missing}: latency not measured (a stage limit makes this fail the stage; --max-latency-ratio off turns the gate off)` : missing };
  }
  const ratio = worst.p95 / before.p95;
  return { name: 'latencyRegression', value: ratio, threshold, status: ratio > o.maxRatio ? 'fail' : 'pass', reason: `worst p95 ${worst.p95.toFixed(2)} ms (${worst.id}) vs ${before.p95.toFixed(2)} ms before` };
}

/** A device's raw telemetry reports, merged: requests served and failed, and their latency. */
export interface ReportsOn {
  inferences: number;
  errors: number;
  latency: LatencyHistogram;
}

/**
 * Raw reports of the stage's active devices without a cut (no whole minute on the candidate yet), served
 * wholly on it: since a little before the earliest of their switches (a report's `at` and the switch time
 * come from the device's clock, so the bound is loose; "wholly on" is what decides), never before the stage.
 */
function recentReports(tx: Tx, o: { stage: StageDevices; cuts: ReadonlyMap<string, number>; bundleId: string; stageStartedAt: string; now: Date }): Promise<Map<string, ReportsOn>> {
  const recent = o.stage.active.filter((id) => !o.cuts.has(id));
  const from = Math.max(Date.parse(o.stageStartedAt), Math.min(o.now.getTime(), ...recent.map((id) => switchTime(o, id))) - REPORT_SPAN_MS);
  return reportsOn(tx, { ids: recent, whollyOn: o.bundleId, from: new Date(from).toISOString(), to: o.now.toISOString() });
}

/**
 * The devices' raw telemetry reports in [from, to), merged per device. With `whollyOn`, only reports served
 * wholly on that bundle: the report and the one before it (seq − 1) name it active, so the interval began
 * after the switch. Bounded: callers keep [from, to) within a few minutes, read through the time index
 * (`indexed by telemetry_at`): the planner chose the (device, seq) index and read every stored report of
 * every stage device to find that minute's (1,000 devices × 70 reports: 0.4 s per read, growing with retention).
 * A row per device, its histograms joined by SQLite (as the rollup reads, stage-rollups.ts).
 */
async function reportsOn(tx: Tx, o: { ids: string[]; whollyOn?: string; from: string; to: string }): Promise<Map<string, ReportsOn>> {
  const out = new Map<string, ReportsOn>();
  if (o.from >= o.to || !o.ids.length) return out;
  const inStage = inIds(sql`t.device_id`, o.ids);
  const columns = sql`t.device_id, sum(t.inferences) as inferences, sum((select coalesce(sum(value), 0) from json_each(t.errors))) as errors, group_concat(t.latency, ',') as latency`;
  const rows = await tx.all<{ device_id: string; inferences: number | null; errors: number | null; latency: string }>(
    o.whollyOn
      ? sql`select ${columns} from ${telemetry} t indexed by telemetry_at join ${telemetry} p on p.device_id = t.device_id and p.seq = t.seq - 1
            where ${inStage} and t.at >= ${o.from} and t.at < ${o.to} and t.active_bundle_id = ${o.whollyOn} and p.active_bundle_id = ${o.whollyOn} group by t.device_id`
      : sql`select ${columns} from ${telemetry} t indexed by telemetry_at where ${inStage} and t.at >= ${o.from} and t.at < ${o.to} group by t.device_id`,
  );
  for (const r of rows) out.set(r.device_id, { inferences: Number(r.inferences ?? 0), errors: Number(r.errors ?? 0), latency: mergeJoinedLatencies(r.latency) });
  return out;
}

/** Merged latency of a cohort's minute rollups that start in [start, end) (devices: stage-rollups.ts). */
async function cohortLatency(tx: Tx, cohort: string, start: Date, end: Date): Promise<LatencyHistogram> {
  const t = telemetryRollups;
  const rows = await tx
    .select({ latency: t.latency })
    .from(t)
    .where(and(eq(t.scope, 'cohort'), eq(t.key, cohort), gte(t.bucketStart, start.toISOString()), lt(t.bucketStart, end.toISOString())));
  return rows.reduce((h, r) => mergeLatencyHistograms(h, r.latency), createLatencyHistogram());
}

async function driftGate(tx: Tx, o: { bundleId: string; cohort: string; stageStartedAt: string }): Promise<GateResult> {
  const b = await tx.query.bundles.findFirst({ columns: { modelVersionId: true }, where: eq(bundles.id, o.bundleId) });
  const rows = b
    ? await tx
        .select({ id: alerts.id, feature: alerts.feature })
        .from(alerts)
        .where(and(eq(alerts.modelVersionId, b.modelVersionId), eq(alerts.cohort, o.cohort), or(eq(alerts.status, 'open'), gte(alerts.openedAt, o.stageStartedAt))))
    : [];
  return {
    name: 'drift',
    value: rows.length,
    threshold: '= 0 alerts',
    status: rows.length ? 'fail' : 'pass',
    reason: rows.length ? `drift alert ${rows.map((r) => `${r.id} (${r.feature})`).join(', ')} on the new version` : 'no drift alert for the new version on the cohort',
  };
}

/** The shadow reports of the devices that evaluate this rollout's candidate. */
export async function shadowReports(tx: Tx, rolloutId: string, candidate: string, deviceIds: string[]): Promise<Map<string, ShadowReport>> {
  const rows = deviceIds.length ? await tx.select({ id: devices.id, reported: devices.reported }).from(devices).where(inArray(devices.id, deviceIds)) : [];
  const out = new Map<string, ShadowReport>();
  for (const r of rows) {
    const parsed = ShadowReport.safeParse((r.reported as { shadow?: unknown } | null)?.shadow);
    if (parsed.success && parsed.data.rolloutId === rolloutId && parsed.data.bundleId === candidate) out.set(r.id, parsed.data);
  }
  return out;
}

/** Shadow gates over the devices' totals: candidate loaded, requests compared, agreement, MAD, latency ratio, errors. */
export function shadowGates(gates: RolloutGates, reports: Map<string, ShadowReport>, deviceCount: number): GateResult[] {
  const out: GateResult[] = [];
  const failedLoads = [...reports].filter(([, r]) => r.state === 'failed');
  const shadowing = [...reports.values()].filter((r) => r.state === 'shadowing').length;
  out.push({
    name: 'shadowLoaded',
    value: shadowing,
    threshold: `= ${deviceCount} devices`,
    status: failedLoads.length ? 'fail' : shadowing === deviceCount ? 'pass' : 'waiting',
    reason: failedLoads.length ? failedLoads.map(([id, r]) => `${id}: ${r.reason ?? 'failed'}`).join('; ') : `${reports.size} of ${deviceCount} devices reported`,
  });
  let compared = 0;
  let errors = 0;
  let rows = 0;
  let matches = 0;
  let values = 0;
  let absDiff = 0;
  let worst: { id: string; ratio: number; c: number; a: number } | null = null;
  const perOutput = new Map<string, { rows: number; matches: number }>();
  for (const [id, r] of reports) {
    const t = r.total;
    compared += t.compared;
    errors += t.candidateErrors;
    for (const o of t.outputs as ShadowOutput[]) {
      if (o.kind === 'top1') {
        rows += o.rows;
        matches += o.matches;
        const p = perOutput.get(o.output) ?? { rows: 0, matches: 0 };
        p.rows += o.rows;
        p.matches += o.matches;
        perOutput.set(o.output, p);
      } else {
        values += o.values;
        absDiff += o.absDiffSum;
      }
    }
    if (t.latencyMs && t.latencyMs.active.p95 > 0) {
      const ratio = t.latencyMs.candidate.p95 / t.latencyMs.active.p95;
      if (!worst || ratio > worst.ratio) worst = { id, ratio, c: t.latencyMs.candidate.p95, a: t.latencyMs.active.p95 };
    }
  }
  const enough = compared >= gates.minShadowCompared;
  out.push({
    name: 'shadowCompared',
    value: compared,
    threshold: `≥ ${gates.minShadowCompared} requests`,
    status: enough ? 'pass' : 'waiting',
    reason: enough ? `${compared} requests compared` : `${compared} of ${gates.minShadowCompared} requests compared so far`,
  });
  // Agreement: the worst output of a multi-output classifier decides.
  let agreement: number | null = null;
  let weakest = '';
  for (const [name, p] of perOutput) {
    if (!p.rows) continue;
    const a = p.matches / p.rows;
    if (agreement === null || a < agreement) [agreement, weakest] = [a, name];
  }
  out.push(
    rows === 0
      ? { name: 'agreement', value: null, threshold: `≥ ${fmt(gates.minAgreement)}`, status: values > 0 ? 'skipped' : 'waiting', reason: values > 0 ? 'no classifier output (see meanAbsDiff)' : 'nothing compared yet' }
      : {
          name: 'agreement',
          value: agreement,
          threshold: `≥ ${fmt(gates.minAgreement)}`,
          status: agreement! < gates.minAgreement && enough ? 'fail' : !enough ? 'waiting' : 'pass',
          reason: `top-1 matched on ${matches} of ${rows} rows${perOutput.size > 1 ? ` (weakest output ${weakest})` : ''}`,
        },
  );
  const mad = values ? absDiff / values : null;
  if (gates.maxMeanAbsDiff !== undefined || values > 0) {
    out.push(
      gates.maxMeanAbsDiff === undefined
        ? { name: 'meanAbsDiff', value: mad, threshold: 'not set', status: 'skipped', reason: 'set gates.maxMeanAbsDiff to gate regressor outputs' }
        : mad === null
          ? { name: 'meanAbsDiff', value: null, threshold: `≤ ${fmt(gates.maxMeanAbsDiff)}`, status: rows > 0 ? 'skipped' : 'waiting', reason: rows > 0 ? 'no regressor output' : 'nothing compared yet' }
          : { name: 'meanAbsDiff', value: mad, threshold: `≤ ${fmt(gates.maxMeanAbsDiff)}`, status: !enough ? 'waiting' : mad > gates.maxMeanAbsDiff ? 'fail' : 'pass', reason: `over ${values} values` },
    );
  }
  out.push(
    worst
      ? {
          name: 'shadowLatencyRatio',
          value: worst.ratio,
          threshold: `≤ ${fmt(gates.maxShadowLatencyRatio)} × active p95`,
          status: !enough ? 'waiting' : worst.ratio > gates.maxShadowLatencyRatio ? 'fail' : 'pass',
          reason: `worst device ${worst.id}: candidate p95 ${worst.c} ms vs active ${worst.a} ms`,
        }
      : { name: 'shadowLatencyRatio', value: null, threshold: `≤ ${fmt(gates.maxShadowLatencyRatio)} × active p95`, status: 'waiting', reason: 'nothing compared yet' },
  );
  const given = compared + errors;
  const errorRate = given ? errors / given : null;
  out.push({
    name: 'shadowErrorRate',
    value: errorRate,
    threshold: `≤ ${fmt(gates.maxShadowErrorRate)}`,
    status: errorRate === null ? 'waiting' : errorRate > gates.maxShadowErrorRate && given >= gates.minShadowCompared ? 'fail' : !enough ? 'waiting' : 'pass',
    reason: `${errors} candidate errors in ${given} requests`,
  });
  return out;
}

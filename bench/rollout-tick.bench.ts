// Rollout ticks and fleet gauges at 10,000 devices per stage (issue 16): an in-process control plane on
// a libsql file, N approved devices provisioned in bulk (bulk-provision.ts), a cohort deployment of v1
// through the API and every device reporting it active, then an hour of per-minute telemetry before a
// rollout and the stage's minutes since, written through ingest's own writer (writeTelemetry: raw
// reports, per-minute device/cohort/fleet rollups, latest resources), and a rollout of v2 whose single
// stage holds the whole cohort with every device's update state reported (a few failed). Timed, each
// REPEAT times (median): one full tick of that rollout with every gate on (failed updates, success
// ratio, stage completion, error rate, latency regression, drift), a `/metrics` scrape, and what the
// console's fleet, cohorts and rollouts pages and `flotilla rollouts status` load, and those console pages
// in Chromium (console-pages.ts: navigation until rendered, a filter keystroke). The bake is long,
// so every tick does the same work (verdict "baking") and none moves the rollout.
// Baseline in the same run: the same at the first size (BENCH_TICK_DEVICES, default "1000,10000"),
// and for the first size a bare `select count(*)` over the telemetry table.
// BENCH_TICK_HISTORY_MIN (default 60) minutes before the rollout, BENCH_TICK_STAGE_MIN (10) since;
// BENCH_TICK_REPEAT (5) timings of each; BENCH_CPU_PROFILE=<dir> profiles the last of each.
import { rm } from 'node:fs/promises';
import os from 'node:os';
import { eq, sql } from 'drizzle-orm';
import { createLatencyHistogram, recordLatency } from '../protocol/sketch/latency-histogram.ts';
import type { ReportedMessage } from '../protocol/messages/reported.ts';
import type { TelemetryMessage } from '../protocol/messages/telemetry.ts';
import type { ControlPlane } from '../server/control-plane.ts';
import { rollouts } from '../server/db/schema.ts';
import { DeviceStateWriter } from '../server/devices/device-state-writer.ts';
import { dropFleetWindowAggregate } from '../server/fleet/fleet-telemetry.ts';
import { writeTelemetry, type TelemetryItem } from '../server/ingest/telemetry-writer.ts';
import { createLogger } from '../server/logger.ts';
import { tickRollout } from '../server/rollouts/rollout-ticker.ts';
import { keepStageAggregates } from '../server/rollouts/stage-aggregate.ts';
import { startBenchPlane, twoTrustedBundles } from './bench-plane.ts';
import { bulkProvision } from './bulk-provision.ts';
import { timeConsolePages } from './console-pages.ts';
import { profiled } from './cpu-profile.ts';
import { printTable, type BenchRow } from './lib.ts';

const SIZES = (process.env.BENCH_TICK_DEVICES ?? '1000,10000').split(',').filter(Boolean).map(Number);
const HISTORY_MIN = Number(process.env.BENCH_TICK_HISTORY_MIN ?? 60);
const STAGE_MIN = Number(process.env.BENCH_TICK_STAGE_MIN ?? 10);
const REPEAT = Number(process.env.BENCH_TICK_REPEAT ?? 5);
/** BENCH_TICK_CONSOLE=0 leaves out the console pages in Chromium (console-pages.ts). */
const CONSOLE = process.env.BENCH_TICK_CONSOLE !== '0';
/** Reports per ingest transaction (ingest's adaptive batch stays within 5,000). */
const BATCH = 2000;
const load = () => os.loadavg()[0].toFixed(0);

interface BundleInfo {
  id: string;
  name: string;
  version: number;
}

export async function runRolloutTickBench(): Promise<BenchRow[]> {
  // The bench ticks the rollout itself; the scheduler would tick it concurrently.
  const { plane, dir, api } = await startBenchPlane('flotilla-tick-bench-', { FLOTILLA_SCHEDULER: 'off' });
  const logger = createLogger('silent');
  const rows: BenchRow[] = [];
  const measured = new Map<string, number>(); // `${what}` at the first size, for the later sizes' baseline
  const tell = (r: BenchRow) => {
    rows.push(r);
    console.error(`rollout-tick: ${r.benchmark}: ${r.value.toFixed(3)} ${r.unit} (baseline ${r.baselineValue?.toFixed(3)}; ${r.note})`);
  };
  try {
    const { root, bundles } = await twoTrustedBundles(api, 'tick');
    const [v1, v2]: BundleInfo[] = bundles.map((b, i) => ({ ...b, version: i + 1 }));
    const states = new DeviceStateWriter({ db: plane.db, logger, flushMs: 50 });

    for (const [k, n] of SIZES.entries()) {
      const cohort = `tick${n}`;
      const l0 = load();
      let t = performance.now();
      await api('POST', '/api/v1/cohorts', { name: cohort, selector: `fleet=${cohort}` });
      const ids = await bulkProvision({ db: plane.db, n, namePrefix: `${cohort}-`, labels: { fleet: cohort }, serverUrl: plane.httpUrl, mqttUrl: 'mqtt://127.0.0.1:1', rootPublicKey: root.publicKey });
      // What the cohort ran before the rollout: a cohort deployment of v1, every device reporting it active.
      await api('POST', '/api/v1/deployments', { bundle: v1.id, cohort });
      const before = new Date(Date.now() - (HISTORY_MIN + STAGE_MIN + 1) * 60_000);
      await Promise.all(ids.map((id) => states.reported(id, reported(v1, 1, before, 'active'), before)));
      // The stage started 20 s into a minute STAGE_MIN minutes ago and the devices switched 30 s later: each device's
      // latency is read from its rollups from the first whole minute a minute after its switch, the baseline from the
      // cohort's rollups of the hour before and the raw reports of the rollout's own minute.
      const anchor = Math.floor(Date.now() / 60_000) * 60_000;
      const stageStart = anchor - STAGE_MIN * 60_000 + 20_000;
      const reports = await writeHistory(plane, ids, cohort, { from: anchor - (HISTORY_MIN + STAGE_MIN) * 60_000, to: anchor, switchAt: stageStart, v1, v2 });
      const setupS = (performance.now() - t) / 1000;
      // A single stage over the whole cohort (the last stage, so stageComplete is on too); all gates on and passing.
      const failed = Math.max(1, Math.floor(n / 1000));
      const r = await api('POST', '/api/v1/rollouts', { bundle: v2.id, cohort, stages: [1], bakeS: 86_400, gates: { maxFailedUpdates: failed, minUpdateSuccessRatio: 0.95, maxErrorRate: 0.05, maxLatencyRatio: 3, drift: true, stageTimeoutS: 2 * 86_400 } });
      const switched = new Date(stageStart + 30_000);
      await Promise.all(ids.map((id, i) => states.reported(id, i < failed ? reported(v2, 2, switched, 'failed', v1) : reported(v2, 2, switched, 'active'), switched)));
      // The rollout's start moved back to the stage start the telemetry was written for (only its timestamps).
      const startedAt = new Date(stageStart).toISOString();
      await plane.db.update(rollouts).set({ createdAt: startedAt, stageStartedAt: startedAt }).where(eq(rollouts.id, r.id));
      console.error(`rollout-tick: ${n} devices, ${reports} telemetry reports set up in ${setupS.toFixed(0)} s (load ${l0}→${load()})`);

      const time = async (what: string, fn: () => Promise<unknown>, check?: (x: unknown) => void) => {
        const l = load();
        const ms: number[] = [];
        for (let i = 0; i < REPEAT; i++) {
          t = performance.now();
          // BENCH_CPU_PROFILE=<dir>: a profile of the last repetition (cpu-profile.ts).
          const x = i === REPEAT - 1 ? await profiled(`tick-${n}-${what.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}`, fn) : await fn();
          ms.push(performance.now() - t);
          check?.(x);
        }
        ms.sort((a, b) => a - b);
        const s = ms[Math.floor(ms.length / 2)] / 1000;
        const note = `median of ${REPEAT}, min ${(ms[0] / 1000).toFixed(3)} s; load ${l}→${load()}`;
        if (k === 0) measured.set(what, s);
        const base = k === 0 ? { baseline: 'select count(*) from telemetry (same run)', baselineValue: measured.get('count') } : { baseline: `the same at ${SIZES[0]} devices`, baselineValue: measured.get(what) };
        tell({ benchmark: `${what}, ${n} devices`, value: s, unit: 's', ...base, ratio: base.baselineValue ? s / base.baselineValue : undefined, note });
      };
      const count = async () => {
        const ms: number[] = [];
        for (let i = 0; i < REPEAT; i++) {
          t = performance.now();
          await plane.db.all(sql`select count(*) from telemetry`);
          ms.push(performance.now() - t);
        }
        return ms.sort((a, b) => a - b)[Math.floor(ms.length / 2)] / 1000;
      };
      const c = await count();
      if (k === 0) measured.set('count', c);
      tell({ benchmark: `select count(*) from telemetry (${reports} reports of this cohort), ${n} devices`, value: c, unit: 's', note: `median of ${REPEAT}; load ${load()}` });

      await time('rollout tick, one stage, every gate on', async () => {
        const [row] = await plane.db.select().from(rollouts).where(eq(rollouts.id, r.id));
        await tickRollout(plane.db, plane.desired, logger, row);
        const [after] = await plane.db.select().from(rollouts).where(eq(rollouts.id, r.id));
        return after;
      }, (after) => {
        const row = after as typeof rollouts.$inferSelect;
        const verdict = (row.lastCheck as { verdict?: string } | null)?.verdict ?? '';
        // Every gate measured and passing, the stage baking: anything else would time a different tick.
        if (row.status !== 'running' || !verdict.startsWith('baking')) throw new Error(`rollout ${row.status}: ${verdict} ${JSON.stringify((row.lastCheck as { gates?: unknown }).gates)}`);
      });
      // The first tick after a restart or a stage change: the stage aggregate (stage-aggregate.ts) empty, the whole stage read.
      await time('rollout tick, first after a restart (stage aggregate empty)', async () => {
        keepStageAggregates(plane.db, new Set());
        const [row] = await plane.db.select().from(rollouts).where(eq(rollouts.id, r.id));
        await tickRollout(plane.db, plane.desired, logger, row);
      });
      await time('GET /metrics (fleet gauges)', () => api('GET', '/metrics', undefined, undefined, false));
      await time('GET /api/v1/fleet?window=15m (console fleet page)', () => api('GET', '/api/v1/fleet?window=15m'));
      // The first request after a restart: the window aggregate (server/fleet/fleet-telemetry.ts) empty, every minute of the window read.
      await time('GET /api/v1/fleet?window=15m, first after a restart (window aggregate empty)', () => {
        dropFleetWindowAggregate(plane.db);
        return api('GET', '/api/v1/fleet?window=15m');
      });
      await time('GET /api/v1/fleet?telemetry=false (console cohorts page, flotilla status)', () => api('GET', '/api/v1/fleet?telemetry=false'));
      await time('GET /api/v1/cohorts?members=count (console rollouts page)', () => api('GET', '/api/v1/cohorts?members=count'));
      await time('GET /api/v1/rollouts?limit=30 (console rollouts page)', () => api('GET', '/api/v1/rollouts?limit=30'));
      await time(`GET /api/v1/rollouts/{id} (rollouts status, every device's state)`, () => api('GET', `/api/v1/rollouts/${r.id}`));

      // The console's pages in Chromium over the same data (every cohort so far: the fleet holds them all).
      if (CONSOLE) {
        const total = SIZES.slice(0, k + 1).reduce((a, b) => a + b, 0);
        const l = load();
        const c = await timeConsolePages({ url: plane.httpUrl, token: plane.adminToken!, total, selector: `fleet=${cohort}`, matching: n, search: `${cohort}-123`, cohort, repeat: REPEAT });
        const shown: Array<[string, number]> = [
          [`console fleet page: navigate → ${total} rows rendered`, c.fleetRender],
          [`console fleet page: label selector typed → filtered rows shown`, c.selectorFilter],
          [`console fleet page: one search keystroke → rows shown`, c.searchKeystroke],
          [`console rollouts page: navigate → rendered`, c.rolloutsRender],
          [`console cohorts page: navigate → cohort table rendered`, c.cohortsRender],
        ];
        for (const [what, ms] of shown) {
          const s = ms / 1000;
          if (k === 0) measured.set(what.replace(/\d+ rows/, 'N rows'), s);
          const baselineValue = k === 0 ? undefined : measured.get(what.replace(/\d+ rows/, 'N rows'));
          tell({ benchmark: `${what}, ${n} devices`, value: s, unit: 's', ...(k === 0 ? {} : { baseline: `the same at ${SIZES[0]} devices`, baselineValue }), ratio: baselineValue ? s / baselineValue : undefined, note: `Chromium, median of ${REPEAT}; load ${l}→${load()}` });
        }
      }
    }
    await states.stop();
  } finally {
    await plane.stop();
    // BENCH_TICK_KEEP=1 leaves the database for a look at its query plans.
    if (process.env.BENCH_TICK_KEEP) console.error(`rollout-tick: kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
  printTable(`Rollout tick and fleet views (in-process control plane on a libsql file; ${HISTORY_MIN} min of per-minute telemetry before the rollout, ${STAGE_MIN} min since)`, rows);
  return rows;
}

/** A `reported` message as an agent sends it (stored whole): the update's transitions included. */
function reported(b: BundleInfo, counter: number, at: Date, state: 'active' | 'failed', stayedOn?: BundleInfo): ReportedMessage {
  const on = state === 'active' ? b : stayedOn!;
  const t = (k: number) => new Date(at.getTime() - (7 - k) * 1000).toISOString();
  const steps = ['downloading', 'verifying', 'staging', 'activating', 'probation'] as const;
  const transitions = [
    ...steps.map((s, k) => ({ state: s, at: t(k), counter })),
    state === 'active' ? { state: 'active' as const, at: t(6), counter } : { state: 'failed' as const, at: t(6), counter, reason: 'SMOKE_TEST_FAILED' },
  ];
  return {
    v: 1,
    at: at.toISOString(),
    agentVersion: '0.1.0',
    state,
    active: { bundleId: on.id, bundleName: on.name, model: { name: 'tick', version: on.version }, counter: on === b ? counter : counter - 1, modelSha256: '0'.repeat(64), activatedAt: at.toISOString() },
    desired: { bundleId: b.id, counter },
    lastError: state === 'failed' ? { code: 'SMOKE_TEST_FAILED', message: 'bench: the candidate failed its smoke test', at: at.toISOString(), counter } : null,
    transitions,
    keylistVersion: 1,
    highestCounter: on === b ? counter : counter - 1,
    capabilities: ['shadow'],
  };
}

/**
 * One report per device per minute in [from, to), each device at its own second of the minute, through
 * writeTelemetry in transactions of BATCH reports, as ingest writes them. Reports after `switchAt` are
 * served on v2. 20 requests a minute; latency around a per-device level; ~1 % errors.
 */
async function writeHistory(plane: ControlPlane, ids: string[], cohort: string, o: { from: number; to: number; switchAt: number; v1: BundleInfo; v2: BundleInfo }): Promise<number> {
  let seeded = 1;
  const random = () => ((seeded = (seeded * 16807) % 2147483647) - 1) / 2147483646;
  let items: TelemetryItem[] = [];
  let total = 0;
  const flush = async (now: Date) => {
    const batch = items;
    items = [];
    await plane.db.transaction((tx) => writeTelemetry(tx, batch, now));
    total += batch.length;
  };
  let seq = 0;
  for (let minute = o.from; minute < o.to; minute += 60_000, seq++) {
    for (const [i, deviceId] of ids.entries()) {
      const at = minute + (i % 60) * 1000 + 500;
      const b = at >= o.switchAt ? o.v2 : o.v1;
      const level = 2 + (i % 17) * 0.25;
      const latency = createLatencyHistogram();
      for (let j = 0; j < 20; j++) recordLatency(latency, level * (0.8 + 0.4 * random()));
      const message: TelemetryMessage = {
        v: 1,
        deviceId,
        at: new Date(at).toISOString(),
        intervalS: 60,
        seq,
        inferences: 20,
        errors: random() < 0.5 ? { timeout: 1 } : {},
        latency,
        activeS: 60,
        queueDepth: 0,
        cpu: 0.05,
        rssBytes: 80e6,
        diskFreeBytes: 1e10,
        uptimeS: seq * 60,
        activeBundle: { id: b.id, counter: b === o.v2 ? 2 : 1 },
        monitoring: { outboxPending: 0, outboxPendingBytes: 0, outboxDropped: 0, outboxCorrupt: 0, statsDropped: 0 },
      };
      items.push({ deviceId, message, cohorts: [cohort] });
      if (items.length >= BATCH) await flush(new Date(at + 1000));
    }
  }
  if (items.length) await flush(new Date(o.to));
  return total;
}

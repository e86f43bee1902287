import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { validateTelemetryMessage } from '../../protocol/messages/telemetry.ts';
import { latencySummary } from '../../protocol/sketch/latency-histogram.ts';
import type { ModelRuntime } from '../model-runtime.ts';
import { StateStore } from '../state-store.ts';
import { Monitoring, OUTBOX_DIR, SEQ_BLOCK } from './monitoring.ts';
import { TelemetryCollector, type TelemetryDraft } from './telemetry-collector.ts';
import { cpuShare, MonitoringLoss, TelemetryCounters } from './telemetry-counters.ts';

describe('telemetry', () => {
  test('counters are per interval: take() hands over the deltas and starts from zero', () => {
    const c = new TelemetryCounters();
    for (const ms of [1, 2, 3, 40]) c.record({ ok: true, latencyMs: ms });
    c.record({ ok: false, code: 'INVALID_INPUT', latencyMs: 0.1 });
    c.record({ ok: false, code: 'INVALID_INPUT', latencyMs: 0.1 });
    c.record({ ok: false, code: 'INFERENCE_FAILED', latencyMs: 5 });
    const first = c.take();
    assert.equal(first.inferences, 4);
    assert.deepEqual({ ...first.errors }, { INVALID_INPUT: 2, INFERENCE_FAILED: 1 });
    assert.equal(first.latency.count, 4, 'latency of completed requests only');
    assert.equal(first.latency.maxMs, 40);
    assert.equal(latencySummary(first.latency).p50! < 3.5, true);
    c.record({ ok: true, latencyMs: 7 });
    const second = c.take();
    assert.equal(second.inferences, 1);
    assert.deepEqual({ ...second.errors }, {});
    assert.equal(second.latency.count, 1);
    assert.equal(second.latency.minMs, 7);
  });

  test('activeS counts the distinct seconds in which requests ended: 200 requests in 2.5 s are 3 seconds of serving', () => {
    const c = new TelemetryCounters();
    const t0 = 1_700_000_000_000; // a whole second
    for (let i = 0; i < 200; i++) c.record({ ok: i % 50 !== 0, code: 'INVALID_INPUT', latencyMs: 1 }, t0 + i * 12.5); // 0 … 2487.5 ms
    const first = c.take();
    assert.equal(first.inferences, 196);
    assert.equal(first.activeS, 3);
    // A second that straddles the end of the interval was counted in the interval it began in.
    c.record({ ok: true, latencyMs: 1 }, t0 + 2900);
    c.record({ ok: true, latencyMs: 1 }, t0 + 60_000);
    assert.equal(c.take().activeS, 1);
    assert.equal(c.take().activeS, 0, 'an idle interval has no active seconds');
  });

  test('reason codes are bounded in number: the rest fold into OTHER', () => {
    const c = new TelemetryCounters();
    for (let i = 0; i < 40; i++) c.record({ ok: false, code: `CODE_${i}`, latencyMs: 1 });
    const { errors } = c.take();
    assert.equal(Object.keys(errors).length, 33);
    assert.equal(errors.OTHER, 8);
  });

  test('CPU share: CPU time over the interval divided by interval × cores, clamped to 0…1', () => {
    assert.equal(cpuShare({ user: 0, system: 0 }, { user: 500_000, system: 500_000 }, 1000, 2), 0.5);
    assert.equal(cpuShare({ user: 1_000_000, system: 0 }, { user: 1_250_000, system: 250_000 }, 2000, 1), 0.25);
    assert.equal(cpuShare({ user: 0, system: 0 }, { user: 9e9, system: 0 }, 1000, 4), 1);
    assert.equal(cpuShare({ user: 0, system: 0 }, { user: 1, system: 0 }, 0, 4), 0);
  });

  test('a report validates against the wire schema and carries the interval, queue, resources and bundle', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-telemetry-'));
    const drafts: TelemetryDraft[] = [];
    const t = new TelemetryCollector({
      deviceId: 'dev_abcdefgh1',
      dataDir: dir,
      intervalS: 3600,
      logger: pino({ level: 'silent' }),
      queueDepth: () => 4,
      activeBundle: () => ({ id: 'bnd_1', counter: 7 }),
      emit: async (d) => void drafts.push(d),
    });
    t.start();
    t.record({ bundle: { id: 'bnd_1', name: 'x', model: { name: 'x', version: 1 }, counter: 7, modelSha256: '' }, ok: true, latencyMs: 2.5, input: { features: {} } });
    await new Promise((r) => setTimeout(r, 30));
    await t.report();
    await t.stop();
    await rm(dir, { recursive: true, force: true });
    const d = drafts[0];
    const check = validateTelemetryMessage({ ...d, seq: 0 }, { deviceId: 'dev_abcdefgh1' });
    assert.ok(check.ok, JSON.stringify(check));
    assert.equal(d.inferences, 1);
    assert.equal(d.queueDepth, 4);
    assert.deepEqual(d.activeBundle, { id: 'bnd_1', counter: 7 });
    assert.ok(d.intervalS >= 0.02 && d.intervalS < 5, `elapsed, not the configured hour: ${d.intervalS}`);
    assert.ok(d.rssBytes > 10e6 && d.diskFreeBytes > 0 && d.uptimeS > 0);
    assert.ok(d.cpu >= 0 && d.cpu <= 1);
  });

  test('monitoring loss: deltas of the running totals since the previous report; the backlog as it is now', () => {
    const l = new MonitoringLoss();
    const totals = { outboxPending: 4, outboxPendingBytes: 900, outboxDropped: 5, outboxCorrupt: 1, statsDropped: 2 };
    assert.deepEqual(l.take(totals), totals, 'the first report carries everything since the start');
    assert.deepEqual(l.take({ ...totals, outboxPending: 0, outboxPendingBytes: 0 }), { outboxPending: 0, outboxPendingBytes: 0, outboxDropped: 0, outboxCorrupt: 0, statsDropped: 0 });
    assert.deepEqual(l.take({ ...totals, outboxDropped: 8, statsDropped: 12 }), { ...totals, outboxDropped: 3, outboxCorrupt: 0, statsDropped: 10 });
  });

  test('telemetry carries the outbox drops: after the full outbox drops its oldest files, the next report says how many', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'flotilla-telemetry-loss-'));
    const outboxDir = path.join(dataDir, OUTBOX_DIR);
    await mkdir(outboxDir, { recursive: true });
    await writeFile(path.join(outboxDir, 'garbage'), 'not an outbox file'); // counted as corrupt at start
    const runtime = { onPrediction: () => () => {}, queueDepth: () => 0 } as unknown as ModelRuntime;
    const state = new StateStore(dataDir);
    const mon = new Monitoring({
      deviceId: 'dev_abcdefgh1',
      config: { dataDir, telemetryIntervalS: 3600, statsWindowS: undefined, stats: 'off', outboxMaxBytes: 4000 },
      state,
      runtime,
      logger: pino({ level: 'silent' }),
    });
    await mon.start(); // never attached: offline, everything stays in the outbox
    const report = () => (mon as unknown as { telemetry: TelemetryCollector }).telemetry.report();
    const newest = async () => {
      const names = (await readdir(outboxDir)).filter((n) => n.endsWith('.telemetry.json')).sort();
      return JSON.parse(await readFile(path.join(outboxDir, names.at(-1)!), 'utf8'));
    };
    try {
      await report();
      const first = await newest();
      assert.ok(validateTelemetryMessage(first).ok);
      assert.deepEqual(first.monitoring, { outboxPending: 0, outboxPendingBytes: 0, outboxDropped: 0, outboxCorrupt: 1, statsDropped: 0 });

      const dropped = () => mon.status().outbox.dropped.telemetry;
      let before = dropped();
      let reports = 1;
      while (dropped() === before && reports < 50) {
        before = dropped();
        await report();
        reports++;
      }
      const droppedByLastAppend = dropped() - before;
      assert.ok(droppedByLastAppend > 0, 'the bounded outbox dropped its oldest messages');
      const pending = mon.status().outbox;
      await report();
      const m = await newest();
      assert.ok(validateTelemetryMessage(m).ok);
      assert.equal(m.monitoring.outboxDropped, droppedByLastAppend, 'the delta since the previous report');
      assert.equal(m.monitoring.outboxCorrupt, 0, 'the corrupt file was reported once');
      assert.equal(m.monitoring.outboxPending, pending.pending);
      assert.equal(m.monitoring.outboxPendingBytes, pending.bytes);
      assert.equal(m.errors && Object.keys(m.errors).length, 0, 'losses are not request errors');
    } finally {
      await mon.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('seqs are reserved in blocks: state.json is written once per block, not per message, and a restart never reuses a seq', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'flotilla-telemetry-seq-'));
    const runtime = { onPrediction: () => () => {}, queueDepth: () => 0 } as unknown as ModelRuntime;
    const run = async (reports: number) => {
      const state = new StateStore(dataDir);
      await state.load();
      const mon = new Monitoring({ deviceId: 'dev_abcdefgh1', config: { dataDir, telemetryIntervalS: 3600, statsWindowS: undefined, stats: 'off', outboxMaxBytes: 1e8 }, state, runtime, logger: pino({ level: 'silent' }) });
      await mon.start(); // never attached: every message stays in the outbox, where the test reads its seq
      const writes = state.writes;
      for (let i = 0; i < reports; i++) await (mon as unknown as { telemetry: TelemetryCollector }).telemetry.report();
      const written = state.writes - writes;
      await mon.stop();
      return written;
    };
    const seqs = async () => {
      const dir = path.join(dataDir, OUTBOX_DIR);
      const names = (await readdir(dir)).filter((n) => n.endsWith('.telemetry.json'));
      return Promise.all(names.map(async (n) => JSON.parse(await readFile(path.join(dir, n), 'utf8')).seq as number));
    };
    try {
      assert.equal(await run(SEQ_BLOCK + 5), 2, `${SEQ_BLOCK + 5} messages reserve two blocks: two writes of state.json`);
      const first = (await seqs()).sort((a, b) => a - b);
      assert.deepEqual(first, Array.from({ length: SEQ_BLOCK + 5 }, (_, i) => i));
      assert.equal(JSON.parse(await readFile(path.join(dataDir, 'state.json'), 'utf8')).seq.telemetry, 2 * SEQ_BLOCK, 'state.json holds the reserved end');
      // A restart (here after a clean stop; a kill -9 leaves the same file) starts at the reserved end.
      assert.equal(await run(3), 1);
      const all = await seqs();
      assert.equal(new Set(all).size, all.length, 'no seq used twice');
      assert.deepEqual(all.filter((q) => q >= SEQ_BLOCK + 5).sort((a, b) => a - b), [2 * SEQ_BLOCK, 2 * SEQ_BLOCK + 1, 2 * SEQ_BLOCK + 2]);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

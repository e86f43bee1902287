import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { validateTelemetryMessage } from '../../protocol/messages/telemetry.ts';
import { latencySummary } from '../../protocol/sketch/latency-histogram.ts';
import { TelemetryCollector, type TelemetryDraft } from './telemetry-collector.ts';
import { cpuShare, TelemetryCounters } from './telemetry-counters.ts';

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
});

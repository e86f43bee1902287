import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLatencyHistogram, recordLatency } from '../sketch/latency-histogram.ts';
import type { StatsRejectReason } from './stats.ts';
import { validateTelemetryMessage } from './telemetry.ts';

const NOW = new Date('2025-06-01T12:00:00Z');

function good() {
  const latency = createLatencyHistogram();
  [1.5, 2.5, 40].forEach((ms) => recordLatency(latency, ms));
  return {
    v: 1,
    deviceId: 'dev_abcdef12',
    at: '2025-06-01T11:59:00Z',
    intervalS: 60,
    seq: 5,
    inferences: 3,
    errors: { timeout: 1 },
    latency: JSON.parse(JSON.stringify(latency)),
    queueDepth: 0,
    cpu: 0.12,
    rssBytes: 80_000_000,
    diskFreeBytes: 5_000_000_000,
    uptimeS: 3600,
    activeBundle: { id: 'bnd_1', counter: 4 },
    monitoring: { outboxPending: 3, outboxPendingBytes: 4096, outboxDropped: 2, outboxCorrupt: 1, statsDropped: 7 },
  };
}
type Msg = ReturnType<typeof good>;

function expectReason(mutate: (m: Msg) => void, reason: StatsRejectReason) {
  const m = good();
  mutate(m);
  const r = validateTelemetryMessage(m, { now: NOW });
  assert.ok(!r.ok, `expected ${reason}`);
  if (!r.ok) assert.equal(r.reason, reason, r.message);
}

describe('telemetry message validation', () => {
  it('accepts a well-formed message, with or without an active bundle', () => {
    assert.ok(validateTelemetryMessage(good(), { now: NOW, deviceId: 'dev_abcdef12' }).ok);
    assert.ok(validateTelemetryMessage({ ...good(), activeBundle: null }, { now: NOW }).ok);
  });
  it('monitoring health is optional (older agents) and kept when present', () => {
    const { monitoring: _, ...old } = good();
    const r = validateTelemetryMessage(old, { now: NOW });
    assert.ok(r.ok && r.message.monitoring === undefined);
    const withIt = validateTelemetryMessage(good(), { now: NOW });
    assert.ok(withIt.ok);
    if (withIt.ok) assert.deepEqual(withIt.message.monitoring, good().monitoring);
  });
  it("rejects a negative monitoring drop count with 'negative_count'", () => expectReason((m) => (m.monitoring.outboxDropped = -1), 'negative_count'));
  it("rejects a negative outbox backlog with 'negative_count'", () => expectReason((m) => (m.monitoring.outboxPending = -3), 'negative_count'));
  it("rejects a fractional stats drop count with 'non_integer_count'", () => expectReason((m) => (m.monitoring.statsDropped = 0.5), 'non_integer_count'));
  it("rejects an incomplete monitoring object as 'malformed'", () => expectReason((m) => delete (m.monitoring as Partial<Msg['monitoring']>).statsDropped, 'malformed'));
  it("rejects another version with 'schema_version'", () => expectReason((m) => (m.v = 0), 'schema_version'));
  it("rejects a negative error count with 'negative_count'", () => expectReason((m) => (m.errors.timeout = -1), 'negative_count'));
  it("rejects a fractional inference count with 'non_integer_count'", () => expectReason((m) => (m.inferences = 1.5), 'non_integer_count'));
  it("rejects a latency histogram with the wrong bucket count with 'bins_mismatch'", () => expectReason((m) => m.latency.counts.pop(), 'bins_mismatch'));
  it("rejects latency buckets that do not add up with 'count_mismatch'", () => expectReason((m) => m.latency.count++, 'count_mismatch'));
  it("rejects min > max latency with 'min_gt_max'", () => expectReason((m) => (m.latency.minMs = 100), 'min_gt_max'));
  it("rejects cpu above 1 as 'malformed'", () => expectReason((m) => (m.cpu = 1.5), 'malformed'));
  it("rejects a report from the future with 'future_window'", () => expectReason((m) => (m.at = '2025-06-01T13:00:00Z'), 'future_window'));
  it("rejects a device id that differs from the topic with 'device_mismatch'", () => {
    const r = validateTelemetryMessage(good(), { now: NOW, deviceId: 'dev_other123' });
    assert.ok(!r.ok && r.reason === 'device_mismatch');
  });
});

// The agent's monitoring over real MQTT, driven by signed manifests: a real control plane (broker),
// a real artifact server and onnxruntime; the agent runs in this process. `agentConfig` in the
// manifest sets the telemetry interval and the stats window; a re-signed manifest for the same files
// changes them live without reinstalling anything; a restart keeps the sequences and the settings.
import assert from 'node:assert/strict';
import { readlink } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { api, waitFor, type TestBundle } from '../agent/testing/harness.ts';
import type { AgentConfig as ManifestAgentConfig } from '../firmware-bundles/manifest.ts';
import type { ReportedMessage } from '../protocol/messages/reported.ts';
import { validateStatsMessage, type StatsMessage } from '../protocol/messages/stats.ts';
import { validateTelemetryMessage, type TelemetryMessage } from '../protocol/messages/telemetry.ts';
import type { SketchLayout } from '../protocol/sketch/feature-set-sketch.ts';
import { decodeSketch } from '../protocol/sketch/sketch-blob.ts';
import { AgentLab } from './helpers/agent-lab.ts';
import { gemmModel } from './helpers/models.ts';

const FEATURES = ['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7'];
const LAYOUT: SketchLayout = {
  features: Object.fromEntries(FEATURES.map((f) => [f, { kind: 'numeric' as const, edges: [-2, -1, 0, 1, 2] }])),
  outputs: { task: 'classification', numClasses: 3 },
};
const row = (i: number) => Object.fromEntries(FEATURES.map((f, j) => [f, Math.sin(i + j)]));

describe('agent monitoring: telemetry and stats under signed agentConfig', { timeout: 90_000 }, () => {
  let lab: AgentLab;
  let bundle: TestBundle;
  let counter = 0;
  const telemetry: TelemetryMessage[] = [];
  const stats: StatsMessage[] = [];
  const reported: ReportedMessage[] = [];

  const deploy = (agentConfig: ManifestAgentConfig) => {
    const c = ++counter;
    lab.deploy(bundle, { counter: c, bundleId: 'bnd_mon', agentConfig });
    return c;
  };
  const activeOn = (c: number) =>
    waitFor(() => {
      const r = reported.at(-1);
      return r?.state === 'active' && r.active?.counter === c && r.transitions.at(-1)?.state === 'active' && r.transitions.at(-1)?.counter === c;
    }, `active on counter ${c}`, 20_000);
  const predict = (rows: unknown[]) => api(lab.port, 'POST', '/v1/predict', { features: rows });
  const statsRows = () => stats.reduce((n, s) => n + s.sketch.quality.rows, 0);

  before(async () => {
    lab = await AgentLab.start({ prefix: 'flotilla-agent-mon-', agent: { reconnectMinMs: 50, reconnectMaxMs: 500 } });
    await lab.observe(['telemetry', 'stats', 'reported'], (channel, msg) => {
      if (channel === 'telemetry') telemetry.push(msg);
      else if (channel === 'stats') {
        // The agent sends the sketch's binary form (protocol/messages/stats-wire.ts), never the object.
        assert.equal(typeof msg.sketchBase64, 'string');
        assert.ok(!('sketch' in msg), 'no sketch object on the wire');
        const { sketchBase64, ...rest } = msg;
        stats.push({ ...rest, sketch: decodeSketch(Buffer.from(sketchBase64, 'base64')) });
      } else reported.push(msg);
    });
    bundle = await lab.bundle(gemmModel({ seed: 1 }), 'tabular-demo', { reference: { bins: {}, layout: LAYOUT } });
  });

  after(async () => {
    await lab?.stop();
  });

  test('the manifest sets the intervals: telemetry every second, stats windows of 5 s on the shipped layout', async () => {
    const c = deploy({ telemetryIntervalS: 1, statsWindowS: 5 });
    await activeOn(c);
    telemetry.length = 0;
    for (let i = 0; i < 6; i++) assert.equal((await predict([row(i), row(i + 100), row(i + 200)])).status, 200);
    assert.equal((await predict([{ f0: 1 }])).status, 400, 'a refused request: counted as an error, its row as schema violations');
    await waitFor(() => statsRows() === 19, 'stats windows holding the 19 rows', 15_000);
    for (const s of stats) {
      const check = validateStatsMessage(s, { reference: LAYOUT, deviceId: lab.deviceId });
      assert.ok(check.ok, JSON.stringify(check));
      assert.equal(s.bundleId, 'bnd_mon');
      assert.deepEqual(s.model, { name: 'tabular-demo', version: c });
      assert.ok((Date.parse(s.windowEnd) - Date.parse(s.windowStart)) <= 5000);
      assert.equal(Date.parse(s.windowEnd) % 5000, 0, 'windows end on the 5 s grid');
    }
    assert.equal(stats.reduce((n, s) => n + s.sketch.quality.schemaViolations.missing, 0), 7);
    assert.equal(stats.reduce((n, s) => n + s.sketch.outputs.predictedClass!.count, 0), 18, 'outputs for answered rows only');

    await waitFor(() => telemetry.reduce((n, t) => n + t.inferences, 0) === 6 && telemetry.some((t) => t.errors.INVALID_INPUT === 1), 'telemetry counting 6 inferences and 1 refusal', 10_000);
    for (const t of telemetry) assert.ok(validateTelemetryMessage(t, { deviceId: lab.deviceId }).ok);
    await waitFor(() => telemetry.length >= 4, 'four reports', 10_000);
    const recent = telemetry.slice(-2); // the first one covers the time since the agent started
    for (const t of recent) assert.ok(Math.abs(t.intervalS - 1) < 0.4, `1 s interval, got ${t.intervalS}`);
    assert.deepEqual(recent.at(-1)!.activeBundle, { id: 'bnd_mon', counter: c });
    const seqs = telemetry.map((t) => t.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'seq increases');
    assert.equal(new Set(seqs).size, seqs.length);
  });

  test('a re-signed manifest for the same files changes the settings live: no download, no reinstall, new counter', async () => {
    const requestsBefore = lab.art.requests.length;
    const current = await readlink(path.join(lab.dataDir, 'current'));
    const previous = await readlink(path.join(lab.dataDir, 'previous')).catch(() => null);
    const c = deploy({ telemetryIntervalS: 2, statsWindowS: 5 });
    await activeOn(c);
    assert.equal(lab.art.requests.length, requestsBefore, 'nothing downloaded');
    const states = reported.at(-1)!.transitions.filter((t) => t.counter === c).map((t) => t.state);
    assert.deepEqual(states, ['active'], 'no download, staging or probation');
    assert.notEqual(await readlink(path.join(lab.dataDir, 'current')), current, 'current names the new manifest');
    assert.equal(await readlink(path.join(lab.dataDir, 'previous')).catch(() => null), previous, 'the fallback is unchanged');
    const seen = telemetry.length;
    await waitFor(() => telemetry.length >= seen + 3, 'three more reports', 12_000);
    const last = telemetry.slice(-2);
    for (const t of last) assert.ok(Math.abs(t.intervalS - 2) < 0.5, `2 s interval, got ${t.intervalS}`);
    assert.equal(last.at(-1)!.activeBundle!.counter, c);
    assert.equal((await predict([row(1)])).body.bundle.counter, c, 'the local API answers with the new counter');
  });

  test('a restart keeps the sequences and the adopted settings; a clean stop sends the window in progress', async () => {
    const lastTelemetrySeq = telemetry.at(-1)!.seq;
    const lastStatsSeq = stats.at(-1)!.seq;
    await predict([row(7), row(8)]);
    await lab.agent.stop();
    const stoppedAt = telemetry.length;
    await lab.startAgent();
    await waitFor(() => statsRows() === 19 + 1 + 2, 'every row, the window cut by the stop included', 15_000);
    assert.ok(stats.at(-1)!.seq > lastStatsSeq);
    await waitFor(() => telemetry.length >= stoppedAt + 2, 'telemetry after the restart', 10_000);
    const after = telemetry.slice(stoppedAt);
    assert.ok(after.every((t) => t.seq > lastTelemetrySeq), `seq continues after ${lastTelemetrySeq}: ${after.map((t) => t.seq)}`);
    assert.ok(Math.abs(after.at(-1)!.intervalS - 2) < 0.5, 'the adopted manifest still sets 2 s');
    const status = (await api(lab.port, 'GET', '/v1/status')).body;
    assert.equal(status.monitoring.telemetry.intervalS, 2);
    assert.equal(status.monitoring.stats.windowS, 5);
    assert.equal(status.monitoring.outbox.pending, 0);
  });
});

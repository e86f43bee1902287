// Which telemetry the latency regression gate reads (issue 14), with reports whose times and latencies
// the test chooses, sent over real MQTT by a simulated device (test/helpers/fake-device.ts):
// - the baseline is what the cohort served before the rollout: a report sent after it started, in the
//   same minute, is not part of it (the minute's rollup bucket holds both);
// - the candidate is measured from reports served wholly on it: the first report after the switch (its
//   interval began on the previous bundle) is left out, the next one counts, within the stage's first
//   minute (no wait for a whole minute bucket).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../agent/testing/harness.ts';
import { createLatencyHistogram, recordLatency } from '../protocol/sketch/latency-histogram.ts';
import type { TestPlane } from './helpers/control-plane.ts';
import type { FakeDevice } from './helpers/fake-device.ts';
import { startRolloutLab, type RolloutLab } from './helpers/rollout-lab.ts';
import type { GateResult } from '../server/rollouts/rollout-gates.ts';

/** A telemetry report of 100 requests that each took `ms`, at `at`, with `bundle` active. */
function report(d: FakeDevice, seq: number, at: string, ms: number, bundle: string) {
  const latency = createLatencyHistogram();
  for (let i = 0; i < 100; i++) recordLatency(latency, ms);
  const counter = d.received.filter((r) => r.bundleId === bundle).at(-1)!.counter;
  return { v: 1, deviceId: d.id, at, intervalS: 10, seq, inferences: 100, errors: {}, latency, queueDepth: 0, cpu: 0.1, rssBytes: 1e8, diskFreeBytes: 1e10, uptimeS: 100 + seq, activeBundle: { id: bundle, counter } };
}

describe('the latency gate reads the previous bundle before the rollout and the candidate after its switch', () => {
  let lab: RolloutLab;
  let cp: TestPlane;
  let device: FakeDevice;
  let bundles: string[];

  before(async () => {
    lab = await startRolloutLab({ versions: 2, devices: 1, cohort: 'lab', plane: { ingestFlushMs: 50 } });
    ({ cp, bundles, devices: [device] } = lab);
  });
  after(async () => {
    await lab?.stop();
  });

  test('10 ms before, a 1,000 ms report spanning the switch, 20 ms after: the ratio is 20 / 10', async () => {
    await device.publish('telemetry', report(device, 0, new Date().toISOString(), 10, bundles[0]));
    await waitFor(async () => (await cp.api('GET', `/api/v1/telemetry?device=${device.id}&window=1h`)).body.inferences === 100, 'the baseline report stored', 30_000, 50);

    const r = await cp.api('POST', '/api/v1/rollouts', { json: { bundle: bundles[1], cohort: 'lab', stages: [1], bakeS: 0, gates: { maxLatencyRatio: 3, stageTimeoutS: 60 } } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await waitFor(async () => device.active === bundles[1], 'the device switched', 30_000, 50);
    // Both at the rollout's start (its row is written just after the stage's start time is taken): inside
    // the stage's first minute, and inside the minute bucket the rollout began in.
    const at = [r.body.createdAt as string, r.body.stageStartedAt as string].sort().at(-1)!;
    await device.publish('telemetry', report(device, 1, at, 1000, bundles[1]));
    await device.publish('telemetry', report(device, 2, at, 20, bundles[1]));

    let done: any;
    await waitFor(async () => (done = (await cp.api('GET', `/api/v1/rollouts/${r.body.id}`)).body).status !== 'running', 'the rollout ends', 60_000, 100).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(done?.lastCheck)}`);
    });
    const g = (done.lastCheck.history.at(-1).gates as GateResult[]).find((x) => x.name === 'latencyRegression')!;
    assert.equal(done.status, 'succeeded', JSON.stringify(done.lastCheck));
    assert.equal(g.status, 'pass', JSON.stringify(g));
    // The histogram's log-spaced bins round each side a little; 1,000 ms on either side would be ×100 or ×0.02.
    assert.ok(g.value! > 1.7 && g.value! < 2.3, JSON.stringify(g));
    const [, candidate, baseline] = /^worst p95 ([\d.]+) ms \(.+\) vs ([\d.]+) ms before$/.exec(g.reason)!.map(Number);
    assert.ok(Math.abs(candidate - 20) < 2 && Math.abs(baseline - 10) < 1, g.reason);
  });
});

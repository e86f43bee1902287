// GET /api/v1/fleet over a real control plane and libsql file: each device's telemetry read per minute
// (fleet-telemetry.ts) equals the per-device computation over its own rollup rows on random data;
// `telemetry=false` skips it; GET /api/v1/cohorts?members=count (the rollouts page's picker) counts
// approved members on the server.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { and, asc, eq, gte } from 'drizzle-orm';
import { createLatencyHistogram, latencyQuantile, mergeLatencyHistograms, recordLatency, type LatencyHistogram } from '../protocol/sketch/latency-histogram.ts';
import type { TelemetryMessage } from '../protocol/messages/telemetry.ts';
import { devices, telemetryRollups } from '../server/db/schema.ts';
import { bucketStart } from '../server/ingest/buckets.ts';
import { writeTelemetry, type TelemetryItem } from '../server/ingest/telemetry-writer.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';

const N = 60;

describe('fleet overview: per-device telemetry, telemetry=false, cohort member counts', () => {
  let cp: TestPlane;
  const ids = Array.from({ length: N }, (_, i) => `dev_fleetov${String(i).padStart(4, '0')}`);

  before(async () => {
    cp = await startControlPlane();
    await cp.plane.db.insert(devices).values(
      ids.map((id, i) => ({
        id,
        name: `gw-${i}`,
        status: i % 10 === 9 ? ('pending' as const) : ('approved' as const),
        labels: { site: ['berlin', 'oslo', 'lab'][i % 3], hw: i % 2 ? 'rpi4' : 'jetson' },
        facts: { arch: 'arm64', cpus: 4, memoryBytes: 4e9, os: 'linux', agentVersion: '0.1.0' },
        credentialHash: 'test',
      })),
    );
    // Random reports over the last 25 minutes (some before a 15-minute window), in a few batches as ingest
    // writes them: random counts, errors and latencies; a few devices report nothing, one reports zero requests.
    let seed = 7;
    const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    const now = Date.now();
    const seq = new Map<string, number>();
    for (let batch = 0; batch < 4; batch++) {
      const items: TelemetryItem[] = [];
      for (const [i, deviceId] of ids.entries()) {
        if (i % 7 === 3) continue;
        for (let k = 0; k < 3; k++) {
          const at = now - Math.floor(random() * 25 * 60_000);
          const inferences = i === 5 ? 0 : Math.floor(random() * 50);
          const latency = createLatencyHistogram();
          for (let j = 0; j < inferences; j++) recordLatency(latency, random() < 0.05 ? 200 + random() * 2000 : 1 + random() * (5 + (i % 11)));
          const s = (seq.get(deviceId) ?? 0) + 1;
          seq.set(deviceId, s);
          const message: TelemetryMessage = {
            v: 1,
            deviceId,
            at: new Date(at).toISOString(),
            intervalS: 10 + Math.floor(random() * 50),
            seq: s,
            inferences,
            errors: random() < 0.3 ? { timeout: 1 + Math.floor(random() * 3) } : {},
            latency,
            queueDepth: 0,
            cpu: 0.1,
            rssBytes: 50e6,
            diskFreeBytes: 1e9,
            uptimeS: 100,
            activeBundle: null,
          };
          items.push({ deviceId, message, cohorts: [] });
        }
      }
      await cp.plane.db.transaction((tx) => writeTelemetry(tx, items, new Date()));
    }
  });
  after(async () => {
    await cp.stop();
  });

  test("each device's telemetry equals the per-device computation over its own rollup rows", async () => {
    const r = await cp.api('GET', '/api/v1/fleet?window=15m');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.devices.length, N);
    const from = bucketStart(r.body.window.start, 'minute');
    let withTelemetry = 0;
    for (const d of r.body.devices as Array<{ id: string; telemetry: { ratePerSecond: number | null; errorRatio: number | null; p95: number | null } }>) {
      // What the page computed per device before (one grouped read per device, in bucket order).
      const rows = await cp.plane.db
        .select()
        .from(telemetryRollups)
        .where(and(eq(telemetryRollups.scope, 'device'), eq(telemetryRollups.key, d.id), gte(telemetryRollups.bucketStart, from)))
        .orderBy(asc(telemetryRollups.bucketStart));
      if (!rows.length) {
        assert.deepEqual(d.telemetry, { ratePerSecond: null, errorRatio: null, p95: null }, d.id);
        continue;
      }
      withTelemetry++;
      const inferences = rows.reduce((a, x) => a + x.inferences, 0);
      const errors = rows.reduce((a, x) => a + x.errorCount, 0);
      const seconds = (Date.parse(rows.map((x) => x.lastAt).sort().at(-1)!) - Date.parse(rows.map((x) => x.firstStart).sort()[0])) / 1000;
      const latency = rows.map((x) => x.latency).reduce((a: LatencyHistogram, b) => mergeLatencyHistograms(a, b), createLatencyHistogram());
      assert.deepEqual(
        d.telemetry,
        {
          ratePerSecond: seconds > 0 ? inferences / seconds : null,
          errorRatio: inferences + errors > 0 ? errors / (inferences + errors) : null,
          p95: latencyQuantile(latency, 0.95),
        },
        d.id,
      );
    }
    assert.ok(withTelemetry > N / 2, `most devices have telemetry in the window (${withTelemetry})`);
  });

  test('telemetry=false: the same devices with null telemetry; a bad value is a 400', async () => {
    const full = await cp.api('GET', '/api/v1/fleet');
    const bare = await cp.api('GET', '/api/v1/fleet?telemetry=false');
    assert.equal(bare.status, 200);
    assert.ok(full.body.devices.some((d: { telemetry: { p95: number | null } }) => d.telemetry.p95 !== null));
    const none = { ratePerSecond: null, errorRatio: null, p95: null };
    assert.deepEqual(
      bare.body.devices,
      full.body.devices.map((d: object) => ({ ...d, telemetry: none })),
    );
    const bad = await cp.api('GET', '/api/v1/fleet?telemetry=maybe');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_request');
  });

  test('cohorts?members=count: approved members per cohort; without it no count', async () => {
    await cp.api('POST', '/api/v1/cohorts', { json: { name: 'berlin-rpi', selector: 'site=berlin,hw=rpi4' } });
    await cp.api('POST', '/api/v1/cohorts', { json: { name: 'everyone', selector: 'site' } });
    const counted = await cp.api('GET', '/api/v1/cohorts?members=count');
    assert.equal(counted.status, 200);
    const approved = (i: number) => i % 10 !== 9;
    const want = (pred: (i: number) => boolean) => ids.filter((_, i) => approved(i) && pred(i)).length;
    const byName = new Map(counted.body.cohorts.map((c: { name: string; memberCount: number }) => [c.name, c.memberCount]));
    assert.equal(byName.get('berlin-rpi'), want((i) => i % 3 === 0 && i % 2 === 1));
    assert.equal(byName.get('everyone'), want(() => true));
    // The same number the cohort's member list has.
    assert.equal((await cp.api('GET', '/api/v1/cohorts/berlin-rpi')).body.members.length, byName.get('berlin-rpi'));
    const plain = await cp.api('GET', '/api/v1/cohorts');
    assert.ok(plain.body.cohorts.every((c: object) => !('memberCount' in c)));
    assert.equal((await cp.api('GET', '/api/v1/cohorts?members=all')).status, 400);
  });
});

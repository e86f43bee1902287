// GET /api/v1/fleet over a real control plane and libsql file: each device's telemetry (the window aggregate,
// fleet-telemetry.ts) equals the per-device computation over its own rollup rows on random data, also after
// more reports, late ones included, were written by another control plane on the same database (a replica that
// did not do the ingest: its aggregate holds minutes it must notice changed); `telemetry=false` skips it;
// GET /api/v1/cohorts?members=count (the rollouts page's picker) counts approved members on the server.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { devices } from '../server/db/schema.ts';
import { bucketStart } from '../server/ingest/buckets.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { NO_TELEMETRY, referenceTelemetry, seeded, writeRandomTelemetry, type WindowTelemetry } from './helpers/window-telemetry.ts';

const N = 60;

describe('fleet overview: per-device telemetry, telemetry=false, cohort member counts', () => {
  let cp: TestPlane;
  const ids = Array.from({ length: N }, (_, i) => `dev_fleetov${String(i).padStart(4, '0')}`);
  const random = seeded(7);
  const seqs = new Map<string, number>();

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
    const now = Date.now();
    for (let batch = 0; batch < 4; batch++) await writeRandomTelemetry(cp.plane.db, { ids, random, fromMs: now - 25 * 60_000, toMs: now, perDevice: 3, seqs });
  });
  after(async () => {
    await cp.stop();
  });

  /** `plane`'s answer against the per-device computation over each device's own rollup rows; how many devices had telemetry. */
  const assertFleetTelemetry = async (plane: TestPlane): Promise<number> => {
    const r = await plane.api('GET', '/api/v1/fleet?window=15m', { token: cp.adminToken }); // the database's admin token (the second plane found one and made none)
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.devices.length, N);
    const from = bucketStart(r.body.window.start, 'minute');
    let withTelemetry = 0;
    for (const d of r.body.devices as Array<{ id: string; telemetry: WindowTelemetry }>) {
      const want = await referenceTelemetry(cp.plane.db, d.id, from);
      if (want) withTelemetry++;
      assert.deepEqual(d.telemetry, want ?? NO_TELEMETRY, d.id);
    }
    return withTelemetry;
  };

  test("each device's telemetry equals the per-device computation over its own rollup rows", async () => {
    const withTelemetry = await assertFleetTelemetry(cp);
    assert.ok(withTelemetry > N / 2, `most devices have telemetry in the window (${withTelemetry})`);
  });

  test('another control plane on the same database ingests, late reports included: both answer the computation over the rows', async () => {
    const second = await startControlPlane({ dbUrl: cp.plane.config.dbUrl, keyEncryptionKeyFile: path.join(cp.plane.config.dataDir, 'key-encryption.key'), schedulerEnabled: false, driftCron: 'off' });
    try {
      for (let round = 0; round < 3; round++) {
        await assertFleetTelemetry(cp); // the first plane's aggregate now holds every minute of the window
        await assertFleetTelemetry(second);
        const now = Date.now();
        // Through the second plane's database connection only: late reports into minutes both aggregates hold, and new ones.
        await writeRandomTelemetry(second.plane.db, { ids, random, fromMs: now - 14 * 60_000, toMs: now, perDevice: 1, seqs });
        await writeRandomTelemetry(second.plane.db, { ids: ids.slice(0, 10), random, fromMs: now - 5_000, toMs: now, perDevice: 1, seqs });
      }
      await assertFleetTelemetry(cp);
      await assertFleetTelemetry(second);
    } finally {
      await second.stop();
    }
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

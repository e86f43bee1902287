// Bounded API input: time windows and buckets, label sets, list pages. Each refusal is a 400 with the
// error body, never a 500, and the bounds themselves are accepted.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MAX_LABELS } from '../server/http/bounds.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';

const labels = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, `v${i}`]));

describe('API input bounds', () => {
  let cp: TestPlane;
  before(async () => {
    cp = await startControlPlane({ driftCron: 'off' });
  });
  after(async () => {
    await cp.stop();
  });

  test('time windows beyond a year are a 400 on /drift, /drift/evaluate, /telemetry and /performance (were a 500)', async () => {
    const huge = '999999999d';
    const calls = [
      cp.api('GET', `/api/v1/drift?model=m@1&window=${huge}`),
      cp.api('POST', '/api/v1/drift/evaluate', { json: { window: huge } }),
      cp.api('GET', `/api/v1/telemetry?window=${huge}`),
      cp.api('GET', `/api/v1/performance?model=m@1&window=${huge}`),
      cp.api('GET', `/api/v1/performance?model=m@1&bucket=${huge}`),
      cp.api('GET', '/api/v1/telemetry?window=367d'),
    ];
    for (const r of await Promise.all(calls)) {
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'invalid_request');
      assert.match(r.body.error.message, /at most 366d/);
    }
    // A year is allowed (an unknown model is then the answer, not the window).
    assert.equal((await cp.api('GET', '/api/v1/drift?model=m@1&window=366d')).status, 404);
  });

  test('a window cut into more than 1000 buckets is refused', async () => {
    const r = await cp.api('GET', '/api/v1/performance?model=m@1&window=30d&bucket=1s');
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /more than 1000 buckets/);
    assert.equal((await cp.api('GET', '/api/v1/performance?model=m@1&window=30d&bucket=1h')).status, 404);
  });

  test(`label sets: at most ${MAX_LABELS} on enrollment tokens and devices`, async () => {
    const tooMany = await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: labels(20_000) } });
    assert.equal(tooMany.status, 400);
    assert.match(tooMany.body.error.message, new RegExp(`at most ${MAX_LABELS} labels`));
    assert.equal((await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: labels(MAX_LABELS + 1) } })).status, 400);
    const long = await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'x'.repeat(65) } } });
    assert.equal(long.status, 400);
    const ok = await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: labels(MAX_LABELS - 1) } });
    assert.equal(ok.status, 201);
    const dev = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: ok.body.token, facts: { arch: 'x64', cpus: 1, memoryBytes: 1, os: 'linux', agentVersion: '0.1.0' } } });
    assert.equal(dev.status, 201);
    // Each patch is within bounds, but the device would end up with MAX_LABELS + 1.
    const patch = await cp.api('PATCH', `/api/v1/devices/${dev.body.deviceId}/labels`, { json: { set: { extra1: 'a', extra2: 'b' } } });
    assert.equal(patch.status, 400);
    assert.equal((await cp.api('GET', `/api/v1/devices/${dev.body.deviceId}`)).body.labels.extra1, undefined, 'nothing stored');
    assert.equal((await cp.api('PATCH', `/api/v1/devices/${dev.body.deviceId}/labels`, { json: { set: { extra1: 'a' } } })).status, 200);
  });

  test('list endpoints page with limit (1–1000, default 100) and offset', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: `c${i}`, selector: `n=${i}` } })).status, 201);
    const all = (await cp.api('GET', '/api/v1/cohorts')).body.cohorts.map((c: { name: string }) => c.name);
    assert.deepEqual(all, ['c0', 'c1', 'c2', 'c3', 'c4']);
    const second = await cp.api('GET', '/api/v1/cohorts?limit=2&offset=2');
    assert.deepEqual(second.body.cohorts.map((c: { name: string }) => c.name), ['c2', 'c3']);
    // Lists read page by page in SQL too (the audit log holds the five cohort creations, newest first).
    const a0 = (await cp.api('GET', '/api/v1/audit?action=cohort.create&limit=1&offset=0')).body.entries;
    const a1 = (await cp.api('GET', '/api/v1/audit?action=cohort.create&limit=1&offset=1')).body.entries;
    assert.equal(a0.length, 1);
    assert.equal(a1.length, 1);
    assert.notEqual(a0[0].id, a1[0].id);
    for (const path of ['/api/v1/cohorts', '/api/v1/devices', '/api/v1/datasets', '/api/v1/tokens', '/api/v1/enroll-tokens', '/api/v1/agent-settings', '/api/v1/models', '/api/v1/audit', '/api/v1/deployments', '/api/v1/rollouts', '/api/v1/alerts', '/api/v1/bundles', '/api/v1/jobs']) {
      assert.equal((await cp.api('GET', `${path}?limit=1001`)).status, 400, path);
      assert.equal((await cp.api('GET', `${path}?limit=0`)).status, 400, path);
      assert.equal((await cp.api('GET', `${path}?limit=1`)).status, 200, path);
    }
  });
});

// The console's reading of rollout gates (web/src/pages/rollout-gates.ts): today's configured
// thresholds beside the last check's measurements, and a `gates` list in the check (new gate kinds,
// e.g. shadow agreement or latency) shown as given, without a console change.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gateRows, show, stateText } from '../web/src/pages/rollout-gates.ts';

test('configured max/min thresholds pair with the check\'s measured values', () => {
  const rows = gateRows({ maxFailedUpdates: 1, maxErrorRate: 0.05, onFailure: 'pause' }, { stage: 0, failed: ['d1', 'd2'], errorRate: 0.01, devices: 4 });
  assert.deepEqual(rows, [
    { name: 'maxFailedUpdates', value: 2, threshold: 1, ok: false, bound: 'max' },
    { name: 'maxErrorRate', value: 0.01, threshold: 0.05, ok: true, bound: 'max' },
  ]);
  assert.deepEqual(gateRows({ minAgreement: 0.9 }, { agreement: 0.95 }), [{ name: 'minAgreement', value: 0.95, threshold: 0.9, ok: true, bound: 'min' }]);
  assert.equal(gateRows({ maxErrorRate: 0.05 }, { errorRate: null })[0].ok, null, 'not measured yet');
  assert.equal(gateRows({ maxErrorRate: 0.05 }, null)[0].value, null);
});

test('a gates list in the check is shown as the server gives it, whatever its field names', () => {
  const check = {
    gates: [
      { kind: 'shadowAgreement', value: 0.97, threshold: 0.95, ok: true },
      { name: 'p95LatencyMs', measured: 41.5, limit: 30, passed: false },
      { gate: 'drift', actual: null, max: 0.2 },
      'not a gate',
    ],
  };
  assert.deepEqual(gateRows({ maxFailedUpdates: 0 }, check), [
    { name: 'shadowAgreement', value: 0.97, threshold: 0.95, ok: true },
    { name: 'p95LatencyMs', value: 41.5, threshold: 30, ok: false },
    { name: 'drift', value: null, threshold: 0.2, ok: null },
  ]);
  assert.equal(show(null), 'not measured yet');
  assert.equal(show(3), '3');
  assert.equal(show(0.123456), '0.1235');
});

test('the server\'s own gate list (name, value, threshold, status, reason) keeps its state and reason', () => {
  const rows = gateRows({}, { gates: [
    { name: 'updateSuccessRatio', value: 0.5, threshold: '≥ 0.95', status: 'waiting', reason: '1 of 2 active, 1 not done' },
    { name: 'failedUpdates', value: 0, threshold: '≤ 0', status: 'pass', reason: 'none failed' },
    { name: 'errorRate', value: 0.2, threshold: '≤ 0.05', status: 'fail', reason: '2 errors in 10 requests' },
    { name: 'latencyRegression', value: null, threshold: '≤ 1.2 × previous p95', status: 'no-data', reason: 'no requests served on the new bundle' },
  ] });
  assert.deepEqual(rows.map((g) => [g.name, g.ok, stateText(g), g.reason]), [
    ['updateSuccessRatio', null, 'waiting', '1 of 2 active, 1 not done'],
    ['failedUpdates', true, 'passing', 'none failed'],
    ['errorRate', false, 'failing', '2 errors in 10 requests'],
    // Not measured after the bake: said as such, never shown passing.
    ['latencyRegression', null, 'no-data', 'no requests served on the new bundle'],
  ]);
});

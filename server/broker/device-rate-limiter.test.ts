import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DeviceRateLimiter } from './device-rate-limiter.ts';

const limits = { ratePerS: 2, burst: 3, strikes: 2, strikeWindowMs: 10_000, backoffMs: 5000 };

test('token bucket per device and channel: a burst, then the rate; channels and devices are independent', () => {
  let now = 0;
  const l = new DeviceRateLimiter(limits, () => now);
  assert.deepEqual([1, 2, 3, 4].map(() => l.take('d1', 'telemetry')), [true, true, true, false]);
  assert.equal(l.take('d1', 'stats'), true);
  assert.equal(l.take('d2', 'telemetry'), true);
  now += 500; // 2/s: one token back
  assert.deepEqual([l.take('d1', 'telemetry'), l.take('d1', 'telemetry')], [true, false]);
});

test('strikes within the window ban a device for the back-off; old strikes expire; sweep forgets idle state', () => {
  let now = 0;
  const l = new DeviceRateLimiter(limits, () => now);
  assert.equal(l.strike('d1'), false);
  now += 10_001; // the first strike left the window
  assert.equal(l.strike('d1'), false);
  assert.equal(l.strike('d1'), true);
  assert.equal(l.bannedFor('d1'), 5000);
  now += 4000;
  assert.equal(l.bannedFor('d1'), 1000);
  now += 1000;
  assert.equal(l.bannedFor('d1'), 0);
  l.take('d1', 'telemetry');
  now += 10_000;
  l.sweep();
  assert.equal((l as unknown as { buckets: Map<string, unknown> }).buckets.size, 0);
});

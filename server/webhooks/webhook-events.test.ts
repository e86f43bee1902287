import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ServiceError } from '../errors.ts';
import { filterMatches, normalizeFilter } from './webhook-events.ts';

test('filters: exact names, kind.* patterns and aliases match; device events never do', () => {
  const f = normalizeFilter(['rollout.*', 'job.finished', 'alert.opened', 'alert.opened']);
  assert.deepEqual(f, ['rollout.*', 'job.succeeded', 'job.failed', 'job.cancelled', 'alert.opened']);
  assert.ok(filterMatches(f, 'rollout.paused'));
  assert.ok(filterMatches(f, 'job.failed'));
  assert.ok(!filterMatches(f, 'alert.closed'));
  assert.ok(!filterMatches(f, 'model.version_registered'));
  assert.ok(!filterMatches(['*'], 'device.update'));
  assert.ok(filterMatches(['*'], 'model.alias_moved'));
});

test('unknown names and empty filters are refused with the valid names', () => {
  assert.throws(() => normalizeFilter(['rollout.*', 'rollout.exploded', 'device.*']), (e: ServiceError) => e.code === 'invalid_request' && /rollout\.exploded.*device\.\*/.test(e.message) && (e.details as { valid: string[] }).valid.includes('job.finished'));
  assert.throws(() => normalizeFilter([]), /empty/);
  assert.throws(() => normalizeFilter(['  ']), /unknown/);
});

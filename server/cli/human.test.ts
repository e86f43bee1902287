// Readable durations, sizes and relative times for CLI tables.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ago, duration, size } from './human.ts';

test('durations read as people say them, without 60-minute hours', () => {
  assert.equal(duration(0.25), '250 ms');
  assert.equal(duration(42), '42 s');
  assert.equal(duration(180), '3 min');
  assert.equal(duration(3600), '1 h');
  assert.equal(duration(2 * 3600 + 5 * 60), '2 h 5 min');
  assert.equal(duration(86_399), '1 d');
  assert.equal(duration(86_280), '23 h 58 min');
  assert.equal(duration(3 * 86_400 + 4 * 3600), '3 d 4 h');
  assert.equal(duration(null), '-');
});

test('sizes in decimal units', () => {
  assert.equal(size(812), '812 B');
  assert.equal(size(4200), '4.2 KB');
  assert.equal(size(18_500_000), '18.5 MB');
  assert.equal(size(1_210_000_000), '1.21 GB');
});

test('relative times, past and future', () => {
  const now = Date.parse('2026-01-01T12:00:00Z');
  assert.equal(ago('2026-01-01T11:57:00Z', now), '3 min ago');
  assert.equal(ago('2026-01-03T12:00:00Z', now), 'in 2 d');
  assert.equal(ago('2026-01-01T11:59:58Z', now), 'just now');
  assert.equal(ago(null, now), '-');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { matches, parseSelector, SelectorError } from './selector.ts';

test('selector parses every operator and matches labels', () => {
  const sel = parseSelector('site=berlin, hw in (rpi4,jetson),!quarantine,tier!=dev,gpu,zone notin (a, b)');
  assert.equal(sel.length, 6);
  const base = { site: 'berlin', hw: 'rpi4', tier: 'prod', gpu: 'yes', zone: 'c' };
  assert.equal(matches(sel, base), true);
  assert.equal(matches(sel, { ...base, quarantine: 'true' }), false, '!quarantine excludes labelled devices');
  assert.equal(matches(sel, { ...base, hw: 'x86' }), false, 'in () restricts values');
  assert.equal(matches(sel, { ...base, tier: 'dev' }), false, '!= excludes');
  assert.equal(matches(sel, { ...base, zone: 'a' }), false, 'notin excludes');
  const { gpu: _g, ...noGpu } = base;
  assert.equal(matches(sel, noGpu), false, 'bare key requires existence');
  assert.equal(matches(parseSelector(''), {}), true, 'empty selector matches all');
});

test('selector rejects malformed input with a position', () => {
  for (const bad of ['hw in (rpi4', 'hw in ()', '=x', 'a=b,', 'a b', '!', 'a=b c']) {
    assert.throws(() => parseSelector(bad), SelectorError, bad);
  }
});

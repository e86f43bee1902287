// The console's reload guard (web/src/ui/one-at-a-time.ts, behind useLoad): calls during a run queue one
// more run, never a second run at once, and their promise settles after that follow-up run.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { oneAtATime } from '../web/src/ui/one-at-a-time.ts';

test('calls during a run: no second run at once, one follow-up run, settled after it', async () => {
  let running = 0;
  let maxRunning = 0;
  const runs: Array<() => void> = [];
  const reload = oneAtATime(async () => {
    running++;
    maxRunning = Math.max(maxRunning, running);
    await new Promise<void>((r) => runs.push(r));
    running--;
  });
  const first = reload();
  const during = [reload(), reload(), reload()];
  assert.equal(runs.length, 1, 'one run at a time');
  let settled = false;
  void during[0].then(() => (settled = true));
  runs[0]();
  await new Promise((r) => setImmediate(r));
  assert.equal(runs.length, 2, 'the calls during the run asked for exactly one more');
  assert.equal(settled, false, 'not settled before the follow-up run is done');
  runs[1]();
  await Promise.all([first, ...during]);
  assert.equal(runs.length, 2);
  assert.equal(maxRunning, 1);
  // Idle again: the next call runs at once.
  const next = reload();
  assert.equal(runs.length, 3);
  runs[2]();
  await next;
});

test('a failed run does not wedge it: the next call runs', async () => {
  let n = 0;
  const reload = oneAtATime(async () => {
    n++;
    if (n === 1) throw new Error('boom');
  });
  await assert.rejects(reload(), /boom/);
  await reload();
  assert.equal(n, 2);
});

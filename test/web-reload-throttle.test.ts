// The console's event-driven reload schedule (web/src/ui/reload-throttle.ts, behind useEventReload): a burst of
// events is one reload, at least `minMs` after the first; events during a reload ask for one more after it; and
// after a slow reload the next waits twice its time, so a slow page is not reloaded back to back while events
// stream in (a fixed delay reloaded the 10,000-device fleet page continuously during a deployment).
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { ReloadThrottle } from '../web/src/ui/reload-throttle.ts';

test('a burst is one reload; a slow reload spaces the next by twice its time; a fast one by the minimum', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    let now = 0;
    const finish: Array<() => void> = [];
    const throttle = new ReloadThrottle(() => new Promise<void>((r) => finish.push(r)), 500, () => now);
    const settle = () => new Promise((r) => setImmediate(r));
    const advance = (ms: number) => {
      now += ms;
      mock.timers.tick(ms);
    };

    for (let i = 0; i < 50; i++) throttle.event();
    advance(499);
    assert.equal(finish.length, 0, 'not before the minimum delay');
    advance(1);
    assert.equal(finish.length, 1, 'fifty events, one reload');

    // Events while it runs (a 600 ms load) ask for exactly one more, 1,200 ms after it ended.
    throttle.event();
    throttle.event();
    advance(600);
    finish[0]();
    await settle();
    advance(1199);
    assert.equal(finish.length, 1, 'a 600 ms reload: the next waits 1,200 ms');
    advance(1);
    assert.equal(finish.length, 2);

    // A fast reload (50 ms): the next is back to the minimum delay after the event.
    advance(50);
    finish[1]();
    await settle();
    advance(5_000);
    throttle.event();
    advance(499);
    assert.equal(finish.length, 2);
    advance(1);
    assert.equal(finish.length, 3);
    finish[2]();
    await settle();

    // Stopped (the page went away): nothing more.
    throttle.event();
    throttle.stop();
    advance(10_000);
    assert.equal(finish.length, 3);
  } finally {
    mock.timers.reset();
  }
});

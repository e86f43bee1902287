// ModelHost with `thread: 'auto'` (thread-choice.ts): each model starts in the worker, its first runs
// are timed there, and a cheap one moves to the caller's thread while requests keep flowing; a heavy
// one stays in the worker; 'worker' and 'main' stay what they were. Real onnxruntime throughout.
import assert from 'node:assert/strict';
import { copyFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { heavyFeeds, makeFixtures, tabularFeeds, tabularReference, tabularRows, type Fixtures } from '../../test/fixtures/runtime-models.ts';
import { close } from '../../test/helpers/runtime-checks.ts';
import { ModelHost, type HostEvent, type ModelHandle } from './model-host.ts';
import { AUTO_RUNS, MAX_CHOICES, windowsBeforeNextChoice } from './thread-choice.ts';


/** Polls `check` every 10 ms, at most `ms`. */
async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Sequential runs of the tabular model `version` through `h`, each answer checked. */
async function tabularRuns(host: ModelHost, h: ModelHandle, version: number, n: number): Promise<void> {
  for (let i = 0; i < n; i++) close((await host.infer(tabularFeeds(tabularRows(1, i)), { handle: h })).logits.data as Float32Array, tabularReference(version, tabularRows(1, i)), `run ${i}`);
}

/** Sequential runs until the model has moved to the main thread (each window of runs is a new choice; a cold worker's first may say 'worker'). */
async function runUntilMoved(host: ModelHost, h: ModelHandle, version: number): Promise<void> {
  for (let i = 0; host.placement(h)!.thread !== 'main'; i++) {
    if (i > 50 * AUTO_RUNS) assert.fail(`not moved after ${i} runs: ${JSON.stringify(host.placement(h))}`);
    await tabularRuns(host, h, version, 1);
  }
}

let fx: Fixtures;
before(async () => {
  fx = await makeFixtures();
});
after(async () => {
  await fx.cleanup();
});

test('auto: the 8→3 MLP moves to the main thread once timed (its file moved away meanwhile), the worker ends, and the next load starts one again', async () => {
  const events: HostEvent[] = [];
  const host = new ModelHost({ thread: 'auto', spawnOnLoad: true, onEvent: (e) => events.push(e) });
  await host.start();
  try {
    assert.equal(host.workerThreads, 0, 'no worker before the first load');
    // The agent moves a bundle's files from staging/ to bundles/ when it activates it: the move to the
    // main thread must not need the path the model was loaded from.
    const staged = join(fx.dir, 'staged-model.onnx');
    await copyFile(await fx.tabular(1), staged);
    const h = await host.load(staged);
    await rename(staged, join(fx.dir, 'installed-model.onnx'));
    host.activate(h);
    assert.equal(host.workerThreads, 1);
    assert.deepEqual({ ...host.placement(h), runs: undefined }, { mode: 'auto', thread: 'worker', reason: 'measuring its first runs in the worker (0 timed)', choices: 0, runs: undefined });
    await runUntilMoved(host, h, 1);
    await until(() => host.placement(h)!.thread === 'main' && events.some((e) => e.type === 'worker-retired'), 'the move and the worker to end');
    assert.equal(host.workerThreads, 0);
    const placed = host.placement(h)!;
    assert.match(placed.reason, /moved to the agent's thread/);
    assert.equal(placed.runs!.timed, AUTO_RUNS);
    assert.ok(placed.runs!.p50Us <= 200, `p50 ${placed.runs!.p50Us} µs`);
    // The first choice is announced, and the move: one event when the first window of runs already chose
    // this thread, two when a cold worker's first runs chose the worker (seen at load 20).
    const seen = events.map((e) => (e.type === 'placed' ? `placed ${e.thread}` : e.type));
    assert.ok([['placed main', 'worker-retired'], ['placed worker', 'placed main', 'worker-retired']].some((want) => JSON.stringify(want) === JSON.stringify(seen)), String(seen));
    assert.deepEqual(host.stats().workers.map((w) => w.threadId), [undefined, 0], 'only the main-thread slot serves');
    await tabularRuns(host, h, 1, 5); // answers unchanged on the main thread

    // An update: the next model is staged in a (new) worker and measured there, then moves as well.
    const h2 = await host.load(await fx.tabular(2));
    assert.equal(host.workerThreads, 1, 'the load started a worker again');
    assert.equal(host.placement(h2)!.thread, 'worker');
    await runUntilMoved(host, h2, 2);
    await host.release(host.activate(h2)!);
    await until(() => host.placement(h2)!.thread === 'main' && host.workerThreads === 0, 'the second move');
    await tabularRuns(host, h2, 2, 3);
    assert.equal(host.stats().handles, 1);
  } finally {
    await host.stop();
  }
});

test('auto: a heavy model (milliseconds a run) stays in the worker, and a worker crash still restarts with it', async () => {
  const events: HostEvent[] = [];
  const host = new ModelHost({ thread: 'auto', spawnOnLoad: true, onEvent: (e) => events.push(e) });
  await host.start();
  try {
    const h = await host.load(fx.heavy);
    host.activate(h);
    for (let i = 0; i <= AUTO_RUNS; i++) assert.deepEqual((await host.infer(heavyFeeds(1))).y.dims, [1, 1024]);
    const placed = host.placement(h)!;
    assert.equal(placed.thread, 'worker');
    assert.match(placed.reason, /p50 over 200 µs.*kept off the agent's thread/);
    assert.ok(placed.runs!.p50Us > 1000, `heavy p50 ${placed.runs!.p50Us} µs`);
    assert.equal(host.workerThreads, 1);
    assert.deepEqual(events.filter((e) => e.type === 'placed').map((e) => (e as { thread: string }).thread), ['worker']);

    host.simulateCrash();
    await until(() => events.some((e) => e.type === 'worker-restarted'), 'the restart');
    assert.deepEqual((await host.infer(heavyFeeds(2))).y.dims, [2, 1024]);
    assert.equal(host.placement(h)!.thread, 'worker');
  } finally {
    await host.stop();
  }
});

test('auto: after the first choices a model kept in the worker is looked at again, each time after twice as many runs', async () => {
  assert.deepEqual([0, 7, 8, 9, 10, 15, 16, 40].map(windowsBeforeNextChoice), [0, 0, 1, 3, 7, 255, 255, 255]);
  const host = new ModelHost({ thread: 'auto', spawnOnLoad: true });
  await host.start();
  try {
    const h = await host.load(fx.heavy);
    host.activate(h);
    // Windows of timed runs complete after the untimed first run and each AUTO_RUNS more.
    let done = 0;
    const choicesAfter = async (windows: number) => {
      for (; done < 1 + windows * AUTO_RUNS; done++) await host.infer(heavyFeeds(1));
      return host.placement(h)!.choices;
    };
    assert.equal(await choicesAfter(MAX_CHOICES), MAX_CHOICES, 'one choice a window at first');
    assert.equal(await choicesAfter(MAX_CHOICES + 1), MAX_CHOICES, 'then one window passes');
    assert.equal(await choicesAfter(MAX_CHOICES + 2), MAX_CHOICES + 1, 'and it is looked at again');
    assert.equal(await choicesAfter(MAX_CHOICES + 5), MAX_CHOICES + 1, 'three windows pass');
    assert.equal(await choicesAfter(MAX_CHOICES + 6), MAX_CHOICES + 2);
    assert.equal(host.placement(h)!.thread, 'worker', 'a heavy model stays where it is');
  } finally {
    await host.stop();
  }
});

test('auto: requests in flight during the move all answer, on the worker or on the main thread', async () => {
  let inFlightAtSwitch = -1;
  const host: ModelHost = new ModelHost({
    thread: 'auto',
    spawnOnLoad: true,
    onEvent: (e) => {
      if (e.type === 'placed' && e.thread === 'main') inFlightAtSwitch = host.queueDepth;
    },
  });
  await host.start();
  try {
    const h = await host.load(await fx.tabular(3));
    host.activate(h);
    let answered = 0;
    let afterMove = 0;
    const client = async (c: number) => {
      // Until the worker has ended, and then some: every request before, during and after the move.
      for (let i = 0; afterMove < 400; i++) {
        const seed = c * 100_000 + i;
        const n = 1 + (i % 3);
        const out = await host.infer(tabularFeeds(tabularRows(n, seed)), { mergeable: i % 2 === 0 });
        close(out.logits.data as Float32Array, tabularReference(3, tabularRows(n, seed)), `client ${c} request ${i}`);
        answered++;
        if (host.workerThreads === 0 && host.placement(h)!.thread === 'main') afterMove++;
        if (answered > 200_000) assert.fail('the model never moved');
      }
    };
    await Promise.all(Array.from({ length: 16 }, (_, c) => client(c)));
    assert.equal(host.placement(h)!.thread, 'main');
    assert.ok(inFlightAtSwitch > 0, `requests were on the worker when the switch happened (${inFlightAtSwitch})`);
    assert.equal(host.queueDepth, 0);
  } finally {
    await host.stop();
  }
});

test('auto: a model released while it moves leaves nothing behind', async () => {
  const host = new ModelHost({ thread: 'auto', spawnOnLoad: true });
  await host.start();
  try {
    const h = await host.load(await fx.tabular(1));
    await tabularRuns(host, h, 1, AUTO_RUNS + 1); // the last answer starts the move
    await host.release(h);
    assert.equal(host.placement(h), undefined);
    assert.equal(host.stats().handles, 0);
    await until(() => host.workerThreads === 0, 'the worker to end');
    const h2 = await host.load(await fx.tabular(2));
    await tabularRuns(host, h2, 2, 2);
  } finally {
    await host.stop();
  }
});

test("explicit 'worker' and 'main' are honoured whatever the model's cost", async () => {
  for (const thread of ['worker', 'main'] as const) {
    const host = new ModelHost({ thread, spawnOnLoad: true });
    await host.start();
    try {
      const h = await host.load(await fx.tabular(1));
      await tabularRuns(host, h, 1, AUTO_RUNS + 4);
      await new Promise((r) => setTimeout(r, 50));
      const placed = host.placement(h)!;
      assert.deepEqual({ mode: placed.mode, thread: placed.thread, reason: placed.reason }, { mode: thread, thread, reason: `set to ${thread}` });
      assert.equal(placed.runs!.timed, AUTO_RUNS, 'run times are shown in every mode');
      assert.equal(host.workerThreads, thread === 'worker' ? 1 : 0);
    } finally {
      await host.stop();
    }
  }
});

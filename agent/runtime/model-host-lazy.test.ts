// `spawnOnLoad`: the agent starts its inference worker (≈ 22 MB with onnxruntime) only when the
// first model is loaded, so an agent with no bundle yet does not pay for it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { makeFixtures, type Fixtures } from '../../test/fixtures/runtime-models.ts';
import { RuntimeError } from './errors.ts';
import { ModelHost } from './model-host.ts';

let fx: Fixtures;
before(async () => {
  fx = await makeFixtures();
});
after(async () => {
  await fx.cleanup();
});

test('with spawnOnLoad no worker runs until the first load, which starts it and serves', async (t) => {
  const host = new ModelHost({ spawnOnLoad: true });
  await host.start();
  t.after(() => host.stop());
  assert.deepEqual(host.stats().workers.map((w) => w.threadId), [undefined], 'no worker thread after start()');
  await assert.rejects(host.infer({ features: { type: 'float32', dims: [1, 8], data: new Float32Array(8) } }), (e: RuntimeError) => e.code === 'NO_ACTIVE_MODEL');

  // Two loads at once start one worker, not two.
  const [a, b] = await Promise.all([host.load(await fx.tabular(1)), host.load(await fx.tabular(2))]);
  const workers = host.stats().workers;
  assert.equal(workers.length, 1);
  assert.equal(workers[0].state, 'ready');
  assert.equal(typeof workers[0].threadId, 'number');
  host.activate(b);
  const out = await host.infer({ features: { type: 'float32', dims: [1, 8], data: new Float32Array(8).fill(0.5) } });
  assert.deepEqual(Object.keys(out), b.outputNames);
  await host.release(a);
  assert.equal(host.stats().workers[0].threadId, workers[0].threadId, 'later loads reuse the worker');
});

test('a model that fails to load with spawnOnLoad is MODEL_LOAD_FAILED, and the host keeps serving', async (t) => {
  const host = new ModelHost({ spawnOnLoad: true });
  await host.start();
  t.after(() => host.stop());
  await assert.rejects(host.load(fx.broken), (e: RuntimeError) => e.code === 'MODEL_LOAD_FAILED');
  host.activate(await host.load(await fx.tabular(1)));
  await host.infer({ features: { type: 'float32', dims: [1, 8], data: new Float32Array(8) } });
});

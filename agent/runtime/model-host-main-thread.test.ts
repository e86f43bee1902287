// ModelHost with `thread: 'main'` (inline-slot.ts): the same answers, errors and swap/release
// semantics as the worker host (model-host.test.ts), with the sessions on the caller's thread.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { heavyFeeds, makeFixtures, tabularFeeds, tabularReference, tabularRows, type Fixtures } from '../../test/fixtures/runtime-models.ts';
import { close, rejectsWith } from '../../test/helpers/runtime-checks.ts';
import { RuntimeError } from './errors.ts';
import { ModelHost, type ModelHandle } from './model-host.ts';


let fx: Fixtures;
before(async () => {
  fx = await makeFixtures();
});
after(async () => {
  await fx.cleanup();
});

describe('ModelHost on the main thread', () => {
  let host: ModelHost;
  before(async () => {
    host = new ModelHost({ thread: 'main', spawnOnLoad: true });
    await host.start();
  });
  after(async () => {
    await host.stop();
  });

  test('no worker thread; answers equal a direct InferenceSession.run', async () => {
    const h = await host.load(await fx.tabular(1));
    host.activate(h);
    assert.deepEqual(h.inputs[0], { name: 'features', isTensor: true, type: 'float32', shape: ['batch', 8] });
    assert.deepEqual(host.stats().workers, [{ state: 'ready', inFlight: 0, queued: 0, crashes: 0, mergedRuns: 0, threadId: 0 }]);
    const direct = await ort.InferenceSession.create(await fx.tabular(1), { intraOpNumThreads: 1, interOpNumThreads: 1 });
    try {
      for (const n of [1, 3, 17]) {
        const want = (await direct.run({ features: new ort.Tensor('float32', tabularRows(n, n), [n, 8]) })).logits;
        const got = (await host.infer(tabularFeeds(tabularRows(n, n)))).logits;
        assert.deepEqual(got.dims, [n, 3]);
        assert.deepEqual(got.data, want.data);
        close(got.data as Float32Array, tabularReference(1, tabularRows(n, n)), `batch ${n}`);
      }
    } finally {
      await direct.release();
    }
  });

  test('requests issued together are merged into one run, each answer equal to its solo answer', async () => {
    const before = host.stats().workers[0].mergedRuns;
    const outs = await Promise.all(Array.from({ length: 24 }, (_, i) => host.infer(tabularFeeds(tabularRows(1 + (i % 3), i)), { mergeable: true })));
    outs.forEach((o, i) => close(o.logits.data as Float32Array, tabularReference(1, tabularRows(1 + (i % 3), i)), `request ${i}`));
    assert.ok(host.stats().workers[0].mergedRuns - before >= 24, `merged ${host.stats().workers[0].mergedRuns - before} of 24`);
  });

  test('invalid feeds and broken models are the same typed errors as with a worker', async () => {
    await rejectsWith(host.infer({ features: { type: 'float32', dims: [1, 7], data: new Float32Array(7) } }), 'INVALID_INPUT', /dim 1 must be 8/);
    await rejectsWith(host.infer({ other: { type: 'float32', dims: [1, 8], data: new Float32Array(8) } }), 'INVALID_INPUT', /unknown input "other"/);
    const active = host.active;
    await rejectsWith(host.load(fx.broken), 'MODEL_LOAD_FAILED', /broken\.onnx/);
    await rejectsWith(host.load(`${fx.dir}/does-not-exist.onnx`), 'MODEL_LOAD_FAILED');
    assert.equal(host.active, active);
    assert.deepEqual((await host.infer(tabularFeeds(tabularRows(1, 3)))).logits.dims, [1, 3]);
  });

  test('activate swaps atomically under pipelined load; release waits for the requests on the handle', async () => {
    const versions = [2, 3, 4];
    const version = new Map<number, number>();
    const load = async (v: number): Promise<ModelHandle> => {
      const h = await host.load(await fx.tabular(v));
      version.set(h.id, v);
      return h;
    };
    const releases: Promise<void>[] = [host.release(host.activate(await load(versions[0]))!)];
    // The next models are loaded up front and the swap happens in the client that takes the swap
    // point's request, before sending it: with no thread hand-off the clients are fast enough to send
    // everything left while a model loads, and then the last model would serve nothing.
    const next = [await load(versions[1]), await load(versions[2])];
    const total = 600;
    const swapAt = [200, 400];
    let sent = 0;
    const seen = new Set<number>();
    const client = async () => {
      while (sent < total) {
        const seed = sent++;
        const k = swapAt.indexOf(seed);
        if (k >= 0) releases.push(host.release(host.activate(next[k])!));
        const v = version.get(host.active!.id)!;
        const out = await host.infer(tabularFeeds(tabularRows(1, seed)), { mergeable: true });
        close(out.logits.data as Float32Array, tabularReference(v, tabularRows(1, seed)), `request ${seed} on v${v}`);
        seen.add(v);
      }
    };
    await Promise.all(Array.from({ length: 16 }, client));
    await Promise.all(releases);
    assert.deepEqual([...seen].sort(), versions, 'every model served some requests');
    assert.equal(host.stats().handles, 1, 'only the active model is left loaded');

    const heavy = await host.load(fx.heavy);
    const order: string[] = [];
    const runs = Array.from({ length: 6 }, (_, i) => host.infer(heavyFeeds(4), { handle: heavy }).then(() => order.push(`run${i}`)));
    const released = host.release(heavy).then(() => order.push('released'));
    await Promise.all([...runs, released]);
    assert.equal(order.at(-1), 'released', `release finished before a request on it: ${order}`);
    await rejectsWith(host.infer(heavyFeeds(1), { handle: heavy }), 'UNKNOWN_HANDLE');
  });
});

test('main-thread host: stop finishes or fails (NOT_RUNNING) what was issued and leaves no handles; later calls are NOT_RUNNING', async () => {
  const host = new ModelHost({ thread: 'main', stopTimeoutMs: 1 });
  await host.start();
  host.activate(await host.load(fx.heavy));
  const queued = Array.from({ length: 40 }, () => host.infer(heavyFeeds(8)).then(() => 'ok', (e: RuntimeError) => e.code));
  await host.stop();
  const results = await Promise.all(queued);
  assert.ok(results.every((r) => r === 'ok' || r === 'NOT_RUNNING'), results.join(','));
  assert.equal(host.stats().handles, 0);
  await rejectsWith(host.infer(heavyFeeds(1)), 'NOT_RUNNING');
});

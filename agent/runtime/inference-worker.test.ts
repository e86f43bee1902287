import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { encodeModel, int64Tensor, node, valueInfo } from '../../server/onnx/build.ts';
import { makeFixtures, tabularReference, type Fixtures } from '../../test/fixtures/runtime-models.ts';
import { prepareTransfer, TRANSFER_MIN_BYTES } from './tensor.ts';
import type { FromWorker, ToWorker } from './worker-protocol.ts';
import { waitFor } from '../testing/harness.ts';

// The worker protocol on its own (ModelHost checks feeds before sending them; the worker must
// still refuse bad ones itself, since it is the last step before native code).
let fx: Fixtures;
let worker: Worker;
const inbox: FromWorker[] = [];
const waiters: Array<() => void> = [];

function next(match: (m: FromWorker) => boolean): Promise<FromWorker> {
  return new Promise((resolve) => {
    const check = () => {
      const i = inbox.findIndex(match);
      if (i < 0) return false;
      resolve(inbox.splice(i, 1)[0]);
      return true;
    };
    if (!check()) waiters.push(function retry() {
      if (!check()) waiters.push(retry);
    });
  });
}
const send = (msg: ToWorker, transfer: ArrayBuffer[] = []) => worker.postMessage(msg, transfer);
const byId = (id: number) => (m: FromWorker) => ('id' in m && m.id === id) || (m.op === 'results' && m.results.some((r) => r.id === id));

before(async () => {
  fx = await makeFixtures();
  worker = new Worker(new URL('./worker-bootstrap.mjs', import.meta.url), { workerData: { entry: new URL('./inference-worker.ts', import.meta.url).href } });
  worker.on('message', (m: FromWorker) => {
    inbox.push(m);
    for (const w of waiters.splice(0)) w();
  });
  await next((m) => m.op === 'ready');
});
after(async () => {
  const exited = new Promise((r) => worker.once('exit', r));
  send({ op: 'close' });
  await exited; // close releases the sessions and ends the thread by itself
  await fx.cleanup();
});

test('load → metadata; run → outputs (buffers transferred back); release', async () => {
  send({ op: 'load', id: 1, handle: 7, modelPath: await fx.tabular(2) });
  const loaded = await next(byId(1));
  assert.equal(loaded.op, 'loaded');
  if (loaded.op !== 'loaded') return;
  assert.deepEqual(loaded.info, {
    inputNames: ['features'],
    outputNames: ['logits'],
    inputs: [{ name: 'features', isTensor: true, type: 'float32', shape: ['batch', 8] }],
    outputs: [{ name: 'logits', isTensor: true, type: 'float32', shape: ['batch', 3] }],
  });
  const x = Float32Array.from({ length: 16 }, (_, i) => i / 4);
  send({ op: 'run', runs: [{ id: 2, handle: 7, feeds: { features: { type: 'float32', dims: [2, 8], data: x } } }, { id: 3, handle: 7, feeds: { features: { type: 'float32', dims: [2, 8], data: x.slice() } } }] }, [x.buffer as ArrayBuffer]);
  const res = await next(byId(2));
  assert.equal(res.op, 'results');
  if (res.op !== 'results') return;
  assert.equal(res.results.length, 2, 'one message answers the whole batch');
  const r = res.results[0];
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.deepEqual(r.outputs.logits.dims, [2, 3]);
  const ref = tabularReference(2, Float32Array.from({ length: 16 }, (_, i) => i / 4));
  (r.outputs.logits.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - ref[i]) < 1e-4));
  send({ op: 'release', id: 4, handle: 7 });
  assert.equal((await next(byId(4))).op, 'released');
  send({ op: 'run', runs: [{ id: 5, handle: 7, feeds: { features: { type: 'float32', dims: [1, 8], data: new Float32Array(8) } } }] });
  const gone = await next(byId(5));
  assert.ok(gone.op === 'results' && !gone.results[0].ok && gone.results[0].error.code === 'UNKNOWN_HANDLE');
});

test('typed errors: MODEL_LOAD_FAILED, INVALID_INPUT, INFERENCE_FAILED; the worker keeps serving', async () => {
  send({ op: 'load', id: 10, handle: 1, modelPath: fx.broken });
  const failed = await next(byId(10));
  assert.ok(failed.op === 'failed' && failed.error.code === 'MODEL_LOAD_FAILED', JSON.stringify(failed));

  // Reshape to [-1, 3]: fine for 3 rows of 8 values, fails inside onnxruntime for 1 row.
  const reshape = join(fx.dir, 'reshape.onnx');
  await writeFile(reshape, encodeModel({
    inputs: [valueInfo('features', 'float32', ['batch', 8])],
    outputs: [valueInfo('y', 'float32', ['n', 3])],
    initializers: [int64Tensor('shape', [2], [-1, 3])],
    nodes: [node('Reshape', ['features', 'shape'], ['y'])],
  }));
  send({ op: 'load', id: 11, handle: 2, modelPath: reshape });
  assert.equal((await next(byId(11))).op, 'loaded');
  const run = (id: number, feeds: Record<string, { type: string; dims: number[]; data: Float32Array | Int32Array }>) => {
    send({ op: 'run', runs: [{ id, handle: 2, feeds }] });
    return next(byId(id)).then((m) => (m.op === 'results' ? m.results[0] : assert.fail(m.op)));
  };
  const cases: Array<[Record<string, { type: string; dims: number[]; data: Float32Array | Int32Array }>, string, RegExp]> = [
    [{ features: { type: 'float32', dims: [1, 7], data: new Float32Array(7) } }, 'INVALID_INPUT', /dim 1 must be 8/],
    [{ features: { type: 'int32', dims: [1, 8], data: new Int32Array(8) } }, 'INVALID_INPUT', /int32, the model expects float32/],
    [{ features: { type: 'float32', dims: [2, 8], data: new Float32Array(8) } }, 'INVALID_INPUT', /needs 16 values/],
    [{ x: { type: 'float32', dims: [1, 8], data: new Float32Array(8) } }, 'INVALID_INPUT', /unknown input "x"/],
    [{ features: { type: 'float32', dims: [1, 8], data: new Float32Array(8) } }, 'INFERENCE_FAILED', /inference failed/],
  ];
  let id = 20;
  for (const [feeds, code, message] of cases) {
    const r = await run(id++, feeds);
    assert.ok(!r.ok, `${code} expected`);
    if (r.ok) continue;
    assert.equal(r.error.code, code, r.error.message);
    assert.match(r.error.message, message);
  }
  const good = await run(id++, { features: { type: 'float32', dims: [3, 8], data: new Float32Array(24).fill(1) } });
  assert.ok(good.ok && good.outputs.y.dims.join() === '8,3');
});

test('a small input travels inside the message: the sender keeps its buffer', async () => {
  send({ op: 'load', id: 50, handle: 50, modelPath: await fx.tabular(1) });
  assert.equal((await next(byId(50))).op, 'loaded');
  const x = new Float32Array(8).fill(1);
  const feeds = { features: { type: 'float32', dims: [1, 8], data: x } };
  const transfer: ArrayBuffer[] = [];
  prepareTransfer(feeds, transfer);
  assert.deepEqual(transfer, [], `under ${TRANSFER_MIN_BYTES} bytes nothing is transferred`);
  send({ op: 'run', runs: [{ id: 51, handle: 50, feeds }] }, transfer);
  const res = await next(byId(51));
  assert.ok(res.op === 'results' && res.results[0].ok);
  assert.equal(x.length, 8, 'not detached');
  send({ op: 'release', id: 52, handle: 50 });
  assert.equal((await next(byId(52))).op, 'released');
});

test('runs queued behind the one the worker is reading are answered as one batch, each with its own output', async () => {
  // A worker of its own with the test hold: it stops on the first 'run' before draining its queue, so
  // the next runs are surely queued when it drains (no race with the posting, as an unheld worker has).
  const hold = new Int32Array(new SharedArrayBuffer(8));
  const w = new Worker(new URL('./worker-bootstrap.mjs', import.meta.url), {
    workerData: { entry: new URL('./inference-worker.ts', import.meta.url).href, testHoldRuns: hold.buffer },
  });
  const got: FromWorker[] = [];
  w.on('message', (m: FromWorker) => got.push(m));
  try {
    await waitFor(() => got.some((m) => m.op === 'ready'), 'worker ready', 30_000);
    w.postMessage({ op: 'load', id: 1, handle: 1, modelPath: await fx.tabular(1) } satisfies ToWorker);
    await waitFor(() => got.some((m) => m.op === 'loaded'), 'model loaded', 30_000);

    const rows = [1, 2, 3];
    const inputs = rows.map((n, k) => Float32Array.from({ length: n * 8 }, (_, i) => (k + 1) * 0.5 - i / 7));
    const runs = inputs.map((x, k) => ({ id: 10 + k, handle: 1, mergeable: true as const, feeds: { features: { type: 'float32', dims: [rows[k], 8], data: x.slice() } } }));
    w.postMessage({ op: 'run', runs: [runs[0]] } satisfies ToWorker);
    await waitFor(() => Atomics.load(hold, 1) === 1, 'worker holding the first run', 30_000);
    w.postMessage({ op: 'run', runs: [runs[1]] } satisfies ToWorker);
    w.postMessage({ op: 'run', runs: [runs[2]] } satisfies ToWorker);
    Atomics.store(hold, 0, 1);
    Atomics.notify(hold, 0);

    const answered = () => got.flatMap((m) => (m.op === 'results' ? m.results.map((r) => r.id) : []));
    await waitFor(() => answered().length === 3 || undefined, 'all three runs answered', 30_000);
    const messages = got.filter((m) => m.op === 'results');
    assert.equal(messages.length, 1, `one answer for the three queued runs, got ${messages.length}`);
    const [batch] = messages;
    if (batch.op !== 'results') return;
    assert.deepEqual(batch.results.map((r) => r.id), [10, 11, 12]);
    batch.results.forEach((r, k) => {
      assert.ok(r.ok, `run ${r.id} failed`);
      if (!r.ok) return;
      assert.equal(r.merged, true, 'same model, same shape: one session.run for the three');
      assert.deepEqual(r.outputs.logits.dims, [rows[k], 3]);
      const ref = tabularReference(1, inputs[k]);
      const out = r.outputs.logits.data as Float32Array;
      assert.equal(out.length, ref.length);
      ref.forEach((v, i) => assert.ok(Math.abs(out[i] - v) < 1e-4, `run ${r.id} value ${i}: ${out[i]} vs ${v}`));
    });
  } finally {
    Atomics.store(hold, 0, 1);
    Atomics.notify(hold, 0);
    await w.terminate();
  }
});

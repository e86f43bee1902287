import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evaluateOnnx } from './evaluate.ts';
import { exportMlpOnnx, trainMlp } from './mlp.ts';
import { makeShapes, toNchw } from './synthetic-shapes.ts';
import { makeTabularRows } from './synthetic-tabular.ts';
import { trainInWorker } from './train-in-worker.ts';
import { runTrainJob } from './train-job.ts';

describe('training in a worker thread', () => {
  const rows = makeTabularRows({ n: 1500, seed: 31 });

  it('produces the same model as training in-process, reports epochs, and keeps the main thread free', async () => {
    const epochs: number[] = [];
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const r = await trainInWorker({ kind: 'mlp', rows, options: { seed: 32, epochs: 20 } }, { onEpoch: (h) => epochs.push(h.epoch) }).finally(() =>
      clearInterval(timer),
    );
    assert.deepEqual(new Uint8Array(r.onnx), new Uint8Array(exportMlpOnnx(trainMlp(rows, { seed: 32, epochs: 20 }))));
    assert.deepEqual(epochs, Array.from({ length: 20 }, (_, i) => i + 1));
    assert.equal(r.samples, 1500);
    assert.ok(ticks > 0, 'timers on the main thread kept running');
  });

  it('fine-tunes from the parent ONNX (CNN job)', async () => {
    const data = await makeShapes({ n: 60, seed: 33 });
    const parent = await runTrainJob({ kind: 'cnn', data, options: { seed: 34, epochs: 1 } });
    const child = await trainInWorker({ kind: 'cnn', data, options: { seed: 35, epochs: 1 }, initOnnx: parent.onnx, metadata: { 'flotilla.parent': 'v1' } });
    assert.notDeepEqual(new Uint8Array(child.onnx), new Uint8Array(parent.onnx));
    assert.ok(Buffer.from(child.onnx).includes(Buffer.from('flotilla.parent')), 'lineage metadata is in the file');
    const r = await evaluateOnnx(child.onnx, { data: toNchw(data.pixels, data.n), dims: [data.n, 3, 32, 32] }, data.labels);
    assert.equal(r.predictions.length, 60);
  });

  it('rejects on a bad job and on abort', async () => {
    await assert.rejects(trainInWorker({ kind: 'mlp', rows: [], options: { seed: 1 } }), /training failed: trainMlp: no rows/);
    const ctl = new AbortController();
    const p = trainInWorker({ kind: 'mlp', rows: makeTabularRows({ n: 20000, seed: 1 }), options: { seed: 1, epochs: 500 } }, { signal: ctl.signal });
    setTimeout(() => ctl.abort(new Error('cancelled by test')), 200);
    await assert.rejects(p, /cancelled by test/);
  });
});

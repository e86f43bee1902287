import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeFixtures, tabularReference, type Fixtures } from '../../test/fixtures/runtime-models.ts';
import { concatRuns, mergeKey, splitRows } from './merge-runs.ts';
import { ModelHost } from './model-host.ts';
import type { HostTensor, TensorMeta } from './tensor.ts';

const rowsOf = (n: number, seed: number) => Float32Array.from({ length: n * 8 }, (_, i) => Math.sin(seed * 3.1 + i * 0.41) * 2);
const feeds = (x: Float32Array): Record<string, HostTensor> => ({ features: { type: 'float32', dims: [x.length / 8, 8], data: x } });
const model = (inShape: Array<number | string>, outShape: Array<number | string>, type = 'float32'): { inputs: TensorMeta[]; outputs: TensorMeta[] } => ({
  inputs: [{ name: 'features', isTensor: true, type, shape: inShape }],
  outputs: [{ name: 'logits', isTensor: true, type: 'float32', shape: outShape }],
});

describe('merge-runs', () => {
  test('runs merge only when every input and output has a symbolic dim 0 and the trailing dims agree', () => {
    const f = feeds(rowsOf(2, 1));
    const key = mergeKey(model(['batch', 8], ['batch', 3]), 1, f);
    assert.equal(typeof key, 'string');
    assert.equal(mergeKey(model(['batch', 8], ['batch', 3]), 1, feeds(rowsOf(5, 2))), key, 'row counts may differ');
    assert.notEqual(mergeKey(model(['batch', 8], ['batch', 3]), 2, f), key, 'another model is another group');
    assert.equal(mergeKey(model([1, 8], [1, 3]), 1, f), undefined, 'a fixed dim 0 is not a batch axis');
    assert.equal(mergeKey(model(['batch', 8], [3]), 1, f), undefined, 'an output without the batch axis cannot be split');
    assert.equal(mergeKey(model(['batch', 8], ['batch', 3], 'string'), 1, f), undefined);
    const other: Record<string, HostTensor> = { features: { type: 'float32', dims: [1, 4, 2], data: new Float32Array(8) } };
    assert.notEqual(mergeKey({ ...model(['batch', 4, 2], ['batch', 3]) }, 1, other), key);
  });

  test('concatenated runs split back into each run’s rows, each part in its own buffer', () => {
    const a = rowsOf(1, 1);
    const b = rowsOf(3, 2);
    const { feeds: merged, rows } = concatRuns([feeds(a), feeds(b)]);
    assert.deepEqual(rows, [1, 3]);
    assert.deepEqual(merged.features.dims, [4, 8]);
    assert.deepEqual([...(merged.features.data as Float32Array)], [...a, ...b]);
    const out = { logits: { type: 'float32', dims: [4, 3], data: Float32Array.from({ length: 12 }, (_, i) => i) } };
    const parts = splitRows(out, rows)!;
    assert.deepEqual(parts[0].logits.dims, [1, 3]);
    assert.deepEqual([...(parts[0].logits.data as Float32Array)], [0, 1, 2]);
    assert.deepEqual(parts[1].logits.dims, [3, 3]);
    assert.deepEqual([...(parts[1].logits.data as Float32Array)], [3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const data = parts[1].logits.data as Float32Array;
    assert.equal(data.byteLength, data.buffer.byteLength, 'transferable without detaching the others');
    assert.equal(splitRows({ logits: { type: 'float32', dims: [1, 3], data: new Float32Array(3) } }, rows), undefined, 'dim 0 is not the total');
  });
});

describe('ModelHost merges concurrent mergeable runs into one session.run', () => {
  let fx: Fixtures;
  let host: ModelHost;
  before(async () => {
    fx = await makeFixtures();
    host = new ModelHost();
    await host.start();
    host.activate(await host.load(await fx.tabular(1)));
  });
  after(async () => {
    await host.stop();
    await fx.cleanup();
  });

  const burst = (mergeable: boolean) => {
    const inputs = Array.from({ length: 48 }, (_, i) => rowsOf(1 + (i % 3), i));
    return Promise.all(inputs.map(async (x) => ({ want: tabularReference(1, x), rows: x.length / 8, got: await host.infer(feeds(x.slice()), { mergeable }) })));
  };
  const merged = () => host.stats().workers[0].mergedRuns;

  test('each request gets its own rows’ answer, as if it had run alone', async () => {
    const before = merged();
    for (const r of await burst(true)) {
      assert.deepEqual(r.got.logits.dims, [r.rows, 3]);
      const got = r.got.logits.data as Float32Array;
      assert.equal(got.length, r.want.length);
      got.forEach((v, i) => assert.ok(Math.abs(v - r.want[i]) < 1e-4, `value ${i}: ${v} vs ${r.want[i]}`));
    }
    // 48 requests issued in one tick travel in messages of up to 32 runs: most of them merge.
    assert.ok(merged() - before >= 32, `merged runs: ${merged() - before}`);
  });

  test('runs not marked mergeable (raw tensors) run alone', async () => {
    const before = merged();
    for (const r of await burst(false)) assert.deepEqual(r.got.logits.dims, [r.rows, 3]);
    assert.equal(merged(), before);
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { zipSync } from 'fflate';
import * as ort from 'onnxruntime-node';
import { statefulVadModel } from '../onnx/vad-shaped-model.ts';
import { TensorPreprocess } from '../../firmware-bundles/definition.ts';
import { inspectOnnx } from '../onnx/inspect.ts';
import { evaluateModel } from '../optimize/evaluate.ts';
import { encodeNpy, parseNpy } from './npy.ts';
import { parseTensorDataset } from './tensor-dataset.ts';
import { generatedTensorFeeds, tensorEvalDataset } from './tensor-eval.ts';

/** A hand-written .npy as numpy writes it: big-endian int16, Fortran order, format version 2. */
function fortranBigEndian(): Uint8Array {
  const header = "{'descr': '>i2', 'fortran_order': True, 'shape': (2, 3), }";
  const pad = 64 - ((12 + header.length + 1) % 64);
  const h = header + ' '.repeat(pad) + '\n';
  const out = new Uint8Array(12 + h.length + 12);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0]);
  new DataView(out.buffer).setUint32(8, h.length, true);
  out.set(new TextEncoder().encode(h), 12);
  // Column-major [[1, 2, 3], [4, 5, 6]] = 1 4 2 5 3 6.
  [1, 4, 2, 5, 3, -6].forEach((v, i) => new DataView(out.buffer).setInt16(12 + h.length + i * 2, v, false));
  return out;
}

describe('tensor datasets', () => {
  test('.npy: little-endian float32 round trip, big-endian Fortran-order int16 read in C order', () => {
    const a = parseNpy(encodeNpy({ dtype: 'float32', shape: [2, 2], data: [0.5, -1, 3.25, 7] }));
    assert.deepEqual([a.dtype, a.shape, Array.from(a.data)], ['float32', [2, 2], [0.5, -1, 3.25, 7]]);
    const b = parseNpy(fortranBigEndian());
    assert.deepEqual([b.dtype, b.shape, Array.from(b.data)], ['int16', [2, 3], [1, 2, 3, 4, 5, -6]]);
    assert.throws(() => parseNpy(new TextEncoder().encode('id,x\n1,2\n')), /not a numpy \.npy array/);
    const obj = encodeNpy({ dtype: 'float32', shape: [1], data: [1] });
    obj.set(new TextEncoder().encode("'descr': '|O'"), 11);
    assert.throws(() => parseNpy(obj), /unreadable header|not supported/);
  });

  test('.npz: one array per input, labels, reference outputs; arrays must agree on the sample count', () => {
    const npz = zipSync({
      'input.npy': encodeNpy({ dtype: 'float32', shape: [3, 1, 4], data: Array.from({ length: 12 }, (_, i) => i / 10) }),
      'sr.npy': encodeNpy({ dtype: 'int64', shape: [3], data: [16000, 16000, 8000] }),
      'label.npy': encodeNpy({ dtype: 'int64', shape: [3], data: [0, 1, 1] }),
      'outputs.output.npy': encodeNpy({ dtype: 'float32', shape: [3, 1, 1], data: [0.1, 0.9, 0.8] }),
    });
    const t = parseTensorDataset(npz, 'npz');
    assert.equal(t.n, 3);
    assert.deepEqual(
      t.tensors.map((c) => [c.name, c.dtype, c.sampleDims]),
      [
        ['input', 'float32', [1, 4]],
        ['sr', 'int64', []],
      ],
    );
    assert.deepEqual(t.labels, [0, 1, 1]);
    assert.deepEqual(t.outputs.map((o) => o.name), ['output']);
    const bad = zipSync({ 'a.npy': encodeNpy({ dtype: 'float32', shape: [3, 2], data: new Array(6).fill(0) }), 'b.npy': encodeNpy({ dtype: 'float32', shape: [2], data: [0, 0] }) });
    assert.throws(() => parseTensorDataset(bad, 'npz'), /same number of samples.*a 3, b 2/);
    assert.throws(() => parseTensorDataset(new Uint8Array([1, 2, 3]), 'npz'), /not a readable \.npz/);
  });

  test('JSON lines of named tensors: {dims, data}, nested arrays and scalars; shapes must not change', () => {
    const lines = [
      { inputs: { x: { dims: [1, 2], data: [1, 2] }, sr: 16000 }, label: 'speech' },
      { inputs: { x: [[3, 4.5]], sr: 16000 }, label: 'silence' },
    ];
    const t = parseTensorDataset(new TextEncoder().encode(lines.map((l) => JSON.stringify(l)).join('\n')), 'tensors');
    assert.equal(t.n, 2);
    assert.deepEqual(Array.from(t.tensors.find((c) => c.name === 'x')!.data), [1, 2, 3, 4.5]);
    assert.deepEqual(t.labels, ['speech', 'silence']);
    const ragged = [JSON.stringify({ inputs: { x: [1, 2] } }), JSON.stringify({ inputs: { x: [1, 2, 3] } })].join('\n');
    assert.throws(() => parseTensorDataset(new TextEncoder().encode(ragged), 'tensors'), /line 2: x has dims \[3\], the first line \[2\]/);
    assert.throws(() => parseTensorDataset(new TextEncoder().encode('{"x": 1}'), 'tensors'), /"inputs" must be an object/);
  });

  test('a stateful three-input model evaluated on a one-array dataset: sr pinned and state carried as on the device', async () => {
    const bytes = statefulVadModel();
    const modelInputs = inspectOnnx(bytes).inputs;
    const spec = TensorPreprocess.parse({ type: 'tensor', fixed: { sr: { dims: [], data: [16000] } }, state: [{ input: 'state', output: 'stateN' }] });
    const frames = Array.from({ length: 3 * 512 }, (_, i) => Math.fround(Math.sin(i * 0.01) * 0.5));
    const table = parseTensorDataset(encodeNpy({ dtype: 'float32', shape: [3, 512], data: frames }), 'npy');
    const data = tensorEvalDataset(table, { task: 'regression', modelInputs, outputName: 'output', tensor: spec }, 100);
    const ev = await evaluateModel(bytes, data, { latency: false, memory: false });
    // The same chain by hand.
    const s = await ort.InferenceSession.create(bytes);
    let state: ort.Tensor = new ort.Tensor('float32', new Float32Array(256), [2, 1, 128]);
    for (let i = 0; i < 3; i++) {
      const out = await s.run({ input: new ort.Tensor('float32', Float32Array.from(frames.slice(i * 512, (i + 1) * 512)), [1, 512]), sr: new ort.Tensor('int64', BigInt64Array.from([16000n]), []), state });
      assert.ok(Math.abs((out.output.data as Float32Array)[0] - ev.outputs.data[i]) < 1e-6, `sample ${i}`);
      state = out.stateN as ort.Tensor;
    }
    await s.release();
    // Without the definition, the dataset must name every input.
    assert.throws(() => tensorEvalDataset(table, { task: 'regression', modelInputs }, 100), /gives no "sr", "state"|not an input of the model/);
    // Generated inputs follow the spec: sr pinned, the state not fed (carried).
    const gen = generatedTensorFeeds({ task: 'regression', modelInputs, outputName: 'output', tensor: spec }, 4);
    assert.deepEqual(Object.keys(gen.feeds!.samples[0]).sort(), ['input', 'sr']);
    assert.deepEqual(gen.feeds!.samples[0].sr.data, [16000]);
    assert.equal((await evaluateModel(bytes, gen, { latency: false, memory: false })).outputs.data.length, 4);
  });
});

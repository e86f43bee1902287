// Small ONNX fixtures built in code (nothing downloaded).
import { encodeModel, floatTensor, int64Tensor, node, valueInfo } from '../../server/onnx/build.ts';
import { FEATURES } from './device-stats.ts';

/** A Gemm classifier: features [batch, nIn] -> logits [batch, nOut]; `seed` varies the weights. */
export function gemmModel(opts: { nIn?: number; nOut?: number; seed?: number; inputName?: string; outputName?: string } = {}): Uint8Array {
  const nIn = opts.nIn ?? 8;
  const nOut = opts.nOut ?? 3;
  const seed = opts.seed ?? 1;
  const w = Array.from({ length: nIn * nOut }, (_, i) => Math.sin((i + 1) * seed) * 0.5);
  const b = Array.from({ length: nOut }, (_, i) => Math.cos((i + 1) * seed) * 0.1);
  return encodeModel({
    inputs: [valueInfo(opts.inputName ?? 'features', 'float32', ['batch', nIn])],
    outputs: [valueInfo(opts.outputName ?? 'logits', 'float32', ['batch', nOut])],
    initializers: [floatTensor('W', [nIn, nOut], w), floatTensor('b', [nOut], b)],
    nodes: [node('Gemm', [opts.inputName ?? 'features', 'W', 'b'], [opts.outputName ?? 'logits'])],
  });
}

/** Passes the smoke vectors (batch 1) but fails every batch of more than one row: a Reshape to [1, 8]. */
export function batchOneOnlyModel(): Uint8Array {
  const w = Array.from({ length: 24 }, (_, i) => Math.cos(i) * 0.3);
  return encodeModel({
    inputs: [valueInfo('features', 'float32', ['batch', 8])],
    outputs: [valueInfo('logits', 'float32', ['batch', 3])],
    initializers: [int64Tensor('shape', [2], [1, 8]), floatTensor('W', [8, 3], w), floatTensor('b', [3], [0, 0, 0])],
    nodes: [node('Reshape', ['features', 'shape'], ['flat']), node('Gemm', ['flat', 'W', 'b'], ['logits'])],
  });
}

/** What the model answers for rows, as the agent's postprocessing computes it (softmax, top-1). */
export async function modelOutputs(model: Uint8Array, rows: Array<Record<string, number>>): Promise<Array<{ predictedClass: number; confidence: number }>> {
  const ort = await import('onnxruntime-node'); // loaded only by the tests that need it
  const session = await ort.InferenceSession.create(model);
  const x = Float32Array.from(rows.flatMap((r) => FEATURES.map((f) => r[f])));
  const logits = (await session.run({ features: new ort.Tensor('float32', x, [rows.length, FEATURES.length]) })).logits.data as Float32Array;
  await session.release();
  return rows.map((_, i) => {
    const z = Array.from(logits.subarray(i * 3, i * 3 + 3), Number);
    const max = Math.max(...z);
    const e = z.map((v) => Math.exp(v - max));
    const sum = e.reduce((a, b) => a + b, 0);
    const p = e.map((v) => v / sum);
    const k = p.indexOf(Math.max(...p));
    return { predictedClass: k, confidence: p[k] };
  });
}

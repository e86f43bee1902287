// Assertions shared by the optimizer tests: run a model in onnxruntime-node and onnxruntime-web on the
// same inputs and compare, and look inside encoded models.
import * as ortWeb from 'onnxruntime-web';
import { onnx } from '../onnx/onnx-proto.ts';
import { EVAL_SESSION_OPTIONS, inferAll, modelIo, openSession, type Outputs } from './runtime.ts';

/** Outputs of `bytes` on `inputs` ([n, ...sampleShape], batched) in onnxruntime-node. */
export async function runNode(bytes: Uint8Array, inputs: Float32Array, sampleShape: number[], batchSize = 1): Promise<Outputs> {
  const session = await openSession(bytes);
  try {
    return await inferAll(session, modelIo(bytes), inputs, sampleShape, batchSize);
  } finally {
    await session.release();
  }
}

/** The same through onnxruntime-web (wasm) running in Node. */
export async function runWeb(bytes: Uint8Array, inputs: Float32Array, sampleShape: number[], batchSize = 1): Promise<Outputs> {
  const io = modelIo(bytes);
  const session = await ortWeb.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', extra: EVAL_SESSION_OPTIONS.extra });
  const per = sampleShape.reduce((a, b) => a * b, 1);
  const n = inputs.length / per;
  let data: Float32Array | undefined;
  let width = 0;
  try {
    for (let start = 0; start < n; start += batchSize) {
      const rows = Math.min(batchSize, n - start);
      const feeds = { [io.inputName]: new ortWeb.Tensor('float32', inputs.slice(start * per, (start + rows) * per), [rows, ...sampleShape]) };
      const out = (await session.run(feeds))[io.outputName].data as Float32Array;
      if (!data) {
        width = out.length / rows;
        data = new Float32Array(n * width);
      }
      data.set(out, start * width);
    }
  } finally {
    await session.release();
  }
  return { data: data!, width };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export function decode(bytes: Uint8Array) {
  return onnx.ModelProto.decode(bytes);
}

/** Initializer dims by name, main graph. */
export function initializerDims(bytes: Uint8Array): Map<string, number[]> {
  const m = decode(bytes);
  return new Map((m.graph?.initializer ?? []).map((t) => [t.name ?? '', (t.dims ?? []).map(Number)]));
}

export function opTypes(bytes: Uint8Array): string[] {
  return (decode(bytes).graph?.node ?? []).map((n) => n.opType ?? '');
}

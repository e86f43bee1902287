/**
 * onnxruntime-node plumbing for evaluation: sessions with the options devices should use, and batched
 * inference over a row-major float32 dataset.
 */
import * as ort from 'onnxruntime-node';
import { inspectOnnx } from '../onnx/inspect.ts';

/**
 * What evaluation (and, the optimizer recommends, the agent) runs models with: all graph optimizations,
 * DequantizeLinear folding for qdq variants (see quantize.ts), one intra-op thread — latency on a
 * small device is single-core work, and one thread keeps p95 stable on a shared 2-core machine.
 */
export const EVAL_SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  graphOptimizationLevel: 'all',
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  extra: { session: { disable_quant_qdq: '1' } },
};

export interface ModelIo {
  inputName: string;
  outputName: string;
  /** Per-sample input shape (without the batch axis), when the model declares it. */
  sampleShape: Array<number | null>;
  /** The batch size the model accepts when its first input axis is fixed; undefined when symbolic. */
  fixedBatch?: number;
}

export function modelIo(bytes: Uint8Array, inputName?: string, outputName?: string): ModelIo {
  const info = inspectOnnx(bytes);
  const input = inputName ? info.inputs.find((i) => i.name === inputName) : info.inputs[0];
  if (!input) throw new Error(`model has no input ${inputName ?? '(none declared)'}`);
  const output = outputName ? info.outputs.find((o) => o.name === outputName) : info.outputs[0];
  if (!output) throw new Error(`model has no output ${outputName ?? '(none declared)'}`);
  const b = input.shape[0];
  return {
    inputName: input.name,
    outputName: output.name,
    sampleShape: input.shape.slice(1).map((d) => (typeof d === 'number' ? d : null)),
    fixedBatch: typeof b === 'number' && b > 0 ? b : undefined,
  };
}

export async function openSession(bytes: Uint8Array, options: ort.InferenceSession.SessionOptions = EVAL_SESSION_OPTIONS): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, options);
}

export interface Outputs {
  /** Row-major [n, width]. */
  data: Float32Array;
  width: number;
}

/**
 * Runs every sample through `session` in batches of `batchSize` (a fixed-batch model gets its own
 * batch size, the last batch padded with zeros and the padding discarded).
 */
export async function inferAll(session: ort.InferenceSession, io: ModelIo, inputs: Float32Array, sampleShape: number[], batchSize: number): Promise<Outputs> {
  const per = sampleShape.reduce((a, b) => a * b, 1);
  const n = inputs.length / per;
  if (!Number.isInteger(n)) throw new Error(`input length ${inputs.length} is not a multiple of the sample size ${per}`);
  const bs = io.fixedBatch ?? Math.max(1, batchSize);
  let data: Float32Array | undefined;
  let width = 0;
  for (let start = 0; start < n; start += bs) {
    const rows = Math.min(bs, n - start);
    let chunk = inputs.subarray(start * per, (start + rows) * per);
    if (io.fixedBatch && rows < bs) {
      const padded = new Float32Array(bs * per);
      padded.set(chunk);
      chunk = padded;
    }
    const feeds = { [io.inputName]: new ort.Tensor('float32', chunk, [io.fixedBatch ? bs : rows, ...sampleShape]) };
    const result = await session.run(feeds, [io.outputName]);
    const out = result[io.outputName];
    const values = out.data as Float32Array;
    const batchRows = io.fixedBatch ? bs : rows;
    if (!data) {
      width = values.length / batchRows;
      data = new Float32Array(n * width);
    }
    data.set(values.subarray(0, rows * width), start * width);
    out.dispose?.();
  }
  return { data: data ?? new Float32Array(0), width };
}

export { ort };

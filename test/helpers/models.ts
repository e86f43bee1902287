// Small ONNX fixtures built in code (nothing downloaded).
import { encodeModel, floatTensor, node, valueInfo } from '../../server/onnx/build.ts';

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

// Candidates for shadow tests, built in code: the same answers as gemmModel({ seed }) reached through
// many more operations (deterministically slower, no sleeps), and a rescaled copy (same top-1 class on
// every row: positive scaling of logits and bias keeps the arg-max).
import { encodeModel, floatTensor, node, valueInfo } from '../../server/onnx/build.ts';

function gemmWeights(seed: number, nIn = 8, nOut = 3) {
  return {
    w: Array.from({ length: nIn * nOut }, (_, i) => Math.sin((i + 1) * seed) * 0.5),
    b: Array.from({ length: nOut }, (_, i) => Math.cos((i + 1) * seed) * 0.1),
  };
}

/** gemmModel({ seed }) with weights and bias times `scale` (> 0): other bytes, same top-1 class. */
export function scaledGemmModel(seed: number, scale: number): Uint8Array {
  const { w, b } = gemmWeights(seed);
  return encodeModel({
    inputs: [valueInfo('features', 'float32', ['batch', 8])],
    outputs: [valueInfo('logits', 'float32', ['batch', 3])],
    initializers: [floatTensor('W', [8, 3], w.map((x) => x * scale)), floatTensor('b', [3], b.map((x) => x * scale))],
    nodes: [node('Gemm', ['features', 'W', 'b'], ['logits'])],
  });
}

/**
 * gemmModel({ seed })'s function with `layers` extra width×width identity MatMuls in between (one shared
 * initializer, so the file stays small): identical top-1 answers, a fixed multiple of the work.
 */
export function slowGemmModel(seed: number, layers = 400, width = 512): Uint8Array {
  const { w, b } = gemmWeights(seed);
  const lift = new Array(8 * width).fill(0);
  for (let i = 0; i < 8; i++) lift[i * width + i] = 1;
  const eye = new Array(width * width).fill(0);
  for (let i = 0; i < width; i++) eye[i * width + i] = 1;
  const head = new Array(width * 3).fill(0);
  for (let i = 0; i < 8 * 3; i++) head[i] = w[i];
  const nodes = [node('MatMul', ['features', 'LIFT'], ['h0'])];
  for (let i = 0; i < layers; i++) nodes.push(node('MatMul', [`h${i}`, 'EYE'], [`h${i + 1}`]));
  nodes.push(node('Gemm', [`h${layers}`, 'HEAD', 'b'], ['logits']));
  return encodeModel({
    inputs: [valueInfo('features', 'float32', ['batch', 8])],
    outputs: [valueInfo('logits', 'float32', ['batch', 3])],
    initializers: [floatTensor('LIFT', [8, width], lift), floatTensor('EYE', [width, width], eye), floatTensor('HEAD', [width, 3], head), floatTensor('b', [3], b)],
    nodes,
  });
}

// Models with the awkward shapes users bring, built in code (nothing downloaded): a model with two
// outputs of different shapes and a CNN exported at opset 9 as old exporters wrote it (the stateful
// voice-activity detector is server/onnx/vad-shaped-model.ts, which `npm run demo:vad` writes too).
import { encodeModel, floatTensor, int64Tensor, node, valueInfo } from '../../server/onnx/build.ts';

function weights(n: number, seed: number, scale: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.sin((i + 1) * 12.9898 * seed) * scale);
}

/** `x` float32 [batch, 16] → `box` [batch, 4] and `scores` [batch, 2, 3]: two outputs, different ranks. */
export function twoHeadModel(seed = 1): Uint8Array {
  return encodeModel({
    inputs: [valueInfo('x', 'float32', ['batch', 16])],
    outputs: [valueInfo('box', 'float32', ['batch', 4]), valueInfo('scores', 'float32', ['batch', 2, 3])],
    initializers: [
      floatTensor('Wb', [16, 4], weights(64, seed, 0.4)),
      floatTensor('bb', [4], [0.1, 0.2, 0.3, 0.4]),
      floatTensor('Ws', [16, 6], weights(96, seed + 3, 0.4)),
      floatTensor('bs', [6], weights(6, seed + 4, 0.1)),
      int64Tensor('s_shape', [3], [-1, 2, 3]),
    ],
    nodes: [node('Gemm', ['x', 'Wb', 'bb'], ['box']), node('Gemm', ['x', 'Ws', 'bs'], ['s_flat']), node('Reshape', ['s_flat', 's_shape'], ['scores'])],
  });
}

const w = (n: number, seed: number, scale = 0.3): number[] => Array.from({ length: n }, (_, i) => Math.sin((i + 1) * 7.31 * seed) * scale);

/** An opset-9 CNN as old exporters wrote it: image [batch, 3, 16, 16] → probabilities [batch, 4]. */
export function opset9Cnn(extra: 'none' | 'upsample' = 'none'): Uint8Array {
  const nodes = [
    node('Conv', ['image', 'W1', 'B1'], ['c1'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
    node('BatchNormalization', ['c1', 'g', 'b', 'm', 'v'], ['bn'], { epsilon: 1e-5 }),
    node('Relu', ['bn'], ['r1']),
    node('MaxPool', ['r1'], ['p1'], { kernel_shape: [2, 2], strides: [2, 2] }),
    node('Dropout', ['p1'], ['d1'], { ratio: 0.25 }),
    node('Flatten', ['d1'], ['f1'], { axis: 1 }),
    node('Gemm', ['f1', 'W2', 'B2'], ['logits'], { transB: 1 }),
    node('Softmax', ['logits'], ['probs'], { axis: 1 }),
  ];
  if (extra === 'upsample') nodes.splice(4, 0, node('Upsample', ['p1', 'scales'], ['u1'], { mode: 'nearest' }));
  return encodeModel({
    opset: 9,
    inputs: [valueInfo('image', 'float32', ['batch', 3, 16, 16])],
    outputs: [valueInfo('probs', 'float32', ['batch', 4])],
    initializers: [
      floatTensor('W1', [8, 3, 3, 3], w(216, 1)),
      floatTensor('B1', [8], w(8, 2, 0.1)),
      floatTensor('g', [8], w(8, 3, 0.2).map((x) => 1 + x)),
      floatTensor('b', [8], w(8, 4, 0.1)),
      floatTensor('m', [8], w(8, 5, 0.1)),
      floatTensor('v', [8], w(8, 6, 0.2).map((x) => 1 + Math.abs(x))),
      floatTensor('W2', [4, 8 * 8 * 8], w(4 * 512, 7, 0.05)),
      floatTensor('B2', [4], [0.1, -0.1, 0.2, 0]),
      ...(extra === 'upsample' ? [floatTensor('scales', [4], [1, 1, 1, 1])] : []),
    ],
    nodes,
  });
}


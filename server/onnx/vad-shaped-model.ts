// A model shaped like the public Silero VAD v5, built in code (nothing downloaded): the same inputs,
// outputs and carried state. Tests use the random-weights one as a third-party audio model;
// `npm run demo:vad` writes the energy-driven one as `silero_vad.onnx` for the README's worked example.
import { encodeModel, floatTensor, int64Tensor, node, valueInfo } from './build.ts';

function weights(n: number, seed: number, scale: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.sin((i + 1) * 12.9898 * seed) * scale);
}

/**
 * Shaped like a real VAD: `input` float32 [1, 512] (a 32 ms frame at 16 kHz), `sr` int64 scalar,
 * `state` float32 [2, 1, 128]; outputs `output` [1, 1] (speech probability) and `stateN` [2, 1, 128],
 * the next call's state. The state really changes the answer, and `sr` scales the features.
 */
export function statefulVadModel(seed = 1): Uint8Array {
  return encodeModel({
    inputs: [valueInfo('input', 'float32', [1, 512]), valueInfo('sr', 'int64', []), valueInfo('state', 'float32', [2, 1, 128])],
    outputs: [valueInfo('output', 'float32', [1, 1]), valueInfo('stateN', 'float32', [2, 1, 128])],
    initializers: [
      floatTensor('W', [512, 128], weights(512 * 128, seed, 0.08)),
      floatTensor('U', [128, 128], weights(128 * 128, seed + 1, 0.1)),
      floatTensor('V', [128, 1], weights(128, seed + 2, 0.5)),
      floatTensor('vb', [1], [0.1]),
      floatTensor('inv_sr', [], [1 / 16000]),
      floatTensor('half', [], [0.5]),
      int64Tensor('row_shape', [3], [1, 1, 128]),
    ],
    nodes: [
      node('MatMul', ['input', 'W'], ['h']),
      node('ReduceMean', ['state'], ['s_mean'], { axes: [0], keepdims: 0 }),
      node('MatMul', ['s_mean', 'U'], ['s_proj']),
      node('Cast', ['sr'], ['sr_f'], { to: 1 }),
      node('Mul', ['sr_f', 'inv_sr'], ['sr_scale']),
      node('Add', ['h', 's_proj'], ['pre']),
      node('Mul', ['pre', 'sr_scale'], ['pre_s']),
      node('Tanh', ['pre_s'], ['row']),
      node('MatMul', ['row', 'V'], ['logit0']),
      node('Add', ['logit0', 'vb'], ['logit']),
      node('Sigmoid', ['logit'], ['output']),
      node('Reshape', ['row', 'row_shape'], ['row3']),
      node('Mul', ['state', 'half'], ['state_half']),
      node('Add', ['state_half', 'row3'], ['stateN']),
    ],
  });
}

/**
 * The same interface with an answer that means something: the speech probability follows the frame's
 * energy (sigmoid of 2 · ln(mean square / 1e-3): a tone at amplitude 0.2 reads ≈ 0.997, faint noise ≈
 * 0.001), nudged a little by a learned-looking projection of the frame and the carried state. Decisive
 * outputs keep an int8 variant's top-1 agreement meaningful; `npm run demo:vad` writes this one.
 */
export function energyVadModel(seed = 1): Uint8Array {
  return encodeModel({
    inputs: [valueInfo('input', 'float32', [1, 512]), valueInfo('sr', 'int64', []), valueInfo('state', 'float32', [2, 1, 128])],
    outputs: [valueInfo('output', 'float32', [1, 1]), valueInfo('stateN', 'float32', [2, 1, 128])],
    initializers: [
      floatTensor('W', [512, 128], weights(512 * 128, seed, 0.08)),
      floatTensor('V', [128, 1], weights(128, seed + 2, 0.02)),
      floatTensor('eps', [], [1e-8]),
      floatTensor('log_thr', [], [Math.log(1e-3)]),
      floatTensor('gain', [], [2]),
      floatTensor('inv_sr', [], [1 / 16000]),
      floatTensor('half', [], [0.5]),
      int64Tensor('row_shape', [3], [1, 1, 128]),
    ],
    nodes: [
      node('Mul', ['input', 'input'], ['sq']),
      node('ReduceMean', ['sq'], ['energy'], { axes: [1], keepdims: 1 }),
      node('Add', ['energy', 'eps'], ['energy_e']),
      node('Log', ['energy_e'], ['log_energy']),
      node('Sub', ['log_energy', 'log_thr'], ['above']),
      node('Mul', ['above', 'gain'], ['energy_logit']),
      node('MatMul', ['input', 'W'], ['h']),
      node('Cast', ['sr'], ['sr_f'], { to: 1 }),
      node('Mul', ['sr_f', 'inv_sr'], ['sr_scale']),
      node('Mul', ['h', 'sr_scale'], ['h_s']),
      node('Tanh', ['h_s'], ['row']),
      node('ReduceMean', ['state'], ['s_mean'], { axes: [0], keepdims: 0 }),
      node('Add', ['row', 's_mean'], ['mix']),
      node('MatMul', ['mix', 'V'], ['nudge']),
      node('Add', ['energy_logit', 'nudge'], ['logit']),
      node('Sigmoid', ['logit'], ['output']),
      node('Reshape', ['row', 'row_shape'], ['row3']),
      node('Mul', ['state', 'half'], ['state_half']),
      node('Add', ['state_half', 'row3'], ['stateN']),
    ],
  });
}

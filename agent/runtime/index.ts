/**
 * The agent's inference runtime: worker-thread onnxruntime sessions (`ModelHost`), bundle
 * preprocessing (sharp, tabular, JSON tensors) and postprocessing, and the `InferenceEngine` facade
 * that swaps a bundle's spec and session together.
 *
 * @example
 * import { InferenceEngine, RuntimeError } from './runtime/index.ts';
 * const engine = new InferenceEngine();
 * await engine.start();
 * engine.activate(await engine.stage({ bundle: { id, version }, modelPath, preprocess, postprocess, labels }));
 * const { predictions } = await engine.predict({ features: { f0: 1.2 } });
 */
export * from './errors.ts';
export * from './tensor.ts';
export * from './model-host.ts';
export * from './preprocess.ts';
export * from './postprocess.ts';
export * from './engine.ts';
export type { ModelInfo, WorkerSessionOptions } from './worker-protocol.ts';
export type { InferenceThread, Placement } from './thread-choice.ts';

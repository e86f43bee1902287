/**
 * The contract of a `tensor` preprocessing spec with its model, checked the same way by the bundle
 * builder (at build time, on the server) and the agent (at staging): every name the spec uses is an
 * input or output of the model, pinned tensors fit their input's shape, and each input's shape can be
 * resolved to numbers (symbolic dims from `spec.dims`; a model's `-1`/unnamed dims must be named
 * there too, else nobody can generate a smoke input for it).
 *
 * @example
 * const problem = tensorSpecProblem(def.preprocess, session.inputMetadata, session.outputNames);
 * if (problem) throw new BundleBuildError(problem.code, problem.message);
 */
import type { TensorPreprocess } from './definition.ts';

/** An input as onnxruntime describes it (`session.inputMetadata` and the agent's TensorMeta fit). */
export interface IoMeta {
  name: string;
  isTensor: boolean;
  type?: string;
  shape?: ReadonlyArray<number | string>;
}

export type TensorSpecProblemCode = 'INPUT_NOT_IN_MODEL' | 'OUTPUT_NOT_IN_MODEL' | 'INPUT_SHAPE_MISMATCH' | 'UNSUPPORTED_INPUT_TYPE' | 'UNRESOLVED_DIM';

/** Element types a tensor spec can feed from JSON numbers. */
export const TENSOR_INPUT_TYPES: ReadonlySet<string> = new Set(['float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'bool', 'float16']);

/**
 * An input's dims with symbolic ones taken from `dims`; `null` names the first dim that stays unknown.
 *
 * @example
 * resolveShape(['batch', 512], { batch: 1 }) // { dims: [1, 512] }
 */
export function resolveShape(shape: ReadonlyArray<number | string>, dims: Readonly<Record<string, number>>): { dims: number[] } | { unresolved: string } {
  const out: number[] = [];
  for (const [i, d] of shape.entries()) {
    if (typeof d === 'number' && d >= 0) out.push(d);
    else if (typeof d === 'string' && d !== '' && Object.hasOwn(dims, d)) out.push(dims[d]);
    else return { unresolved: typeof d === 'string' && d !== '' ? d : `dim ${i}` };
  }
  return { dims: out };
}

/** Inputs the caller sends (neither pinned nor carried as state). */
export function callerInputs(spec: TensorPreprocess, inputs: readonly IoMeta[]): string[] {
  const state = new Set(spec.state.map((s) => s.input));
  return inputs.map((m) => m.name).filter((n) => !Object.hasOwn(spec.fixed, n) && !state.has(n));
}

/** The first mismatch between a tensor spec and the model, or null. */
export function tensorSpecProblem(spec: TensorPreprocess, inputs: readonly IoMeta[], outputNames: readonly string[]): { code: TensorSpecProblemCode; message: string } | null {
  const names = inputs.map((m) => m.name).join(', ');
  const byName = new Map(inputs.map((m) => [m.name, m]));
  for (const name of Object.keys(spec.fixed)) {
    if (!byName.has(name)) return { code: 'INPUT_NOT_IN_MODEL', message: `preprocess.fixed "${name}" is not an input of the model (inputs: ${names})` };
  }
  for (const s of spec.state) {
    if (!byName.has(s.input)) return { code: 'INPUT_NOT_IN_MODEL', message: `preprocess.state input "${s.input}" is not an input of the model (inputs: ${names})` };
    if (!outputNames.includes(s.output)) return { code: 'OUTPUT_NOT_IN_MODEL', message: `preprocess.state output "${s.output}" is not an output of the model (outputs: ${outputNames.join(', ')})` };
    if (Object.hasOwn(spec.fixed, s.input)) return { code: 'INPUT_SHAPE_MISMATCH', message: `input "${s.input}" is both pinned (fixed) and carried as state` };
  }
  for (const name of Object.keys(spec.ranges)) {
    if (!byName.has(name)) return { code: 'INPUT_NOT_IN_MODEL', message: `preprocess.ranges "${name}" is not an input of the model (inputs: ${names})` };
  }
  if (spec.audio) {
    const m = byName.get(spec.audio.input);
    if (!m || !callerInputs(spec, inputs).includes(m.name)) return { code: 'INPUT_NOT_IN_MODEL', message: `preprocess.audio.input "${spec.audio.input}" is not an input the caller feeds (inputs: ${names})` };
    const shape = resolveShape(m.shape ?? [], spec.dims);
    const n = 'dims' in shape ? shape.dims.reduce((a, b) => a * b, 1) : -1;
    if (m.type !== 'float32' || n !== spec.audio.frameLength) return { code: 'INPUT_SHAPE_MISMATCH', message: `preprocess.audio: input "${m.name}" is ${m.type} [${(m.shape ?? []).join(', ')}], not a float32 frame of ${spec.audio.frameLength} samples` };
  }
  for (const m of inputs) {
    if (!m.isTensor || !m.type || !TENSOR_INPUT_TYPES.has(m.type)) {
      return { code: 'UNSUPPORTED_INPUT_TYPE', message: `input "${m.name}" is ${m.isTensor ? m.type : 'not a tensor'}; tensor preprocessing feeds ${[...TENSOR_INPUT_TYPES].join('/')}` };
    }
    const shape = resolveShape(m.shape ?? [], spec.dims);
    if ('unresolved' in shape) {
      return { code: 'UNRESOLVED_DIM', message: `input "${m.name}" [${(m.shape ?? []).join(', ')}]: give ${shape.unresolved} a value in preprocess.dims (e.g. "dims": { "${shape.unresolved.startsWith('dim ') ? 'name' : shape.unresolved}": 1 })` };
    }
    const fixed = Object.hasOwn(spec.fixed, m.name) ? spec.fixed[m.name] : undefined;
    if (fixed) {
      const count = fixed.dims.reduce((a, b) => a * b, 1);
      const fits = (m.shape ?? []).length === 0 ? fixed.dims.length <= 1 && count === 1 : fixed.dims.length === shape.dims.length && fixed.dims.every((d, i) => typeof m.shape![i] !== 'number' || (m.shape![i] as number) < 0 || d === m.shape![i]);
      if (!fits || count !== fixed.data.length) {
        return { code: 'INPUT_SHAPE_MISMATCH', message: `preprocess.fixed "${m.name}" is [${fixed.dims.join(', ')}] with ${fixed.data.length} values; the model's input is ${m.type} [${(m.shape ?? []).join(', ')}]` };
      }
    }
  }
  return null;
}

/**
 * Deterministic smoke vectors for a `tensor` spec, generated from the shapes the model declares
 * (symbolic dims resolved from the definition): caller inputs drawn from their `ranges` (standard
 * normal for floats, 0..9 for integers when none is given), pinned inputs as pinned, and state as a
 * device would see it on consecutive calls of one session: the initial state first, then each
 * vector's state output fed to the next one (so a stateful model's smoke test covers a carried state).
 *
 * @example
 * const vectors = await seededTensorVectors(createOrtRunner(session), def.preprocess, session.inputMetadata, 4, 0x5eed);
 */
import type { SmokeVector, TensorPreprocess } from './definition.ts';
import { fromFloat16Bits, toFloat16Bits } from './float16.ts';
import { mulberry32 } from '../protocol/sketch/random.ts';
import type { SmokeRunner } from './smoke.ts';
import { resolveShape, type IoMeta } from './tensor-spec.ts';

const FLOATS = new Set(['float32', 'float64', 'float16']);

/** `count` vectors, each its inputs and the outputs `run` gives for them. */
export async function seededTensorVectors(run: SmokeRunner, spec: TensorPreprocess, inputs: readonly IoMeta[], count: number, seed: number): Promise<SmokeVector[]> {
  const vectors: SmokeVector[] = [];
  let carried: Record<string, { dims: number[]; data: number[] }> = {};
  for (let i = 0; i < count; i++) {
    const rand = mulberry32(seed + i);
    const feeds: SmokeVector['inputs'] = {};
    for (const m of inputs) {
      const resolved = resolveShape(m.shape ?? [], spec.dims);
      if ('unresolved' in resolved) throw new RangeError(`input "${m.name}": ${resolved.unresolved} has no value in preprocess.dims`);
      const dims = resolved.dims;
      const n = dims.reduce((a, b) => a * b, 1);
      const state = spec.state.find((s) => s.input === m.name);
      if (Object.hasOwn(spec.fixed, m.name)) {
        // The model's own rank: a pinned `[16000]` for a scalar input goes in as a scalar.
        const f = spec.fixed[m.name];
        feeds[m.name] = { dims: (m.shape ?? []).length === 0 ? [] : [...f.dims], data: [...f.data] };
      } else if (state) {
        feeds[m.name] = carried[m.name] ?? { dims, data: new Array<number>(n).fill(round(m.type, state.initial)) };
      } else {
        const range = Object.hasOwn(spec.ranges, m.name) ? spec.ranges[m.name] : undefined;
        const data = new Array<number>(n);
        for (let j = 0; j < n; j++) data[j] = round(m.type, draw(m.type, rand, range));
        feeds[m.name] = { dims, data };
      }
    }
    const outputs = await run(feeds);
    const expected: SmokeVector['expected'] = {};
    for (const [name, t] of Object.entries(outputs)) expected[name] = { dims: [...t.dims].map(Number), data: Array.from(t.data as ArrayLike<number | bigint>, Number) };
    carried = {};
    for (const s of spec.state) if (expected[s.output]) carried[s.input] = expected[s.output];
    vectors.push({ inputs: feeds, expected });
  }
  return vectors;
}

function draw(type: string | undefined, rand: () => number, range: readonly [number, number] | undefined): number {
  if (range) return range[0] + rand() * (range[1] - range[0]);
  if (type && FLOATS.has(type)) {
    const u = 1 - rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  }
  if (type === 'bool') return rand() < 0.5 ? 0 : 1;
  return Math.floor(rand() * 10);
}

function round(type: string | undefined, v: number): number {
  if (type === 'float32') return Math.fround(v);
  if (type === 'float64') return v;
  if (type === 'float16') return fromFloat16Bits(toFloat16Bits([v]))[0];
  return Math.round(v);
}

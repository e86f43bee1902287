/**
 * Raw tensors for a `tensor` bundle: the caller names the model's inputs (`{ inputs: { name: { dims,
 * data } } }`); the bundle's pinned inputs (`fixed`, e.g. an int64 sample rate) are added, and each
 * state input comes from, in order: the request itself (a caller carrying its own state), the state
 * the agent kept for the request's session, or the spec's initial value (a new session).
 *
 * @example
 * const { feeds } = preprocessTensor(spec, { input: { dims: [1, 512], data } }, handle.inputs, states.get(key));
 */
import type { TensorPreprocess } from '../../firmware-bundles/definition.ts';
import { resolveShape } from '../../firmware-bundles/tensor-spec.ts';
import { invalidInput, RuntimeError } from './errors.ts';
import { tensorsFromJson } from './json-tensors.ts';
import { typedFromNumbers, type HostTensor, type TensorMeta } from './tensor.ts';

/** Feeds for one call. */
export function preprocessTensor(spec: TensorPreprocess, inputs: unknown, metas: readonly TensorMeta[], carried?: Readonly<Record<string, HostTensor>>): Record<string, HostTensor> {
  if (inputs === null || typeof inputs !== 'object' || Array.isArray(inputs)) {
    throw invalidInput('inputs must be an object of named tensors: { "<input>": { "dims": [...], "data": [...] } }');
  }
  const given = inputs as Record<string, unknown>;
  for (const name of Object.keys(spec.fixed)) {
    if (Object.hasOwn(given, name)) throw invalidInput(`input "${name}" is pinned by the bundle (${JSON.stringify(spec.fixed[name].data)}); leave it out`, { input: name });
  }
  const fromJson = metas.filter((m) => Object.hasOwn(given, m.name) || (!Object.hasOwn(spec.fixed, m.name) && !spec.state.some((s) => s.input === m.name)));
  const feeds = tensorsFromJson(pick(given, fromJson, metas), fromJson);
  for (const m of metas) {
    if (feeds[m.name]) continue;
    const type = m.type ?? 'float32';
    if (Object.hasOwn(spec.fixed, m.name)) {
      const f = spec.fixed[m.name];
      feeds[m.name] = { type, dims: (m.shape ?? []).length === 0 ? [] : [...f.dims], data: typedFromNumbers(type, f.data, `pinned input "${m.name}"`) };
      continue;
    }
    const state = spec.state.find((s) => s.input === m.name)!;
    const kept = carried?.[m.name];
    if (kept) {
      feeds[m.name] = kept;
      continue;
    }
    const shape = resolveShape(m.shape ?? [], spec.dims);
    if ('unresolved' in shape) throw new RuntimeError('BUNDLE_MISMATCH', `state input "${m.name}": ${shape.unresolved} has no value in preprocess.dims`);
    const n = shape.dims.reduce((a, b) => a * b, 1);
    feeds[m.name] = { type, dims: shape.dims, data: typedFromNumbers(type, new Array<number>(n).fill(state.initial), `state input "${m.name}"`) };
  }
  return feeds;
}

/** Only the caller's tensors go through JSON checking; unknown names are refused there. */
function pick(given: Record<string, unknown>, wanted: readonly TensorMeta[], all: readonly TensorMeta[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(given)) {
    if (!all.some((m) => m.name === name)) throw invalidInput(`unknown input "${name}"; the model's inputs are ${all.map((m) => `"${m.name}"`).join(', ')}`, { input: name });
  }
  for (const m of wanted) if (Object.hasOwn(given, m.name)) out[m.name] = given[m.name];
  return out;
}

/**
 * State the agent carries per session (the request's `session` key) for one bundle. Bounded: the
 * least recently used session is forgotten past `max` (it starts over from the initial state).
 *
 * @example
 * const states = new SessionStates(1024);
 * states.set('bnd_1', 'mic-1', { state: outputs.stateN });
 */
export class SessionStates {
  private readonly map = new Map<string, Record<string, HostTensor>>();
  constructor(private readonly max = 1024) {}

  get(bundleId: string, session: string): Record<string, HostTensor> | undefined {
    const key = `${bundleId}\u0000${session}`;
    const v = this.map.get(key);
    if (v) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(bundleId: string, session: string, state: Record<string, HostTensor>): void {
    const key = `${bundleId}\u0000${session}`;
    this.map.delete(key);
    this.map.set(key, state);
    while (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }

  /** Forgets the sessions of bundles other than `keep` (after a swap: their state shapes may differ). */
  retain(keep: string): void {
    for (const key of this.map.keys()) if (!key.startsWith(`${keep}\u0000`)) this.map.delete(key);
  }

  get size(): number {
    return this.map.size;
  }
}

// Bundles for models that take raw tensors: several inputs of mixed types, pinned inputs, state
// carried from one call to the next, smoke vectors generated from the declared shapes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { statefulVadModel } from '../server/onnx/vad-shaped-model.ts';
import { twoHeadModel } from '../test/helpers/odd-models.ts';
import { BundleBuildError, buildBundle } from './builder.ts';
import { BundleDefinition } from './definition.ts';
import { loadBundleDefinition } from './load-definition.ts';
import { createOrtRunner } from './ort-runner.ts';
import { DEVICE_SESSION_OPTIONS } from './session-options.ts';
import { runSmokeVectors } from './smoke.ts';
import { decodeSmokeFile, encodeSmokeFile } from './smoke-file.ts';

const vad = await loadBundleDefinition(new URL('./vad-demo/bundle.json', import.meta.url).pathname);
const buildError = (code: string) => (e: unknown) => e instanceof BundleBuildError && e.code === code;
const twoHeadDef = (extra: object = {}) => BundleDefinition.parse({ name: 'two-head', preprocess: { type: 'tensor', ...extra }, postprocess: { task: 'outputs' } });

test('a stateful model with float32, int64 scalar and state inputs: pinned sr, state chained across the generated vectors', async () => {
  const built = await buildBundle({ definition: vad.definition, modelBytes: statefulVadModel() });
  const file = built.files.find((f) => f.path === 'smoke.bin');
  assert.ok(file, 'four 512-sample frames and their state are past the inline limit');
  const vectors = decodeSmokeFile(file.bytes);
  assert.equal(vectors.length, 4);
  for (const v of vectors) {
    assert.deepEqual(v.inputs.sr, { dims: [], data: [16000] });
    assert.deepEqual(v.inputs.input.dims, [1, 512]);
    assert.ok(v.inputs.input.data.every((x) => x >= -1 && x <= 1), 'frames drawn from the declared range');
    assert.deepEqual(v.inputs.state.dims, [2, 1, 128]);
    assert.deepEqual(v.expected.output.dims, [1, 1]);
  }
  assert.ok(vectors[0].inputs.state.data.every((x) => x === 0), 'the first call starts from the initial state');
  for (let i = 1; i < vectors.length; i++) assert.deepEqual(vectors[i].inputs.state, vectors[i - 1].expected.stateN, `vector ${i} carries the state of vector ${i - 1}`);

  // A device session (same options) reproduces them; a model with other weights does not.
  const session = await ort.InferenceSession.create(statefulVadModel(), DEVICE_SESSION_OPTIONS);
  const ok = await runSmokeVectors(createOrtRunner(session), vectors, built.resolved.smoke.tolerance);
  await session.release();
  assert.ok(ok.ok, JSON.stringify(ok.failures));
  const other = await ort.InferenceSession.create(statefulVadModel(2), DEVICE_SESSION_OPTIONS);
  assert.equal((await runSmokeVectors(createOrtRunner(other), vectors, built.resolved.smoke.tolerance)).ok, false);
  await other.release();
  assert.equal(built.resolved.smoke.measured?.against.includes('plain session'), true);
});

test('symbolic dims are resolved from the definition; an unresolved one is refused naming it', async () => {
  await assert.rejects(buildBundle({ definition: twoHeadDef(), modelBytes: twoHeadModel() }), (e: unknown) => buildError('UNRESOLVED_DIM')(e) && /batch/.test((e as Error).message));
  const built = await buildBundle({ definition: twoHeadDef({ dims: { batch: 2 } }), modelBytes: twoHeadModel() });
  const v = built.resolved.smoke.vectors[0];
  assert.deepEqual(v.inputs.x.dims, [2, 16]);
  assert.deepEqual(v.expected.box.dims, [2, 4]);
  assert.deepEqual(v.expected.scores.dims, [2, 2, 3]);
});

test('names the definition gets wrong are refused at build time', async () => {
  const def = (pre: object) => BundleDefinition.parse({ ...vad.definition, preprocess: { ...vad.definition.preprocess, ...pre } });
  await assert.rejects(buildBundle({ definition: def({ fixed: { rate: { dims: [], data: [16000] } } }), modelBytes: statefulVadModel() }), buildError('INPUT_NOT_IN_MODEL'));
  await assert.rejects(buildBundle({ definition: def({ fixed: { sr: { dims: [2], data: [1, 2] } } }), modelBytes: statefulVadModel() }), buildError('INPUT_SHAPE_MISMATCH'));
  await assert.rejects(buildBundle({ definition: def({ state: [{ input: 'state', output: 'hidden', initial: 0 }] }), modelBytes: statefulVadModel() }), buildError('OUTPUT_NOT_IN_MODEL'));
  const labels3 = BundleDefinition.parse({ ...vad.definition, postprocess: { ...vad.definition.postprocess, labels: ['a', 'b', 'c'] } });
  await assert.rejects(buildBundle({ definition: labels3, modelBytes: statefulVadModel() }), buildError('LABELS_MISMATCH'));
});

test('smoke.bin round-trips float32, float64 and int64 values exactly', () => {
  const vectors = [
    { inputs: { a: { dims: [2], data: [Math.fround(0.1), -3] }, n: { dims: [], data: [16000] } }, expected: { y: { dims: [1, 2], data: [0.1, 2 ** 52 + 1] } } },
    { inputs: { a: { dims: [2], data: [1, 2] }, n: { dims: [], data: [8000] } }, expected: { y: { dims: [1, 2], data: [0, -0.5] } } },
  ];
  assert.deepEqual(decodeSmokeFile(encodeSmokeFile(vectors)), vectors);
  assert.throws(() => decodeSmokeFile(new Uint8Array(20)), /not a smoke vector file/);
});

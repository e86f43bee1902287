import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { BundleBuildError, buildBundle, type BuiltBundle } from './builder.ts';
import { canonicalize } from './canonical-json.ts';
import { BundleDefinition } from './definition.ts';
import { loadBundleDefinition } from './load-definition.ts';
import { createOrtRunner } from './ort-runner.ts';
import { DEVICE_SESSION_OPTIONS } from './session-options.ts';
import { runSmokeVectors } from './smoke.ts';
import { decodeSmokeFile } from './smoke-file.ts';
import { imageModel, tabularModel } from './testing/fixtures.ts';

const tabular = await loadBundleDefinition(new URL('./tabular-demo/bundle.json', import.meta.url).pathname);
const image = await loadBundleDefinition(new URL('./image-demo/bundle.json', import.meta.url).pathname);

/** The vectors as a device reads them: inline, or from smoke.bin. */
function vectorsOf(built: BuiltBundle) {
  const file = built.files.find((f) => f.path === 'smoke.bin');
  return file ? decodeSmokeFile(file.bytes) : built.resolved.smoke.vectors;
}

async function smokeOn(modelBytes: Uint8Array, built: BuiltBundle) {
  const session = await ort.InferenceSession.create(modelBytes, DEVICE_SESSION_OPTIONS);
  try {
    return await runSmokeVectors(createOrtRunner(session), vectorsOf(built), built.resolved.smoke.tolerance);
  } finally {
    await session.release();
  }
}

function buildError(code: string) {
  return (e: unknown) => e instanceof BundleBuildError && e.code === code;
}

test('example definitions load with their labels', () => {
  assert.deepEqual(tabular.labels, ['low', 'medium', 'high']);
  assert.deepEqual(image.labels, ['circle', 'square', 'triangle']);
  assert.equal(tabular.definition.preprocess.type === 'tabular' && tabular.definition.preprocess.input, 'features');
  assert.equal(image.definition.preprocess.type, 'image');
});

test('tabular: files are content-addressed, bundle.json is the canonical resolved definition', async () => {
  const modelBytes = tabularModel();
  const built = await buildBundle({ definition: tabular.definition, modelBytes, labels: tabular.labels });
  assert.deepEqual(built.files.map((f) => f.path), ['model.onnx', 'bundle.json']);
  for (const file of built.files) {
    assert.equal(file.sha256, createHash('sha256').update(file.bytes).digest('hex'));
    assert.equal(file.size, file.bytes.byteLength);
  }
  const shipped = new TextDecoder().decode(built.files[1].bytes);
  assert.equal(shipped, canonicalize(built.resolved));
  const reparsed = BundleDefinition.parse(JSON.parse(shipped));
  assert.deepEqual(reparsed.postprocess.labels, ['low', 'medium', 'high']);
  assert.equal(reparsed.postprocess.output, 'logits');
  assert.equal(reparsed.smoke.vectors.length, 4);
  for (const v of reparsed.smoke.vectors) {
    assert.deepEqual(v.inputs.features.dims, [1, 8]);
    assert.ok(v.inputs.features.data.every((x) => Math.fround(x) === x), 'inputs are exact float32 values');
    assert.deepEqual(v.expected.logits.dims, [1, 3]);
  }
  // Deterministic: same inputs, same bytes.
  const again = await buildBundle({ definition: tabular.definition, modelBytes, labels: tabular.labels });
  assert.equal(again.files[1].sha256, built.files[1].sha256);
  assert.notDeepEqual(reparsed.smoke.vectors[0].inputs, reparsed.smoke.vectors[1].inputs);
});

test('generated smoke vectors pass on the same model and fail when one weight changes', async () => {
  for (const [def, make] of [[tabular, tabularModel], [image, imageModel]] as const) {
    const built = await buildBundle({ definition: def.definition, modelBytes: make(), labels: def.labels });
    const same = await smokeOn(make(), built);
    assert.ok(same.ok, JSON.stringify(same.failures));
    assert.equal(same.maxAbsDiff, 0);
    const changed = await smokeOn(make({ bump: 0.05 }), built);
    assert.equal(changed.ok, false);
    assert.ok(changed.failures.every((f) => f.code === 'VALUE_MISMATCH'));
  }
});

test('image vectors follow the preprocess spec: NCHW dims, (p/255 - 0.5)/0.5 values', async () => {
  const built = await buildBundle({ definition: image.definition, modelBytes: imageModel(), labels: image.labels });
  // 4 vectors of 3,072 values are past the inline limit: they travel as smoke.bin, bundle.json names it.
  assert.deepEqual(built.files.map((f) => f.path), ['model.onnx', 'smoke.bin', 'bundle.json']);
  assert.equal(built.resolved.smoke.vectors.length, 0);
  assert.equal(built.resolved.smoke.file?.sha256, built.files[1].sha256);
  assert.ok(built.files[2].size < 4096, `bundle.json stays small: ${built.files[2].size} bytes`);
  const input = vectorsOf(built)[0].inputs.image;
  assert.deepEqual(input.dims, [1, 3, 32, 32]);
  assert.equal(input.data.length, 3 * 32 * 32);
  // Every value is an 8-bit pixel mapped to [-1, 1].
  for (const v of input.data) {
    const pixel = (v * 0.5 + 0.5) * 255;
    assert.ok(Math.abs(pixel - Math.round(pixel)) < 1e-3 && v >= -1 && v <= 1, `value ${v} is not a normalized 8-bit pixel`);
  }
  const pixels = new Set(input.data.map((v) => Math.round((v * 0.5 + 0.5) * 255)));
  assert.ok(pixels.size > 200, 'pixels spread over the 8-bit range');

  const nhwc = BundleDefinition.parse({ ...image.definition, preprocess: { ...image.definition.preprocess, layout: 'NHWC' } });
  await assert.rejects(buildBundle({ definition: nhwc, modelBytes: imageModel(), labels: image.labels }), buildError('INPUT_SHAPE_MISMATCH'));
});

test('rejects a definition naming an input the model does not have', async () => {
  await assert.rejects(buildBundle({ definition: tabular.definition, modelBytes: tabularModel({ inputName: 'x' }), labels: tabular.labels }), (e: unknown) =>
    buildError('INPUT_NOT_IN_MODEL')(e) && /"features".*inputs: x/.test((e as Error).message),
  );
});

test('rejects incompatible dims, a missing output, labels that do not fit, broken models', async () => {
  const seven = BundleDefinition.parse({ ...tabular.definition, preprocess: { ...tabular.definition.preprocess, features: tabular.definition.preprocess.type === 'tabular' ? tabular.definition.preprocess.features.slice(0, 7) : [] } });
  await assert.rejects(buildBundle({ definition: seven, modelBytes: tabularModel(), labels: tabular.labels }), buildError('INPUT_SHAPE_MISMATCH'));
  const noOutput = BundleDefinition.parse({ ...tabular.definition, postprocess: { ...tabular.definition.postprocess, output: 'probabilities' } });
  await assert.rejects(buildBundle({ definition: noOutput, modelBytes: tabularModel(), labels: tabular.labels }), buildError('OUTPUT_NOT_IN_MODEL'));
  await assert.rejects(buildBundle({ definition: tabular.definition, modelBytes: tabularModel() }), buildError('LABELS_MISSING'));
  await assert.rejects(buildBundle({ definition: tabular.definition, modelBytes: tabularModel(), labels: ['a', 'b'] }), buildError('LABELS_MISMATCH'));
  await assert.rejects(buildBundle({ definition: tabular.definition, modelBytes: new Uint8Array([1, 2, 3]), labels: tabular.labels }), buildError('INVALID_MODEL'));
});

test('hand-written smoke vectors are kept when they hold, refused when they do not', async () => {
  const modelBytes = tabularModel();
  const generated = await buildBundle({ definition: tabular.definition, modelBytes, labels: tabular.labels });
  const given = BundleDefinition.parse({ ...tabular.definition, smoke: { ...tabular.definition.smoke, vectors: generated.resolved.smoke.vectors.slice(0, 1) } });
  const kept = await buildBundle({ definition: given, modelBytes, labels: tabular.labels });
  assert.deepEqual(kept.resolved.smoke.vectors, generated.resolved.smoke.vectors.slice(0, 1));
  await assert.rejects(buildBundle({ definition: given, modelBytes: tabularModel({ bump: 1 }), labels: tabular.labels }), buildError('SMOKE_FAILED'));
});

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { BundleDefinition, type TabularPreprocess } from '../../firmware-bundles/definition.ts';
import { runSmokeVectors } from '../../firmware-bundles/smoke.ts';
import { makeFixtures, tabularReference, type Fixtures } from '../../test/fixtures/runtime-models.ts';
import { rejectsWith } from '../../test/helpers/runtime-checks.ts';
import { InferenceEngine, type BundleRuntimeSpec, type PredictResult, type StagedBundle } from './engine.ts';

const LABELS = ['low', 'medium', 'high'];
const tabularDef = BundleDefinition.parse({
  name: 'tabular-test',
  preprocess: { type: 'tabular', input: 'features', features: Array.from({ length: 8 }, (_, i) => ({ name: `f${i}` })) },
  postprocess: { output: 'logits', softmax: true, topK: 3, task: 'classification' },
});
const imageDef = BundleDefinition.parse({
  name: 'image-test',
  preprocess: { type: 'image', input: 'image', width: 32, height: 32, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
  postprocess: { softmax: true, topK: 2 },
});

const TAB_PRE = tabularDef.preprocess as TabularPreprocess;

function row(seed: number): Record<string, number> {
  return Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`f${i}`, Math.sin(seed * 3.1 + i) * 2]));
}
const rowArray = (seed: number) => Object.values(row(seed));

let fx: Fixtures;
let engine: InferenceEngine;
const tabularSpec = async (version: number): Promise<BundleRuntimeSpec> => ({
  bundle: { id: `bnd_t${version}`, version },
  modelPath: await fx.tabular(version),
  preprocess: tabularDef.preprocess,
  postprocess: tabularDef.postprocess,
  labels: LABELS,
});
const imageSpec = async (version: number): Promise<BundleRuntimeSpec> => ({
  bundle: { id: `bnd_i${version}`, version: `1.${version}.0` },
  modelPath: await fx.imageVersion(version),
  preprocess: imageDef.preprocess,
  postprocess: imageDef.postprocess,
});

before(async () => {
  fx = await makeFixtures();
  engine = new InferenceEngine();
  await engine.start();
});
after(async () => {
  await engine.stop();
  await fx.cleanup();
});

describe('InferenceEngine', () => {
  test('nothing active: NO_ACTIVE_MODEL', async () => {
    await rejectsWith(engine.predict({ features: row(1) }), 'NO_ACTIVE_MODEL');
  });

  test('tabular predictions equal a direct InferenceSession.run plus softmax / top-K', async () => {
    const staged = await engine.stage(await tabularSpec(1));
    assert.equal(engine.activate(staged), undefined);
    const session = await ort.InferenceSession.create(await fx.tabular(1), { intraOpNumThreads: 1 });
    try {
      const batch = [row(1), rowArray(2), row(3)];
      const r = await engine.predict({ features: batch });
      const direct = await session.run({ features: new ort.Tensor('float32', Float32Array.from([rowArray(1), rowArray(2), rowArray(3)].flat()), [3, 8]) });
      assert.deepEqual(r.outputs.logits.data, direct.logits.data);
      assert.deepEqual(r.bundle, { id: 'bnd_t1', version: 1 });
      assert.equal(r.batch, true);
      assert.equal(r.predictions.length, 3);
      const logits = direct.logits.data as Float32Array;
      for (let n = 0; n < 3; n++) {
        const z = [0, 1, 2].map((j) => logits[n * 3 + j]);
        const e = z.map((v) => Math.exp(v - Math.max(...z)));
        const p = e.map((v) => v / e.reduce((a, b) => a + b));
        const order = [0, 1, 2].sort((a, b) => p[b] - p[a]);
        assert.deepEqual(r.predictions[n].map((x) => x.index), order);
        assert.deepEqual(r.predictions[n].map((x) => x.label), order.map((i) => LABELS[i]));
        r.predictions[n].forEach((x) => assert.ok(Math.abs(x.score - p[x.index]) < 1e-12));
      }
      assert.deepEqual([...r.features!], [rowArray(1), rowArray(2), rowArray(3)].flat().map(Math.fround));
      assert.deepEqual(r.quality![0], { missing: 0, extra: 0, wrongType: 0, nan: 0 });
      assert.ok(r.latencyMs > 0 && r.latencyMs >= r.timings.inferMs);
      const single = await engine.predict({ features: row(4) });
      assert.equal(single.batch, false);
      assert.equal(single.predictions.length, 1);
    } finally {
      await session.release();
    }
  });

  test('image predictions equal a direct InferenceSession.run on an independently preprocessed tensor', async () => {
    const staged = await engine.stage(await imageSpec(0));
    const raw = Buffer.from(Array.from({ length: 50 * 40 * 3 }, (_, i) => (i * 13) % 251));
    const png = await sharp(raw, { raw: { width: 50, height: 40, channels: 3 } }).png().toBuffer();
    const r = await engine.predict({ image: png }, { staged });
    const { data: px } = await sharp(png).resize(32, 32, { fit: 'fill' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const x = new Float32Array(3 * 32 * 32);
    for (let c = 0; c < 3; c++) for (let i = 0; i < 1024; i++) x[c * 1024 + i] = (px[i * 3 + c] / 255 - 0.5) / 0.25;
    const session = await ort.InferenceSession.create(fx.image, { intraOpNumThreads: 1 });
    const direct = await session.run({ image: new ort.Tensor('float32', x, [1, 3, 32, 32]) });
    await session.release();
    assert.deepEqual(r.outputs.logits.data, direct.logits.data);
    assert.equal(r.predictions[0].length, 2);
    assert.equal(r.predictions[0][0].label, String(r.predictions[0][0].index));
    assert.deepEqual(r.pixels![0].data, new Uint8Array(px));
    assert.deepEqual(r.bundle, { id: 'bnd_i0', version: '1.0.0' });
    await engine.release(staged);
  });

  test('invalid requests are typed errors and the next good request still works', async () => {
    await rejectsWith(engine.predict({ features: { ...row(1), f3: undefined } }), 'INVALID_INPUT', /feature "f3" is missing/);
    await rejectsWith(engine.predict({ features: { ...row(1), f5: 'high' } }), 'INVALID_INPUT', /feature "f5" must be a number/);
    await rejectsWith(engine.predict({ inputs: { features: { dims: [1, 7], data: [1, 2, 3, 4, 5, 6, 7] } } }), 'INVALID_INPUT', /dim 1 must be 8/);
    await rejectsWith(engine.predict({ image: Buffer.from('GIF89a, but not really') }), 'INVALID_INPUT', /takes "features"/);
    const image = await engine.stage(await imageSpec(0));
    await rejectsWith(engine.predict({ image: Buffer.from('not an image at all') }, { staged: image }), 'INVALID_IMAGE', /cannot decode/);
    await engine.release(image);
    const ok = await engine.predict({ inputs: { features: { dims: [1, 8], data: rowArray(5) } } });
    const ref = tabularReference(1, rowArray(5));
    (ok.outputs.logits.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - ref[i]) < 1e-4));
  });

  test('a bundle whose spec does not fit its model, or a broken model, is refused; the active bundle keeps serving', async () => {
    const handlesBefore = engine.host.stats().handles;
    const spec = await tabularSpec(2);
    await rejectsWith(engine.stage({ ...spec, preprocess: { ...TAB_PRE, features: TAB_PRE.features.slice(0, 7) } }), 'BUNDLE_MISMATCH', /feature count: the spec gives 7.*has 8/);
    await rejectsWith(engine.stage({ ...spec, labels: ['a', 'b'] }), 'BUNDLE_MISMATCH', /2 labels for 3 classes/);
    await rejectsWith(engine.stage({ ...spec, preprocess: { ...TAB_PRE, input: 'x' } }), 'BUNDLE_MISMATCH', /"x" is not an input/);
    await rejectsWith(engine.stage({ ...spec, preprocess: imageDef.preprocess, postprocess: imageDef.postprocess, labels: undefined }), 'BUNDLE_MISMATCH');
    await rejectsWith(engine.stage({ ...(await imageSpec(0)), preprocess: { ...imageDef.preprocess, width: 64 } as never }), 'BUNDLE_MISMATCH', /width: the spec gives 64/);
    await rejectsWith(engine.stage({ ...spec, modelPath: fx.broken }), 'MODEL_LOAD_FAILED');
    assert.equal(engine.host.stats().handles, handlesBefore, 'refused models were released');
    assert.equal(engine.active?.bundle.id, 'bnd_t1');
    const r = await engine.predict({ features: row(6) });
    assert.equal(r.bundle.id, 'bnd_t1');
  });

  test('smoke vectors run on the staged session (firmware-bundles runSmokeVectors)', async () => {
    const staged = await engine.stage(await tabularSpec(3));
    const vectors = [1, 2].map((s) => ({
      inputs: { features: { dims: [1, 8], data: rowArray(s) } },
      expected: { logits: { dims: [1, 3], data: Array.from(tabularReference(3, rowArray(s))) } },
    }));
    assert.equal((await runSmokeVectors(engine.smokeRunner(staged), vectors, 1e-4)).ok, true);
    const wrong = vectors.map((v) => ({ ...v, expected: { logits: { dims: [1, 3], data: Array.from(tabularReference(1, v.inputs.features.data)) } } }));
    const r = await runSmokeVectors(engine.smokeRunner(staged), wrong, 1e-4);
    assert.equal(r.ok, false, 'model v3 does not reproduce model v1 outputs');
    await engine.release(staged);
  });
});

describe('InferenceEngine hot swap', () => {
  let engine: InferenceEngine;
  before(async () => {
    engine = new InferenceEngine();
    await engine.start();
  });
  after(() => engine.stop());

  test('hot swap: 2,000 pipelined requests through 4 activations, zero failures, every answer matches its bundle', async () => {
    const versions = [11, 12, 13, 14, 15];
    let current = await engine.stage(await tabularSpec(versions[0]));
    engine.activate(current);
    const total = 2000;
    let sent = 0;
    const answers: Array<{ seed: number; r: PredictResult }> = [];
    const failures: unknown[] = [];
    // Clients stop sending at each swap point until the next bundle is active (requests already in
    // flight cross the swap): staging takes longer than a fast worker needs for the rest of the requests,
    // and without the pause the last bundles could be activated after every request was sent.
    let swapAt = total / versions.length;
    let swapped: Promise<void> = Promise.resolve();
    let markSwapped = () => {};
    const client = async () => {
      while (sent < total) {
        while (sent >= swapAt) await swapped;
        const seed = sent++;
        try {
          answers.push({ seed, r: await engine.predict({ features: row(seed) }) });
        } catch (err) {
          failures.push(err);
        }
      }
    };
    const swapper = async () => {
      for (let i = 1; i < versions.length; i++) {
        swapped = new Promise<void>((r) => (markSwapped = r));
        while (sent < swapAt) await new Promise((r) => setImmediate(r));
        const next: StagedBundle = await engine.stage(await tabularSpec(versions[i]));
        const previous = engine.activate(next)!;
        void engine.release(previous); // as the update path does after probation; must not fail anyone
        current = next;
        swapAt = i + 1 < versions.length ? (total * (i + 1)) / versions.length : Infinity;
        markSwapped();
      }
    };
    await Promise.all([...Array.from({ length: 32 }, client), swapper()]);
    assert.deepEqual(failures, []);
    assert.equal(answers.length, total);
    const served = new Map<number | string, number>();
    for (const { seed, r } of answers) {
      const v = r.bundle.version as number;
      served.set(v, (served.get(v) ?? 0) + 1);
      const ref = tabularReference(v, rowArray(seed));
      const got = r.outputs.logits.data as Float32Array;
      for (let j = 0; j < 3; j++) assert.ok(Math.abs(got[j] - ref[j]) < 1e-3, `request ${seed} says v${v} but its logits ${got} are not v${v}'s ${ref}`);
    }
    assert.deepEqual([...served.keys()].sort(), versions, `every bundle served some requests: ${[...served]}`);
    assert.equal(engine.active, current);
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(engine.host.stats().handles, 1, 'the replaced bundles were released');
  });

  test('hot swap with async image preprocessing: sessions are held across decoding, so releasing right after a swap fails no one', async () => {
    let current = await engine.stage(await imageSpec(1));
    const previous = engine.activate(current);
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 10, g: 200, b: 90 } } }).png().toBuffer();
    const results: PredictResult[] = [];
    const failures: unknown[] = [];
    // 16 clients × 15 requests; each request holds its bundle while sharp decodes (async), and
    // the swapper releases the replaced bundle right away, while some of its requests still decode.
    const clients = Array.from({ length: 16 }, async () => {
      for (let k = 0; k < 15; k++) {
        try {
          results.push(await engine.predict({ image: png }));
        } catch (err) {
          failures.push(err);
        }
      }
    });
    const swapper = async () => {
      for (let v = 2; v <= 5; v++) {
        while (results.length + failures.length < (v - 1) * 45) await new Promise((r) => setImmediate(r));
        const next = await engine.stage(await imageSpec(v));
        void engine.release(engine.activate(next)!);
        current = next;
      }
    };
    await Promise.all([...clients, swapper()]);
    assert.deepEqual(failures, []);
    assert.equal(results.length, 240);
    // logits[0] = f(image) + version, and every request sends the same image: subtracting the
    // version an answer claims must give the same f for all answers.
    const versionOf = (r: PredictResult) => Number(String(r.bundle.version).split('.')[1]);
    const f = (r: PredictResult) => (r.outputs.logits.data as Float32Array)[0] - versionOf(r);
    for (const r of results) assert.ok(Math.abs(f(r) - f(results[0])) < 1e-4, `an answer claiming ${r.bundle.version} has logits ${r.outputs.logits.data}`);
    const versions = new Set(results.map(versionOf));
    assert.ok(versions.size >= 3, `answers from several bundles: ${[...versions]}`);
    assert.equal(engine.active, current);
    if (previous) await engine.release(previous);
  });
});

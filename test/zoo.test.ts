// A zoo of model shapes users' exporters write (issue 17), each through the whole loop with one real
// agent process: push → registry facts → bundle build → deploy → predict through the local API
// (answers checked against onnxruntime run directly on the same file) → statistics on the server →
// optimize (applied or refused with the reason). Models are built in code (test/helpers/zoo-models.ts).
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { and, eq, sql } from 'drizzle-orm';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { api, type AgentProcess, waitFor } from '../agent/testing/harness.ts';
import { fromFloat16Bits, toFloat16Bits } from '../firmware-bundles/float16.ts';
import { imageFeatureRowOf } from '../firmware-bundles/image-pixels.ts';
import { DEVICE_SESSION_OPTIONS } from '../firmware-bundles/session-options.ts';
import { models, modelVersions, statsDrops, statsWindows } from '../server/db/schema.ts';
import { encodeModel, node, valueInfo } from '../server/onnx/build.ts';
import { runCli } from './helpers/cli.ts';
import type { TestPlane } from './helpers/control-plane.ts';
import { startPlaneWithAgent, type PlaneWithAgent } from './helpers/plane-with-agent.ts';
import { externalDataModel, FOREST, forestClassifier, forestRegressor, fp16Model, ifModel, imageModel, qdqModel, qoperatorModel, unknownOpModel } from './helpers/zoo-models.ts';

type Feeds = Record<string, ort.Tensor>;

/** The model run directly in this process: what the agent must answer. */
async function direct(bytes: Uint8Array, feeds: Feeds, deviceOptions = false): Promise<Record<string, number[]>> {
  // Quantized graphs compute slightly differently per session options: compare with the device's.
  const s = await ort.InferenceSession.create(bytes, deviceOptions ? DEVICE_SESSION_OPTIONS : {});
  try {
    const out = await s.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.type === 'float16' ? fromFloat16Bits(t.data as Uint16Array) : Array.from(t.data as ArrayLike<number | bigint>, Number)]));
  } finally {
    await s.release();
  }
}

function close(actual: number[], expected: number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} values, expected ${expected.length}`);
  actual.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) <= tol, `${what}[${i}]: ${v} vs ${expected[i]}`));
}

const rowsOf = (n: number, width: number, seed: number) => Array.from({ length: n }, (_, r) => Array.from({ length: width }, (_, j) => Math.fround(Math.sin((r + 1) * (j + 2) * seed))));

describe('model zoo: real-world shapes through the whole loop on a real agent', { timeout: 300_000 }, () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  let agent: AgentProcess;
  let port = 0;
  let deviceId = '';

  const cli = (...args: string[]) => lab.cli(...args);
  const activeModel = async () => {
    const d = (await cp.api('GET', `/api/v1/devices/${deviceId}`)).body;
    return d.updateState === 'active' ? `${d.reported?.active?.model?.name}@${d.reported?.active?.model?.version}` : `${d.updateState}: ${JSON.stringify(d.reported?.lastError ?? null)}`;
  };
  const push = async (name: string, bytes: Uint8Array) => {
    const file = path.join(dir, `${name}.onnx`);
    await writeFile(file, bytes);
    return cli('models', 'push', file, '--name', name);
  };
  /** Builds a bundle from a definition, deploys it to the agent and waits until it is active (its smoke test passed there). */
  const ship = async (ref: string, definition: Record<string, unknown>) => {
    const defDir = path.join(dir, `def-${ref.replace('@', '-')}`);
    await mkdir(defDir, { recursive: true });
    await writeFile(path.join(defDir, 'bundle.json'), JSON.stringify(definition));
    const built = await cli('bundles', 'build', ref, '--def', defDir);
    await cli('deploy', ref, '--device', deviceId);
    await waitFor(async () => (await activeModel()) === ref, `${ref} active`, 60_000).catch(async (e) => assert.fail(`${e.message}: ${await activeModel()}`));
    return built;
  };
  /** Rows of statistics the server stored for this device and version. */
  const statsRows = async (ref: string) => {
    const [name, version] = ref.split('@');
    const [{ versionId }] = await cp.plane.db
      .select({ versionId: modelVersions.id })
      .from(modelVersions)
      .innerJoin(models, eq(models.id, modelVersions.modelId))
      .where(and(eq(models.name, name), eq(modelVersions.version, Number(version))));
    const [{ n }] = await cp.plane.db
      .select({ n: sql<number>`coalesce(sum(${statsWindows.rows}), 0)` })
      .from(statsWindows)
      .where(and(eq(statsWindows.deviceId, deviceId), eq(statsWindows.modelVersionId, versionId)));
    return Number(n);
  };
  const statsReach = async (ref: string, sent: number) =>
    waitFor(async () => (await statsRows(ref)) >= sent, `${sent} rows of statistics for ${ref} on the server`, 30_000).catch(async (e) => {
      const drops = await cp.plane.db.select().from(statsDrops);
      const windows = await cp.plane.db.select({ v: statsWindows.modelVersionId, rows: statsWindows.rows }).from(statsWindows);
      assert.fail(`${e.message}; refused windows: ${JSON.stringify(drops)}; windows: ${JSON.stringify(windows)}; device: ${JSON.stringify((await api(port, 'GET', '/v1/status')).body)}`);
    });
  /** The version's reference profile (features + outputs per row), so its devices' windows are merged, not refused. */
  const setReference = async (ref: string, rows: Array<Record<string, unknown>>, numClasses?: number) => {
    const [name, version] = ref.split('@');
    const r = await cp.api('POST', `/api/v1/models/${name}/versions/${version}/reference`, { json: { rows, ...(numClasses ? { numClasses } : {}) } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  };
  const predict = async (body: unknown, headers?: Record<string, string>) => {
    const r = await api(port, 'POST', '/v1/predict', body, headers);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };

  let lab: PlaneWithAgent;
  before(async () => {
    lab = await startPlaneWithAgent({ site: 'zoo', prefix: 'flotilla-zoo-' });
    ({ cp, dir, env, agent, port, deviceId } = lab);
  });
  after(async () => {
    await lab?.stop();
  });

  test('tree ensembles: ZipMap rewritten at push (original kept), classifier and regressor served, sized in nodes and leaves, optimize refused', async () => {
    // skl2onnx's default export: probabilities as a sequence of maps through ZipMap.
    const pushed = await runCli(['models', 'push', await writeModel('forest-zipmap', forestClassifier(true)), '--name', 'forest'], env);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.match(pushed.stdout, /3 trees, 21 nodes, 12 leaves/);
    assert.match(pushed.stdout, /rewritten at push: output_probability: ZipMap removed, now float32 \[N, 3\] \(classes 0, 1, 2\); original kept/);
    const v = await cli('models', 'show', 'forest@1');
    assert.deepEqual(v.facts.trees, { trees: FOREST.trees, nodes: FOREST.nodes, leaves: FOREST.leaves });
    assert.equal(v.paramCount, 0);
    assert.deepEqual(v.outputs.find((o: { name: string }) => o.name === 'output_probability'), { name: 'output_probability', dtype: 'float32', shape: ['N', 3] });
    const original = v.facts.imported.originalSha256 as string;
    const orig = await fetch(`${cp.url}/artifacts/sha256/${original}`, { headers: { authorization: `Bearer ${cp.adminToken}` } });
    assert.equal(orig.status, 200, 'the pushed file is kept');
    assert.ok(Buffer.from(await orig.arrayBuffer()).equals(Buffer.from(forestClassifier(true))), 'byte for byte');

    const features = ['f0', 'f1', 'f2', 'f3'];
    const refRows = rowsOf(200, 4, 0.7);
    const refOut = await direct(forestClassifier(false), { input: new ort.Tensor('float32', Float32Array.from(refRows.flat()), [refRows.length, 4]) });
    await setReference(
      'forest@1',
      refRows.map((row, i) => ({ ...Object.fromEntries(features.map((f, j) => [f, row[j]])), outputs: { predictedClass: refOut.output_label[i], confidence: Math.max(...refOut.output_probability.slice(i * 3, i * 3 + 3)) } })),
      3,
    );
    await ship('forest@1', {
      name: 'forest',
      preprocess: { type: 'tabular', input: 'input', features: features.map((name) => ({ name })) },
      postprocess: { output: 'output_probability', task: 'classification', labels: ['setosa', 'versicolor', 'virginica'], topK: 3 },
    });
    const rows = rowsOf(6, 4, 1.3);
    // The same forest exported with zipmap=False: the tensor the rewritten graph returns.
    const want = await direct(forestClassifier(false), { input: new ort.Tensor('float32', Float32Array.from(rows.flat()), [rows.length, 4]) });
    for (const [i, row] of rows.entries()) {
      const r = await predict({ features: Object.fromEntries(features.map((f, j) => [f, row[j]])) });
      close(r.outputs.output_probability.data, want.output_probability.slice(i * 3, i * 3 + 3), 1e-6, `forest row ${i}`);
      assert.equal(r.outputs.output_label.data[0], want.output_label[i], 'the int64 label output comes back as a number');
      assert.equal(r.predictions[0].index, want.output_label[i], 'top class = the forest\'s own label');
    }
    await statsReach('forest@1', rows.length);
    const opt = await runCli(['optimize', 'forest@1', '--quantize', 'int8'], env);
    assert.notEqual(opt.code, 0);
    assert.match(opt.stderr, /forest@1 is a tree ensemble \(3 trees, 21 nodes, 12 leaves\): nothing to quantize or prune/, opt.stderr);

    // A regressor: one value per row, regression postprocessing, bins for its output statistics.
    await push('boosted', forestRegressor());
    assert.deepEqual((await cli('models', 'show', 'boosted@1')).facts.trees, { trees: 3, nodes: 21, leaves: 12 });
    const refReg = await direct(forestRegressor(), { input: new ort.Tensor('float32', Float32Array.from(refRows.flat()), [refRows.length, 4]) });
    await setReference('boosted@1', refRows.map((row, i) => ({ ...Object.fromEntries(features.map((f, j) => [f, row[j]])), outputs: { value: refReg.variable[i] } })));
    await ship('boosted@1', {
      name: 'boosted',
      preprocess: { type: 'tabular', input: 'input', features: features.map((name) => ({ name })) },
      postprocess: { output: 'variable', task: 'regression' },
    });
    const reg = await direct(forestRegressor(), { input: new ort.Tensor('float32', Float32Array.from(rows.flat()), [rows.length, 4]) });
    for (const [i, row] of rows.entries()) {
      const r = await predict({ features: Object.fromEntries(features.map((f, j) => [f, row[j]])) });
      close([r.predictions[0].score], [reg.variable[i]], 1e-5, `regressor row ${i}`);
      assert.equal(r.predictions[0].label, 'variable');
    }
    await statsReach('boosted@1', rows.length);
  });

  test('bad input: a kept non-tensor output and an op onnxruntime lacks are refused at bundle build with a 422 naming them', async () => {
    // A sequence output that is not ZipMap (the registry leaves it alone).
    await push('seq-out', encodeModel({
      inputs: [valueInfo('x', 'float32', ['N', 4])],
      outputs: [{ name: 'parts', type: { sequenceType: { elemType: { tensorType: { elemType: 1 } } } } }],
      initializers: [],
      nodes: [node('SequenceConstruct', ['x', 'x'], ['parts'])],
    }));
    const def = { name: 'bad', preprocess: { type: 'tensor', dims: { N: 1 } }, postprocess: { task: 'outputs' } };
    const seq = await cp.api('POST', '/api/v1/bundles', { json: { model: 'seq-out@1', definition: def } });
    assert.equal(seq.status, 422, JSON.stringify(seq.body));
    assert.equal(seq.body.error.details.reason, 'NON_TENSOR_OUTPUT');
    assert.match(seq.body.error.message, /output "parts" is not a tensor/);
    assert.match(seq.body.error.message, /options=\{id\(model\): \{'zipmap': False\}\}/);

    await push('unknown-op', unknownOpModel());
    const unk = await cp.api('POST', '/api/v1/bundles', { json: { model: 'unknown-op@1', definition: def } });
    assert.equal(unk.status, 422, JSON.stringify(unk.body));
    assert.equal(unk.body.error.details.reason, 'INVALID_MODEL');
    assert.match(unk.body.error.message, /FancyActivation/);
    // The CLI says it in one line and exits non-zero.
    const defDir = path.join(dir, 'def-bad');
    await mkdir(defDir, { recursive: true });
    await writeFile(path.join(defDir, 'bundle.json'), JSON.stringify(def));
    const r = await runCli(['bundles', 'build', 'unknown-op@1', '--def', defDir], env);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /FancyActivation/);
    assert.doesNotMatch(r.stderr, /internal/i);
  });

  test('already quantized (QOperator and QDQ): the registry shows int8, optimize says so instead of quantizing twice, both deploy and serve', async () => {
    for (const [name, bytes, format, ops, dims, input] of [
      ['qop', qoperatorModel(), 'QOperator', 'QLinearConv, QLinearMatMul', [1, 1, 8, 8], 'image'],
      ['qdq', qdqModel(), 'QDQ', 'DequantizeLinear, QuantizeLinear', [1, 16], 'x'],
    ] as const) {
      const pushed = await runCli(['models', 'push', await writeModel(name, bytes), '--name', name], env);
      assert.equal(pushed.code, 0, pushed.stderr);
      assert.match(pushed.stdout, new RegExp(`int8 \\(${format}: ${ops}; 9\\d% of weights\\)`), pushed.stdout);
      const v = await cli('models', 'show', `${name}@1`);
      assert.equal(v.facts.quantization.format, format);
      assert.ok(v.facts.weightTypes.int8 > v.facts.weightTypes.float32, JSON.stringify(v.facts.weightTypes));
      const opt = await runCli(['optimize', `${name}@1`, '--quantize', 'int8'], env);
      assert.notEqual(opt.code, 0);
      assert.match(opt.stderr, new RegExp(`${name}@1 is already int8 \\(${format}: ${ops}; .*\\): nothing left to quantize`), opt.stderr);
      assert.equal((await cli('models', 'versions', name)).versions.length, 1, 'no second int8 variant registered');

      // Served as a tensor model; its drift feature is the input's mean, its output a 3-class score row.
      const n = dims.reduce((a: number, b: number) => a * b, 1);
      const sample = (seed: number) => Array.from({ length: n }, (_, i) => Math.fround(Math.abs(Math.sin((i + 1) * seed)) * 0.9));
      const refInputs = Array.from({ length: 60 }, (_, i) => sample(1 + i * 0.37));
      const refRows = [];
      for (const x of refInputs) {
        const out = (await direct(bytes, { [input]: new ort.Tensor('float32', Float32Array.from(x), [...dims]) }, true))[name === 'qop' ? 'scores' : 'y'];
        const best = out.indexOf(Math.max(...out));
        refRows.push({ mean_in: x.reduce((a, b) => a + b, 0) / n, outputs: { predictedClass: best, confidence: Math.min(1, Math.max(0, out[best])) } });
      }
      await setReference(`${name}@1`, refRows, 3);
      await ship(`${name}@1`, {
        name,
        preprocess: { type: 'tensor', dims: { N: 1 }, ranges: { [input]: [0, 1] }, summaries: { mean_in: { input, stat: 'mean' } } },
        postprocess: { task: 'classification', labels: ['a', 'b', 'c'] },
      });
      for (const seed of [2.1, 3.3, 4.7]) {
        const x = sample(seed);
        const want = await direct(bytes, { [input]: new ort.Tensor('float32', Float32Array.from(x), [...dims]) }, true);
        const r = await predict({ inputs: { [input]: { dims, data: x } } });
        const out = name === 'qop' ? 'scores' : 'y';
        close(r.outputs[out].data, want[out], 1e-5, `${name} seed ${seed}`);
      }
      await statsReach(`${name}@1`, 3);
    }
  });

  test('NHWC (channels last) and grayscale image models: image preprocessing in the layout and channels the definition sets', async () => {
    const raw = (channels: number, seed: number) => Uint8Array.from({ length: 16 * 16 * channels }, (_, i) => Math.floor(Math.abs(Math.sin((i + 1) * seed)) * 255));
    const png = (pixels: Uint8Array, channels: 1 | 3) => sharp(Buffer.from(pixels), { raw: { width: 16, height: 16, channels } }).png().toBuffer();
    for (const [name, layout, channels] of [
      ['nhwc', 'NHWC', 3],
      ['gray', 'NCHW', 1],
    ] as const) {
      const bytes = imageModel(layout, channels);
      await push(name, bytes);
      const spec = { width: 16, height: 16, fit: 'fill' as const, channels: channels === 1 ? ('gray' as const) : ('rgb' as const) };
      // The model's own input as the definition lays it out: pixels / 255, HWC kept (NHWC) or one plane (gray).
      const tensorOf = (pixels: Uint8Array) => new ort.Tensor('float32', Float32Array.from(pixels, (p) => p / 255), layout === 'NHWC' ? [1, 16, 16, 3] : [1, 1, 16, 16]);
      const refRows = [];
      for (let i = 0; i < 40; i++) {
        const pixels = raw(channels, 0.5 + i * 0.11);
        const probs = (await direct(bytes, { image: tensorOf(pixels) }, true)).probs;
        const best = probs.indexOf(Math.max(...probs));
        refRows.push({ ...(await imageFeatureRowOf(spec, await png(pixels, channels))), outputs: { predictedClass: best, confidence: probs[best] } });
      }
      await setReference(`${name}@1`, refRows, 4);
      await ship(`${name}@1`, {
        name,
        preprocess: { type: 'image', input: 'image', width: 16, height: 16, layout, channels: spec.channels, scale: 255, mean: new Array(channels).fill(0), std: new Array(channels).fill(1) },
        postprocess: { task: 'classification', labels: ['w', 'x', 'y', 'z'], topK: 2 },
      });
      for (const seed of [1.7, 2.9, 5.3]) {
        const pixels = raw(channels, seed);
        const want = (await direct(bytes, { image: tensorOf(pixels) }, true)).probs;
        const r = await predict(await png(pixels, channels), { 'content-type': 'image/png' });
        close(r.outputs.probs.data, want, 1e-5, `${name} seed ${seed}`);
        assert.equal(r.predictions.length, 2);
        assert.equal(r.predictions[0].index, want.indexOf(Math.max(...want)));
      }
      await statsReach(`${name}@1`, 3);
    }
  });

  test('float16 in and out: request numbers converted to float16, answers in numbers, smoke vectors and statistics work', async () => {
    const bytes = fp16Model();
    await push('half', bytes);
    const v = await cli('models', 'show', 'half@1');
    assert.deepEqual(v.inputs, [{ name: 'x', dtype: 'float16', shape: ['N', 8] }]);
    assert.deepEqual(v.facts.weightTypes, { float16: 27 });
    const refRows = [];
    for (let i = 0; i < 60; i++) {
      const x = rowsOf(1, 8, 0.3 + i * 0.05)[0];
      const y = (await direct(bytes, { x: new ort.Tensor('float16', toFloat16Bits(x), [1, 8]) }, true)).y;
      refRows.push({ x_rms: Math.sqrt(fromFloat16Bits(toFloat16Bits(x)).reduce((a, b) => a + b * b, 0) / 8), outputs: { value: y[0] } });
    }
    await setReference('half@1', refRows);
    const built = await ship('half@1', {
      name: 'half',
      preprocess: { type: 'tensor', dims: { N: 1 }, summaries: { x_rms: { input: 'x', stat: 'rms' } } },
      postprocess: { task: 'regression', output: 'y', labels: ['u', 'v', 'w'] },
    });
    // Smoke vectors are recorded as numbers (float16 values), not bit patterns.
    const smoke = built.definition.smoke.vectors[0];
    assert.ok(smoke.expected.y.data.every((d: number) => Math.abs(d) <= 1), JSON.stringify(smoke.expected.y.data));
    for (const seed of [0.9, 1.9, 2.9]) {
      const x = rowsOf(2, 8, seed).flat();
      const want = (await direct(bytes, { x: new ort.Tensor('float16', toFloat16Bits(x), [2, 8]) }, true)).y;
      const r = await predict({ inputs: { x: { dims: [2, 8], data: x } } });
      assert.deepEqual(r.outputs.y.dims, [2, 3]);
      close(r.outputs.y.data, want, 0, `fp16 seed ${seed}`);
      assert.deepEqual(r.predictions[1].map((p: { label: string }) => p.label), ['u', 'v', 'w']);
    }
    await statsReach('half@1', 3);
  });

  test('control flow: an If whose branches hold their own weights — facts, bundle, deploy and optimize all see them', async () => {
    const bytes = ifModel();
    await push('branchy', bytes);
    const v = await cli('models', 'show', 'branchy@1');
    assert.equal(v.paramCount, 1 + 2 * (24 + 3), 'the weights inside both branches are counted');
    const refRows = [];
    for (let i = 0; i < 60; i++) {
      const x = rowsOf(1, 8, 0.2 + i * 0.07)[0].map((e) => (i % 2 ? -Math.abs(e) : Math.abs(e)));
      const y = (await direct(bytes, { x: new ort.Tensor('float32', Float32Array.from(x), [1, 8]) })).y;
      const best = y.indexOf(Math.max(...y));
      refRows.push({ x_mean: x.reduce((a, b) => a + b, 0) / 8, outputs: { predictedClass: best, confidence: Math.min(1, Math.max(0, y[best])) } });
    }
    await setReference('branchy@1', refRows, 3);
    await ship('branchy@1', {
      name: 'branchy',
      preprocess: { type: 'tensor', dims: { N: 1 }, summaries: { x_mean: { input: 'x', stat: 'mean' } } },
      postprocess: { task: 'classification', labels: ['p', 'q', 'r'] },
    });
    const positive = rowsOf(1, 8, 1.1)[0].map(Math.abs);
    const negative = positive.map((e) => -e);
    const answers = [];
    for (const x of [positive, negative]) {
      const want = (await direct(bytes, { x: new ort.Tensor('float32', Float32Array.from(x), [1, 8]) })).y;
      const r = await predict({ inputs: { x: { dims: [1, 8], data: x } } });
      close(r.outputs.y.data, want, 1e-5, 'If model');
      answers.push(r.outputs.y.data);
    }
    assert.notDeepEqual(answers[0], answers[1].map((e: number) => -e), 'the branches differ (not the same weights mirrored)');
    await statsReach('branchy@1', 2);

    // The optimizer quantizes the weights inside the branches.
    const opt = await runCli(['--json', 'optimize', 'branchy@1', '--quantize', 'int8'], env);
    const out = JSON.parse(opt.stdout || '{}');
    assert.ok(opt.code === 0 || /rejected|REJECTED/.test(opt.stderr), opt.stderr);
    const variant = await cli('models', 'show', out.version?.ref ?? 'branchy@2');
    assert.equal(variant.facts.weightTypes.int8, 48, `both branches' [8, 3] weights are int8: ${JSON.stringify(variant.facts.weightTypes)}`);
    assert.equal(variant.facts.quantization.format, 'QDQ');
  });

  test('external weights: a push without the side file is refused naming it (the registry takes self-contained files)', async () => {
    const r = await runCli(['models', 'push', await writeModel('external', externalDataModel()), '--name', 'external'], env);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /external data file "weights\.bin", which was not pushed/);
    assert.match(r.stderr, /save_as_external_data=False/);
    const versions = await cp.api('GET', '/api/v1/models/external/versions');
    assert.equal(versions.status, 404, 'nothing registered');
  });

  async function writeModel(name: string, bytes: Uint8Array): Promise<string> {
    const file = path.join(dir, `${name}.onnx`);
    await writeFile(file, bytes);
    return file;
  }
});

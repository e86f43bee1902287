// Optimization without labels on what devices saw: with no `--eval`, `flotilla optimize` compares the
// int8 variant with its parent on the samples a real agent captured for the model (capture turned on
// by signed settings), once there are at least 16 usable ones; with fewer it falls back to inputs
// generated from the declared shape and says how many captured samples it found. A sample the model
// cannot take (a non-numeric feature) is counted and left out. The report's output error equals an
// independent onnxruntime run on exactly the captured rows (and, for an image model, on the captured
// PNGs normalised by hand), so those are what it measured on.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { api, waitFor } from '../agent/testing/harness.ts';
import { runCli } from './helpers/cli.ts';
import { gemmModel } from './helpers/models.ts';
import { startPlaneWithAgent, type PlaneWithAgent } from './helpers/plane-with-agent.ts';
import { encodeModel, floatTensor, node, valueInfo } from '../server/onnx/build.ts';

const BUNDLES = path.join(import.meta.dirname, '..', 'firmware-bundles');
const BUNDLE_DEF = path.join(BUNDLES, 'tabular-demo');
const FEATURES = ['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7'];
// Distinct rows around the origin, so the three classes all occur.
const row = (i: number) => Object.fromEntries(FEATURES.map((f, j) => [f, Math.round(Math.sin(i * 1.7 + j * 0.9) * 300) / 100]));

describe('optimize without labels on captured device samples', () => {
  let lab: PlaneWithAgent;
  let secret: string;

  const samples = async () => (await lab.cp.api('GET', '/api/v1/samples?model=tabular-demo&limit=1000')).body.samples as Array<{ inputs: Record<string, number | string> }>;
  const predict = async (from: number, n: number) => {
    for (let i = from; i < from + n; i++) {
      const r = await api(lab.port, 'POST', '/v1/predict', { features: row(i) });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
  };
  const optimize = async () => {
    // The report is printed whether or not the variant met the budgets; the inputs are what is tested here.
    const r = await runCli(['--json', 'optimize', 'tabular-demo@1', '--quantize', 'int8'], lab.env);
    assert.ok(r.stdout, r.stderr);
    return JSON.parse(r.stdout) as { version: { ref: string; sha256: string }; report: Record<string, any> };
  };

  before(async () => {
    lab = await startPlaneWithAgent({ site: 'lab', prefix: 'flotilla-opt-captured-' });
    const { cli, dir } = lab;
    secret = JSON.parse(await readFile(path.join(dir, 'agent', 'identity.json'), 'utf8')).mqtt.password;
    await writeFile(path.join(dir, 'v1.onnx'), gemmModel({ seed: 1 }));
    await cli('models', 'push', path.join(dir, 'v1.onnx'), '--name', 'tabular-demo');
    await cli('bundles', 'build', 'tabular-demo@1', '--def', BUNDLE_DEF);
    await cli('cohorts', 'create', 'lab', '--selector', 'site=lab');
    await cli('deploy', 'tabular-demo@1', '--cohort', 'lab');
    await waitFor(async () => (await lab.cp.api('GET', `/api/v1/devices/${lab.deviceId}`)).body.updateState === 'active', 'agent active on v1', 60_000);
    await cli('settings', 'set', '--cohort', 'lab', '--capture', 'on', '--capture-rate', '600', '--capture-batch', '5');
    await waitFor(async () => (await api(lab.port, 'GET', '/v1/status')).body.sampleCapture.enabled, 'agent adopted capture', 20_000);
  });
  after(() => lab?.stop());

  test('no captured samples: generated inputs, and no captured count', async () => {
    const { report } = await optimize();
    assert.equal(report.inputs, 'generated');
    assert.equal(report.samples, 256);
    assert.equal(report.captured, undefined);
  });

  test('10 captured samples are too few: generated inputs, and the report counts what it found', async () => {
    await predict(0, 10);
    await waitFor(async () => ((await samples()).length === 10 ? true : null), '10 samples uploaded (2 batches of 5)', 20_000);
    const { report } = await optimize();
    assert.equal(report.inputs, 'generated');
    assert.equal(report.samples, 256);
    assert.deepEqual(report.captured, { usable: 10, unusable: 0, minimum: 16 });
    const human = await runCli(['optimize', 'tabular-demo@1', '--quantize', 'int8'], lab.env);
    assert.match(human.stdout, /captured samples: 10 usable \(0 unusable\), fewer than the 16 needed: compared on generated inputs/);
  });

  test('20 usable captured samples (one unusable left out): the variant is compared on exactly them', async () => {
    await predict(10, 10);
    await waitFor(async () => ((await samples()).length === 20 ? true : null), '20 samples uploaded', 20_000);
    // A sample the model cannot take: a device may send a string where the model reads a number.
    const bad = { v: 1, deviceId: lab.deviceId, bundleId: 'b', model: { name: 'tabular-demo', version: 1 }, samples: [{ sampleId: randomUUID(), at: new Date().toISOString(), inputs: { ...row(99), f3: 'n/a' }, outputs: {} }] };
    const up = await lab.cp.api('POST', `/api/v1/devices/${lab.deviceId}/samples`, { token: null, json: bad, headers: { authorization: 'Basic ' + Buffer.from(`${lab.deviceId}:${secret}`).toString('base64') } });
    assert.equal(up.status, 200, JSON.stringify(up.body));

    const { version, report } = await optimize();
    assert.equal(report.inputs, 'captured');
    assert.equal(report.dataset, 'device samples captured for tabular-demo (newest)');
    assert.equal(report.samples, 20);
    assert.equal(report.metrics.n, 20);
    assert.deepEqual(report.captured, { usable: 20, unusable: 1, minimum: 16 });
    assert.equal(report.metrics.accuracy, undefined, 'no labels: no task metric');
    const stored = (await lab.cp.api('GET', `/api/v1/models/tabular-demo/versions/${version.ref.split('@')[1]}`)).body;
    assert.equal(stored.evaluation.inputs, 'captured');
    assert.equal(stored.recipe.dataset, 'device samples captured for tabular-demo (newest)');

    // Independent run on the 20 rows the agent captured: the same largest output difference.
    const rows = (await samples()).filter((s) => FEATURES.every((f) => typeof s.inputs[f] === 'number'));
    assert.equal(rows.length, 20);
    const x = Float32Array.from(rows.flatMap((s) => FEATURES.map((f) => s.inputs[f] as number)));
    const download = async (sha: string) => new Uint8Array(await (await fetch(`${lab.cp.url}/artifacts/sha256/${sha}`, { headers: { authorization: `Bearer ${lab.cp.adminToken}` } })).arrayBuffer());
    const logits = async (sha: string) => {
      const s = await ort.InferenceSession.create(await download(sha), stored.recipe.sessionOptions);
      const out = await s.run({ features: new ort.Tensor('float32', x, [rows.length, FEATURES.length]) });
      await s.release();
      return out.logits.data as Float32Array;
    };
    const parent = await logits((await lab.cp.api('GET', '/api/v1/models/tabular-demo/versions/1')).body.sha256);
    const child = await logits(stored.sha256);
    let maxDiff = 0;
    for (let i = 0; i < parent.length; i++) maxDiff = Math.max(maxDiff, Math.abs(parent[i] - child[i]));
    assert.ok(maxDiff > 0, 'int8 changes the outputs a little');
    assert.ok(Math.abs(report.comparison.maxAbsOutputDiff - maxDiff) <= 1e-5 * Math.max(1, maxDiff), `report ${report.comparison.maxAbsOutputDiff} vs independent ${maxDiff}`);
  });
});

/** An image classifier with weights enough to quantize: mean colour → 16 hidden → 3 logits. */
function imageModel(): Uint8Array {
  const w = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin((i + 1) * seed) * 0.8);
  return encodeModel({
    inputs: [valueInfo('image', 'float32', ['batch', 3, 32, 32])],
    outputs: [valueInfo('logits', 'float32', ['batch', 3])],
    initializers: [floatTensor('W1', [3, 16], w(48, 1.3)), floatTensor('b1', [16], w(16, 0.7)), floatTensor('W2', [16, 3], w(48, 2.1)), floatTensor('b2', [3], [0, 0.1, -0.1])],
    nodes: [
      node('ReduceMean', ['image'], ['pooled'], { axes: [2, 3], keepdims: 0 }),
      node('Gemm', ['pooled', 'W1', 'b1'], ['h']),
      node('Relu', ['h'], ['hr']),
      node('Gemm', ['hr', 'W2', 'b2'], ['logits']),
    ],
  });
}

describe('optimize without labels on captured image samples', () => {
  let cams: PlaneWithAgent;
  const S = 32;
  // 32×32 PNGs (no resize), so the model's input is known exactly: (v / 255 − 0.5) / 0.5, NCHW.
  const pixels = (k: number) => Uint8Array.from({ length: S * S * 3 }, (_, i) => (i * 7 + k * 53 + (i % 3) * 31) % 256);
  const png = (k: number) => sharp(Buffer.from(pixels(k)), { raw: { width: S, height: S, channels: 3 } }).png().toBuffer();

  before(async () => {
    cams = await startPlaneWithAgent({ site: 'cam', prefix: 'flotilla-opt-captured-img-' });
    const { cli, dir } = cams;
    await writeFile(path.join(dir, 'cam.onnx'), imageModel());
    await cli('models', 'push', path.join(dir, 'cam.onnx'), '--name', 'cam');
    await cli('bundles', 'build', 'cam@1', '--def', path.join(BUNDLES, 'image-demo'));
    await cli('cohorts', 'create', 'cams', '--selector', 'site=cam');
    await cli('deploy', 'cam@1', '--cohort', 'cams');
    await waitFor(async () => (await cams.cp.api('GET', `/api/v1/devices/${cams.deviceId}`)).body.updateState === 'active', 'agent active on cam@1', 60_000);
    await cli('settings', 'set', '--cohort', 'cams', '--capture', 'on', '--capture-rate', '600', '--capture-batch', '8');
    await waitFor(async () => (await api(cams.port, 'GET', '/v1/status')).body.sampleCapture.enabled, 'agent adopted capture', 20_000);
  });
  after(() => cams?.stop());

  test('16 captured PNGs: the variant is compared on exactly them', async () => {
    const N = 16;
    for (let k = 0; k < N; k++) {
      const r = await api(cams.port, 'POST', '/v1/predict', new Uint8Array(await png(k)), { 'content-type': 'image/png' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    await waitFor(async () => ((await cams.cp.api('GET', '/api/v1/samples?model=cam&limit=100')).body.samples.length === N ? true : null), '16 image samples uploaded (2 batches of 8)', 20_000);
    const r = await runCli(['--json', 'optimize', 'cam@1', '--quantize', 'int8'], cams.env);
    assert.ok(r.stdout, r.stderr);
    const { version, report } = JSON.parse(r.stdout);
    assert.equal(report.inputs, 'captured');
    assert.equal(report.dataset, 'device samples captured for cam (newest)');
    assert.equal(report.samples, N);
    assert.deepEqual(report.captured, { usable: N, unusable: 0, minimum: 16 });

    const x = new Float32Array(N * 3 * S * S);
    for (let k = 0; k < N; k++) {
      const p = pixels(k);
      for (let i = 0; i < S * S; i++) for (let c = 0; c < 3; c++) x[k * 3 * S * S + c * S * S + i] = (p[i * 3 + c] / 255 - 0.5) / 0.5;
    }
    const stored = (await cams.cp.api('GET', `/api/v1/models/cam/versions/${version.ref.split('@')[1]}`)).body;
    const download = async (sha: string) => new Uint8Array(await (await fetch(`${cams.cp.url}/artifacts/sha256/${sha}`, { headers: { authorization: `Bearer ${cams.cp.adminToken}` } })).arrayBuffer());
    const logits = async (sha: string) => {
      const s = await ort.InferenceSession.create(await download(sha), stored.recipe.sessionOptions);
      const out = await s.run({ image: new ort.Tensor('float32', x, [N, 3, S, S]) });
      await s.release();
      return out.logits.data as Float32Array;
    };
    const parent = await logits((await cams.cp.api('GET', '/api/v1/models/cam/versions/1')).body.sha256);
    const child = await logits(stored.sha256);
    let maxDiff = 0;
    for (let i = 0; i < parent.length; i++) maxDiff = Math.max(maxDiff, Math.abs(parent[i] - child[i]));
    assert.ok(maxDiff > 0, 'int8 changes the outputs a little');
    assert.ok(Math.abs(report.comparison.maxAbsOutputDiff - maxDiff) <= 1e-5 * Math.max(1, maxDiff), `report ${report.comparison.maxAbsOutputDiff} vs independent ${maxDiff}`);
  });
});

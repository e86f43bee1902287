// One answer shape for every input kind: tabular features, JSON tensors, image bytes / base64 and WAV
// audio all answer `results: [{ predictions }]` — one entry per row, image, tensor batch item or
// audio frame — with `batch`, `outputs`, `bundle` and timings, through the real local API and a real
// onnxruntime session. The examples in agent/README.md ("Local API") are these requests.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import sharp from 'sharp';
import { BundleDefinition } from '../firmware-bundles/definition.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { imageModel } from '../firmware-bundles/testing/fixtures.ts';
import { gemmModel } from '../test/helpers/models.ts';
import { statefulVadModel } from '../server/onnx/vad-shaped-model.ts';
import { opset9Cnn } from '../test/helpers/odd-models.ts';
import { EngineRuntime } from './engine-adapter.ts';
import { LocalApi } from './local-api.ts';
import { encodeWav } from './runtime/wav.ts';
import { api, REPO } from './testing/harness.ts';

const logger = pino({ level: 'silent' });
const ROW = Object.fromEntries([0.5, -1, 2, 0.1, 0, 1.5, -0.3, 0.8].map((v, i) => [`f${i}`, v]));
const KEYS = ['batch', 'bundle', 'latencyMs', 'outputs', 'predictions', 'results', 'runtimeMs'];

/** The shape every successful answer has; returns the per-item predictions. */
function assertShape(body: any, items: number, batch: boolean): any[][] {
  assert.deepEqual(Object.keys(body).sort(), KEYS);
  assert.equal(body.batch, batch);
  assert.ok(Array.isArray(body.results));
  assert.equal(body.results.length, items);
  for (const r of body.results) {
    assert.deepEqual(Object.keys(r), ['predictions']);
    assert.ok(Array.isArray(r.predictions));
  }
  // `predictions` keeps its old form for existing clients: the one item's list, or every item's.
  assert.deepEqual(body.predictions, batch ? body.results.map((r: any) => r.predictions) : body.results[0].predictions);
  return body.results.map((r: any) => r.predictions);
}

describe('local API: one response shape for every input kind', () => {
  let dir: string;
  let runtime: EngineRuntime;
  let local: LocalApi;
  let counter = 0;

  async function activate(model: Uint8Array, definition: BundleDefinition, name: string) {
    const file = path.join(dir, `${name}.onnx`);
    await writeFile(file, model);
    const info = { id: `b${++counter}`, name, model: { name, version: 1 }, counter, modelSha256: 'x' };
    await runtime.activate(await runtime.stage(file, definition, info));
  }
  const demo = async (name: string) => {
    const { definition, labels } = await loadBundleDefinition(path.join(REPO, 'firmware-bundles', name, 'bundle.json'));
    return labels ? { ...definition, postprocess: { ...definition.postprocess, labels } } : definition;
  };

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-local-shapes-'));
    runtime = new EngineRuntime({ logger });
    await runtime.start();
    local = new LocalApi({ host: '127.0.0.1', port: 0, runtime, logger, status: () => ({}) });
    await local.start();
  });
  after(async () => {
    await local.stop();
    await runtime.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('tabular: one row and a batch of rows', async () => {
    await activate(gemmModel({ seed: 1 }), await demo('tabular-demo'), 'tabular-demo');
    const one = await api(local.port, 'POST', '/v1/predict', { features: ROW });
    assert.equal(one.status, 200, JSON.stringify(one.body));
    const [p] = assertShape(one.body, 1, false);
    assert.equal(p.length, 3);
    assert.deepEqual(Object.keys(p[0]).sort(), ['index', 'label', 'score']);
    const two = await api(local.port, 'POST', '/v1/predict', { features: [ROW, ROW] });
    assert.equal(two.status, 200);
    const rows = assertShape(two.body, 2, true);
    assert.deepEqual(rows[0], rows[1]);
  });

  it('image: bytes, base64, and a list of base64 images', async () => {
    await activate(imageModel(), await demo('image-demo'), 'image-demo');
    const png = await sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 200, g: 30, b: 90 } } }).png().toBuffer();
    const bytes = await api(local.port, 'POST', '/v1/predict', new Uint8Array(png), { 'content-type': 'image/png' });
    assert.equal(bytes.status, 200, JSON.stringify(bytes.body));
    const [p] = assertShape(bytes.body, 1, false);
    assert.ok(['circle', 'square', 'triangle'].includes(p[0].label), JSON.stringify(p));
    const b64 = await api(local.port, 'POST', '/v1/predict', { image: png.toString('base64') });
    assert.deepEqual(assertShape(b64.body, 1, false), [p]);
    const list = await api(local.port, 'POST', '/v1/predict', { image: [png.toString('base64'), png.toString('base64')] });
    assert.deepEqual(assertShape(list.body, 2, true), [p, p]);
  });

  it('tensor: JSON tensors to a tensor bundle, and to a tabular one', async () => {
    const def = BundleDefinition.parse({ name: 'cnn', preprocess: { type: 'tensor', dims: { batch: 1 } }, postprocess: { task: 'classification', topK: 2 } });
    await activate(opset9Cnn(), def, 'cnn');
    const image = Array.from({ length: 3 * 16 * 16 }, (_, i) => Math.fround(Math.cos(i * 0.37)));
    const one = await api(local.port, 'POST', '/v1/predict', { inputs: { image: { dims: [1, 3, 16, 16], data: image } } });
    assert.equal(one.status, 200, JSON.stringify(one.body));
    const [p] = assertShape(one.body, 1, false);
    assert.equal(p.length, 2);
    // `{inputs}` to a tabular bundle: the tensor's rows are the items.
    await activate(gemmModel({ seed: 1 }), await demo('tabular-demo'), 'tabular-demo');
    const row = Object.values(ROW);
    const t1 = await api(local.port, 'POST', '/v1/predict', { inputs: { features: { dims: [1, 8], data: row } } });
    assert.equal(t1.status, 200, JSON.stringify(t1.body));
    const viaFeatures = await api(local.port, 'POST', '/v1/predict', { features: ROW });
    assert.deepEqual(t1.body.results, viaFeatures.body.results, 'the same row as features or as a tensor: the same results');
    const t2 = await api(local.port, 'POST', '/v1/predict', { inputs: { features: { dims: [2, 8], data: [...row, ...row] } } });
    assert.equal(t2.status, 200, JSON.stringify(t2.body));
    assert.equal(t2.body.results.length, 2);
    assert.deepEqual(t2.body.results[0], viaFeatures.body.results[0]);
  });

  it('audio: a WAV clip answers one result per frame', async () => {
    await activate(statefulVadModel(), await demo('vad-demo'), 'vad-demo');
    const samples = Array.from({ length: 512 * 2 + 100 }, (_, i) => 0.3 * Math.sin(i / 5));
    const r = await api(local.port, 'POST', '/v1/predict', encodeWav(samples, 16000, true), { 'content-type': 'audio/wav', 'x-session-id': 'mic-1' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const frames = assertShape(r.body, 3, true);
    for (const f of frames) assert.ok(['silence', 'speech'].includes(f[0].label), JSON.stringify(f));
    // One frame of JSON tensors is a single item, same shape.
    const one = await api(local.port, 'POST', '/v1/predict', { inputs: { input: { dims: [1, 512], data: samples.slice(0, 512) } }, session: 'mic-2' });
    assert.equal(one.status, 200, JSON.stringify(one.body));
    assertShape(one.body, 1, false);
  });
});

// Continuous training with the built-in `image-demo-cnn` trainer on a real control plane: an image
// dataset (synthetic shapes, pushed as a tar of PNGs + labels.csv) fine-tunes a registered CNN in a
// worker; the result is v2 with lineage and a held-out accuracy, and loads in onnxruntime-node.
// v2's reference profile comes from the snapshot's images (preprocessed as the parent's bundle says).
// A tabular dataset handed to the image trainer fails the job with a clear error.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { writeTar, type TarEntry } from '../server/datasets/tar.ts';
import { exportCnnOnnx, trainCnn } from '../server/training/cnn.ts';
import { IMAGE_CHANNELS, IMAGE_SIZE, makeShapes, SHAPE_LABELS, sliceShapes, type ShapeDataset } from '../server/training/synthetic-shapes.ts';
import { makeTabularRows, tabularToCsv } from '../server/training/synthetic-tabular.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { jobHelpers } from './helpers/jobs.ts';

const PIXELS = IMAGE_SIZE * IMAGE_SIZE * IMAGE_CHANNELS;

/** The shapes as a tar of PNGs plus labels.csv (file,label), what `flotilla datasets push <folder>` sends. */
async function shapesTar(data: ShapeDataset): Promise<Uint8Array> {
  const entries: TarEntry[] = [];
  const lines = ['file,label'];
  for (let i = 0; i < data.n; i++) {
    const file = `${String(i).padStart(5, '0')}.png`;
    const raw = data.pixels.subarray(i * PIXELS, (i + 1) * PIXELS);
    const png = await sharp(raw, { raw: { width: IMAGE_SIZE, height: IMAGE_SIZE, channels: IMAGE_CHANNELS } }).png().toBuffer();
    entries.push({ path: file, data: new Uint8Array(png) });
    lines.push(`${file},${SHAPE_LABELS[data.labels[i]]}`);
  }
  entries.push({ path: 'labels.csv', data: new TextEncoder().encode(lines.join('\n') + '\n') });
  return writeTar(entries);
}

describe('retraining jobs: built-in image-demo-cnn trainer', () => {
  let cp: TestPlane;
  let shapes: ShapeDataset;

  const { api, push, setPolicy, startJob, waitJob, logs } = jobHelpers(() => cp);

  before(async () => {
    cp = await startControlPlane({ schedulerTickMs: 100, jobRetryBackoffMs: 100, schedulerLeaseTtlMs: 1000 });
    shapes = await makeShapes({ n: 150, seed: 21 });
    const r = await cp.api('POST', '/api/v1/datasets/shapes/versions?format=tar', { body: (await shapesTar(shapes)) as unknown as BodyInit, headers: { 'content-type': 'application/x-tar' } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.version.kind, 'images');
    assert.equal(r.body.version.rows, 150);
    const csv = tabularToCsv(makeTabularRows({ n: 60, seed: 7 }));
    const t = await cp.api('POST', '/api/v1/datasets/sensors/versions?format=csv', { body: csv, headers: { 'content-type': 'text/csv' } });
    assert.equal(t.status, 201, JSON.stringify(t.body));
  });
  after(async () => {
    await cp?.stop();
  });

  test('fine-tunes the parent CNN on an image snapshot: v2 with lineage, held-out accuracy, a loadable ONNX', async () => {
    // A briefly trained parent: the trainer starts from its weights.
    await push('cnn', exportCnnOnnx(trainCnn(sliceShapes(shapes, 0, 60), { seed: 1, epochs: 1 })));
    // A bundle of the parent says how devices preprocess images: v2's reference comes from the snapshot's images.
    const definition = JSON.parse(await readFile(path.join(import.meta.dirname, '..', 'firmware-bundles', 'image-demo', 'bundle.json'), 'utf8'));
    const bundle = await api('POST', '/api/v1/bundles', { model: 'cnn@1', definition, labels: [...SHAPE_LABELS] });
    assert.equal(bundle.status, 201, JSON.stringify(bundle.body));
    await setPolicy('cnn', {
      trainer: { kind: 'builtin', model: 'image-demo-cnn', epochs: 2, fineTune: true, seed: 1 },
      data: { dataset: 'shapes' },
      after: { evaluate: false },
      maxAttempts: 1,
    });
    const id = await startJob('cnn');
    const job = await waitJob(id, ['succeeded', 'failed']);
    assert.equal(job.status, 'succeeded', job.error);
    assert.equal(job.result, 'cnn@2');
    assert.equal(job.parent, 'cnn@1');
    assert.equal(job.dataset, 'shapes@1');
    assert.equal(job.metrics.samples, 128, '85 % of 150 images train');
    assert.equal(job.metrics.heldOut, 22, 'the other 15 % are held out');
    assert.equal(typeof job.metrics.accuracy, 'number');
    assert.ok(job.metrics.accuracy >= 0 && job.metrics.accuracy <= 1, `held-out accuracy ${job.metrics.accuracy}`);

    const v2 = (await api('GET', '/api/v1/models/cnn/versions/2')).body;
    assert.equal(v2.parent, 'cnn@1');
    assert.equal(v2.lineage.jobId, id);
    assert.equal(v2.lineage.datasetVersion, 'shapes@1');
    assert.equal(v2.lineage.trainer.kind, 'builtin');
    assert.equal(v2.lineage.params.model, 'image-demo-cnn');
    assert.equal(v2.lineage.params.fineTune, true);
    assert.equal(v2.lineage.params.epochs, 2);
    assert.ok(v2.lineage.metrics.heldOut > 0);

    const lines = await logs(id);
    const text = JSON.stringify(lines.map((l) => l.line));
    assert.ok(lines.some((l) => l.stream === 'runner' && /training image-demo-cnn on 128 sample\(s\), fine-tuning the parent/.test(l.line)), text);
    assert.ok(lines.some((l) => l.stream === 'stdout' && /^epoch 2 loss/.test(l.line)), text);
    assert.ok(lines.some((l) => /held-out accuracy [\d.]+ on 22 sample\(s\)/.test(l.line)), text);
    assert.ok(lines.some((l) => /reference profile of cnn@2 from shapes@1: 150 images, 14 image features \(32×32 rgb\)/.test(l.line)), text);
    const reference = (await api('GET', '/api/v1/models/cnn/versions/2/reference')).body;
    assert.equal(reference.rows, 150);
    assert.equal(reference.source, 'dataset shapes@1');
    assert.deepEqual(reference.features.find((f: { name: string }) => f.name === 'width'), { name: 'width', kind: 'numeric', count: 150, nulls: 0, bins: 3, min: 32, max: 32, mean: 32, std: 0 });

    const res = await fetch(`${cp.url}/artifacts/sha256/${v2.sha256}`, { headers: { authorization: `Bearer ${cp.adminToken}` } });
    assert.equal(res.status, 200);
    const session = await ort.InferenceSession.create(new Uint8Array(await res.arrayBuffer()));
    try {
      const input = new ort.Tensor('float32', new Float32Array(PIXELS).fill(0.1), [1, IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_SIZE]);
      const out = await session.run({ [session.inputNames[0]]: input });
      const logits = out[session.outputNames[0]];
      assert.deepEqual(logits.dims, [1, 3]);
      assert.ok(Array.from(logits.data as Float32Array).every(Number.isFinite));
    } finally {
      await session.release();
    }
  });

  test('a tabular dataset given to image-demo-cnn fails the job with a clear error', async () => {
    await push('cnn-tab', exportCnnOnnx(trainCnn(sliceShapes(shapes, 0, 20), { seed: 2, epochs: 1 })));
    await setPolicy('cnn-tab', {
      trainer: { kind: 'builtin', model: 'image-demo-cnn', epochs: 1, fineTune: true, seed: 1 },
      data: { dataset: 'sensors' },
      after: { evaluate: false },
      maxAttempts: 1,
    });
    const job = await waitJob(await startJob('cnn-tab'), ['succeeded', 'failed']);
    assert.equal(job.status, 'failed');
    assert.match(job.error, /image-demo-cnn trains on an image dataset/);
    assert.equal(job.result ?? null, null, 'nothing registered');
    assert.equal((await api('GET', '/api/v1/models/cnn-tab/versions/2')).status, 404);
  });
});

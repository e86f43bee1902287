// Image drift that sees what matters, end to end with a real agent: a fixed camera whose pictures have
// an "up" (a shape above a dark floor), an image model trained with the project's CNN trainer to read
// which way up its input is (like a text-direction model), served through an `image` bundle built
// from the image demo's definition. The reference comes from upright pictures (the server runs the
// model over them for the output distribution). Normal traffic — other upright pictures — drifts on
// nothing; a flood of the same scenes from a camera mounted upside down (brightness, contrast,
// colour and sharpness unchanged: a vertical flip moves no pixel value) is flagged on the structure
// features AND on the predicted class.
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eq, sql } from 'drizzle-orm';
import sharp from 'sharp';
import { api, waitFor } from '../agent/testing/harness.ts';
import { statsWindows } from '../server/db/schema.ts';
import { IMAGE_CHANNELS, IMAGE_SIZE, type ShapeDataset } from '../server/training/synthetic-shapes.ts';
import { cameraScenes, ORIENTATIONS, orientationModel } from './helpers/camera-scenes.ts';
import { runCli } from './helpers/cli.ts';
import { startPlaneWithAgent, type PlaneWithAgent } from './helpers/plane-with-agent.ts';

const DEMO_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'image-demo', 'bundle.json');
const MODEL = 'orient';
const REFERENCE_ROWS = 300;
const PER = IMAGE_SIZE * IMAGE_SIZE * IMAGE_CHANNELS;

type FeatureResult = { feature: string; drifted: boolean; score: number | null; pValue?: number; verdict: string };
type DriftReport = { rows: number; features: FeatureResult[]; outputs: FeatureResult[]; dataset: { drifted: boolean; driftedCount: number } };

const png = (d: ShapeDataset, i: number) =>
  sharp(d.pixels.subarray(i * PER, (i + 1) * PER), { raw: { width: IMAGE_SIZE, height: IMAGE_SIZE, channels: IMAGE_CHANNELS } }).png().toBuffer();

describe('end to end: a flood of upside-down images is flagged by input and prediction drift', { timeout: 240_000 }, () => {
  let p: PlaneWithAgent;
  const cli = async (...args: string[]) => {
    const r = await runCli(['--json', ...args], p.env);
    assert.equal(r.code, 0, `flotilla ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const rowsOnServer = async () =>
    Number((await p.cp.plane.db.select({ n: sql<number>`coalesce(sum(${statsWindows.rows}), 0)` }).from(statsWindows).where(eq(statsWindows.deviceId, p.deviceId)))[0].n);
  /** Sends every picture to the agent's local API (4 at a time) and waits until all are in stats windows on the server. */
  const serve = async (d: ShapeDataset, expectRows: number) => {
    for (let i = 0; i < d.n; i += 4) {
      await Promise.all(
        Array.from({ length: Math.min(4, d.n - i) }, async (_, k) => {
          const r = await api(p.port, 'POST', '/v1/predict', new Uint8Array(await png(d, i + k)), { 'content-type': 'image/png' });
          assert.equal(r.status, 200, JSON.stringify(r.body));
        }),
      );
    }
    await waitFor(async () => (await rowsOnServer()) === expectRows, `${expectRows} rows of statistics on the server`, 30_000);
  };
  const drift = async (): Promise<DriftReport> => cli('drift', `${MODEL}@1`, '--window', '1h');
  const named = (fs: FeatureResult[], drifted: boolean) => fs.filter((f) => f.drifted === drifted).map((f) => f.feature).sort();

  before(async () => {
    p = await startPlaneWithAgent({ site: 'cam', prefix: 'flotilla-orient-drift-' });
    await writeFile(path.join(p.dir, 'orient.onnx'), await orientationModel());
    await cli('models', 'push', path.join(p.dir, 'orient.onnx'), '--name', MODEL);
    // The image demo's definition (32×32, NCHW, (x/255 − 0.5)/0.5), with this model's labels.
    const def = path.join(p.dir, 'def');
    await mkdir(def);
    await writeFile(path.join(def, 'bundle.json'), JSON.stringify({ ...JSON.parse(await readFile(DEMO_DEF, 'utf8')), name: MODEL }));
    await writeFile(path.join(def, 'labels.txt'), ORIENTATIONS.join('\n') + '\n');
    // The reference: upright pictures from the camera, as an image dataset.
    const refScenes = await cameraScenes(REFERENCE_ROWS, 2, () => 'upright');
    const folder = path.join(p.dir, 'reference');
    await mkdir(folder);
    const lines = ['file,label'];
    for (let i = 0; i < refScenes.n; i++) {
      await writeFile(path.join(folder, `${i}.png`), await png(refScenes, i));
      lines.push(`${i}.png,upright`);
    }
    await writeFile(path.join(folder, 'labels.csv'), lines.join('\n') + '\n');
    await cli('datasets', 'push', folder, '--name', 'camera-upright');
    await cli('bundles', 'build', `${MODEL}@1`, '--def', def); // the reference is computed with this preprocessing
    const profile = await cli('models', 'reference', `${MODEL}@1`, '--dataset', 'camera-upright@1');
    assert.equal(profile.rows, REFERENCE_ROWS);
    // A small reference makes 'auto' pick per-feature KS at p < 0.05, which over 16 features flags
    // some feature of a normal window about half the time; the distances (normed Wasserstein,
    // Jensen–Shannon ≥ 0.1) confirmed by the test at the window's size — what 'auto' uses past 1,000
    // reference rows — are the setting for a dashboard that must stay quiet on normal traffic.
    assert.equal((await p.cp.api('PUT', `/api/v1/models/${MODEL}/drift-config`, { json: { numericMethod: 'wasserstein', categoricalMethod: 'jensenshannon' } })).status, 200);
    const built = await cli('bundles', 'build', `${MODEL}@1`, '--def', def);
    await cli('deploy', built.id, '--device', p.deviceId);
    await waitFor(async () => (await api(p.port, 'GET', '/v1/status')).body.update?.state === 'active', 'orient@1 active on the agent', 60_000);
  });
  after(async () => {
    await p?.stop();
  });

  test('normal traffic (other upright pictures): no input feature, no output drifts', async () => {
    await serve(await cameraScenes(200, 3, () => 'upright'), 200);
    const report = await drift();
    const detail = JSON.stringify([...report.features, ...report.outputs].map((f) => [f.feature, f.score, f.pValue]));
    assert.equal(report.rows, 200);
    assert.deepEqual(named(report.features, true), [], `inputs: ${detail}`);
    assert.deepEqual(named(report.outputs, true), [], `outputs: ${detail}`);
    assert.equal(report.dataset.drifted, false, detail);
    assert.ok(report.outputs.some((o) => o.feature === 'predictedClass' && o.verdict === 'not_drifted'), 'prediction drift was evaluated, not skipped');
  });

  test('a flood from a camera mounted upside down: structure features and the predicted class drift, pixel statistics do not', async () => {
    await serve(await cameraScenes(400, 4, () => 'upside-down'), 600);
    const report = await drift();
    const detail = JSON.stringify([...report.features, ...report.outputs].map((f) => [f.feature, f.score, f.pValue]));
    const drifted = named(report.features, true);
    for (const f of ['top_bottom', 'center_y']) assert.ok(drifted.includes(f), `${f} drifts: ${detail}`);
    // A flip moves no pixel value: mean, spread and colour are the same distribution; the old features were blind to it.
    for (const f of ['brightness', 'contrast', 'mean_r', 'mean_g', 'mean_b']) assert.ok(!drifted.includes(f), `${f} must not drift: ${detail}`);
    assert.ok(named(report.outputs, true).includes('predictedClass'), `prediction drift: ${detail}`);
    assert.equal(report.dataset.driftedCount, drifted.length, 'the dataset verdict counts the drifted features');
  });
});

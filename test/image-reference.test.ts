// Image references agree with the device bin for bin. A control plane and one real agent: an image
// dataset of synthetic shapes (48×40 PNGs, so the bundle's 32×32 resize matters) becomes the reference
// of an image model — refused while no bundle definition says how devices preprocess images, computed
// with the nearest bundle's preprocessing once one exists — a bundle carrying that layout is deployed,
// the agent is sent the SAME images, and the stats window it publishes equals the reference sketch bin
// for bin on every image feature: `flotilla drift` scores each at PSI 0, nothing drifts.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eq } from 'drizzle-orm';
import sharp from 'sharp';
import { AgentProcess, api, freePort, waitFor } from '../agent/testing/harness.ts';
import { imageModel } from '../firmware-bundles/testing/fixtures.ts';
import { imageFeatureNames } from '../protocol/sketch/image-features.ts';
import type { FeatureSetSketch } from '../protocol/sketch/feature-set-sketch.ts';
import type { NumericSketch } from '../protocol/sketch/numeric-sketch.ts';
import { statsWindows } from '../server/db/schema.ts';
import { IMAGE_CHANNELS, IMAGE_SIZE, makeShapes, SHAPE_LABELS } from '../server/training/synthetic-shapes.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'image-demo');
const MODEL = 'shapes';
const N = 40;

describe('image reference profiles: server sketch = device sketch', { timeout: 60_000 }, () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  let agent: AgentProcess;
  let port: number;
  let deviceId: string;
  let rootPublicKey: string;
  const pngs: Buffer[] = [];

  const cli = async (...args: string[]) => {
    const r = await runCli(['--json', ...args], env);
    assert.equal(r.code, 0, `flotilla ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };

  before(async () => {
    cp = await startControlPlane({ driftCron: 'off', ingestFlushMs: 50 });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-imgref-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    rootPublicKey = (await cli('keys', 'init', '--root-key', path.join(dir, 'root.key'))).rootPublicKey;
    // The agent enrols while the dataset is prepared.
    await cli('cohorts', 'create', 'cam', '--selector', 'site=cam');
    const token = (await cli('enroll-tokens', 'create', '--labels', 'site=cam')).token;
    port = await freePort();
    agent = new AgentProcess(
      ['--server', cp.url, '--enroll-token', token, '--data-dir', path.join(dir, 'agent'), '--api-port', String(port), '--trust-root', rootPublicKey,
        '--probation-ms', '200', '--reconnect-min-ms', '100', '--reconnect-max-ms', '500', '--telemetry-interval-s', '1', '--stats-window-s', '1'],
      { FLOTILLA_AGENT_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'warn' },
    ).start();

    const shapes = await makeShapes({ n: N, seed: 11 });
    const folder = path.join(dir, 'images');
    await mkdir(folder, { recursive: true });
    const lines = ['file,label'];
    const per = IMAGE_SIZE * IMAGE_SIZE * IMAGE_CHANNELS;
    for (let i = 0; i < N; i++) {
      const raw = shapes.pixels.subarray(i * per, (i + 1) * per);
      // Not the model's size: the features depend on the bundle's resize, on both sides.
      const png = await sharp(raw, { raw: { width: IMAGE_SIZE, height: IMAGE_SIZE, channels: IMAGE_CHANNELS } }).resize(48, 40, { fit: 'fill' }).png().toBuffer();
      pngs.push(png);
      await writeFile(path.join(folder, `${i}.png`), png);
      lines.push(`${i}.png,${SHAPE_LABELS[shapes.labels[i]]}`);
    }
    await writeFile(path.join(folder, 'labels.csv'), lines.join('\n') + '\n');
    assert.equal((await cli('datasets', 'push', folder, '--name', 'shape-imgs')).version.kind, 'images');
    await writeFile(path.join(dir, 'model.onnx'), imageModel());
    await cli('models', 'push', path.join(dir, 'model.onnx'), '--name', MODEL);
    deviceId = await waitFor(async () => (await api(port, 'GET', '/v1/status').catch(() => null))?.body?.deviceId, 'agent enrolled', 30_000);
  });
  after(async () => {
    await agent?.stop();
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('no bundle definition yet: a clear 400, since the features depend on the preprocessing', async () => {
    const r = await cp.api('POST', `/api/v1/models/${MODEL}/versions/1/reference`, { json: { dataset: 'shape-imgs@1' } });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.match(r.body.error.message, /no bundle definition.*preprocess/);
  });

  test('reference from the image dataset; the device sketches the same images into exactly the same bins', async () => {
    await cli('bundles', 'build', `${MODEL}@1`, '--def', BUNDLE_DEF);
    const profile = await cli('models', 'reference', `${MODEL}@1`, '--dataset', 'shape-imgs@1');
    assert.equal(profile.rows, N);
    assert.equal(profile.source, 'dataset shape-imgs@1');
    assert.deepEqual(profile.features.map((f: { name: string }) => f.name).sort(), imageFeatureNames(3).sort());
    assert.deepEqual(
      profile.features.filter((f: { name: string }) => ['width', 'height'].includes(f.name)).map((f: { min: number }) => f.min),
      [48, 40],
      'width and height of the images as received (48×40), not the model input size (32×32)',
    );
    const built = await cli('bundles', 'build', `${MODEL}@1`, '--def', BUNDLE_DEF);
    assert.deepEqual(Object.keys(built.definition.reference.layout.features).sort(), imageFeatureNames(3).sort(), 'the bundle ships the image layout');
    assert.equal((await cp.api('PUT', `/api/v1/models/${MODEL}/drift-config`, { json: { numericMethod: 'psi', minSamples: 10 } })).status, 200);
    await cli('deploy', built.id, '--cohort', 'cam');
    await waitFor(async () => (await api(port, 'GET', '/v1/status')).body.update?.state === 'active', 'agent active', 30_000);

    for (const png of pngs) {
      const r = await api(port, 'POST', '/v1/predict', new Uint8Array(png), { 'content-type': 'image/png' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const windows = await waitFor(async () => {
      const rows = await cp.plane.db.select().from(statsWindows).where(eq(statsWindows.deviceId, deviceId));
      return rows.reduce((n, w) => n + w.rows, 0) === N ? rows : null;
    }, 'every image in a stats window on the server', 20_000);

    // Bin for bin: the device's windows, summed, equal the reference sketch.
    const reference = (await cp.api('GET', `/api/v1/models/${MODEL}/versions/1/reference?sketch=true`)).body.sketch as FeatureSetSketch;
    for (const name of imageFeatureNames(3)) {
      const ref = reference.features[name] as NumericSketch;
      const bins = ref.bins.map(() => 0);
      for (const w of windows) ((w.sketch as FeatureSetSketch).features[name] as NumericSketch).bins.forEach((c, i) => (bins[i] += c));
      assert.deepEqual(bins, ref.bins, `${name}: device bins = reference bins`);
      assert.equal(ref.count, N);
    }

    const report = await cli('drift', `${MODEL}@1`, '--cohort', 'cam', '--window', '1h');
    assert.equal(report.rows, N);
    assert.deepEqual(report.features.map((f: { feature: string }) => f.feature).sort(), imageFeatureNames(3).sort());
    for (const f of report.features as Array<{ feature: string; method: string; score: number; drifted: boolean; n: number }>) {
      assert.equal(f.method, 'psi');
      assert.equal(f.n, N, f.feature);
      assert.ok(f.score !== null && Math.abs(f.score) < 1e-9, `${f.feature}: PSI ${f.score}`);
      assert.equal(f.drifted, false, f.feature);
    }
    assert.equal(report.dataset?.driftedCount ?? 0, 0);
    // Prediction drift: the server ran the model over the reference images, so the outputs are
    // compared too — and the device's answers on the same images land in the same bins.
    assert.ok(reference.outputs, 'the image reference has outputs');
    assert.deepEqual(
      (report.outputs as Array<{ feature: string }>).map((o) => o.feature).sort(),
      ['confidence', 'predictedClass'],
    );
    for (const o of report.outputs as Array<{ feature: string; score: number | null; drifted: boolean }>) assert.equal(o.drifted, false, `${o.feature}: ${o.score}`);
  });
});

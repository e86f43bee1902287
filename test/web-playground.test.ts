// The console's model playground in Chromium, on the demo models' networks (the MLP and the shape CNN,
// trained briefly here): onnxruntime-web loads only on that page; a tabular bundle's feature form and an image bundle's upload (decoded in the browser, then the agent's own
// tensor step) give the outputs onnxruntime-node gives here for the same model and input — the input
// built here with the agent's preprocessing (sharp) — and the page shows the server's answer beside it.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import type { Page } from 'playwright-core';
import sharp from 'sharp';
import { preprocessImage } from '../agent/runtime/preprocess-image.ts';
import { preprocessTabular } from '../agent/runtime/preprocess-tabular.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { makeShapes } from '../server/training/synthetic-shapes.ts';
import { ARTIFACTS, assertLabelled, ensureConsoleBuilt, launchBrowser, REPO, requireChromium, signIn } from './helpers/browser.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { quickDemoImages, quickDemoTabular } from './helpers/demo-models.ts';

async function ortNode(model: Uint8Array, name: string, dims: number[], data: Float32Array): Promise<number[]> {
  const s = await ort.InferenceSession.create(model);
  try {
    const out = await s.run({ [name]: new ort.Tensor('float32', data, dims) });
    return Array.from(out.logits.data as Float32Array);
  } finally {
    await s.release();
  }
}

describe('console playground (onnxruntime-web in Chromium)', () => {
  let cp: TestPlane;
  let dir: string;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let page: Page;
  let tabularBundle: string;
  let imageBundle: string;
  const requested: string[] = [];
  // The demo models' networks (trained briefly here: test/helpers/demo-models.ts).
  let tabular: Uint8Array;
  let image: Uint8Array;

  const build = async (model: string, def: string) => {
    const { definition, labels } = await loadBundleDefinition(path.join(REPO, 'firmware-bundles', def, 'bundle.json'));
    const r = await cp.api('POST', '/api/v1/bundles', { json: { model, definition, labels } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.id as string;
  };
  const answerOf = async () => JSON.parse(await page.getByLabel('Browser answer (JSON)').innerText()) as { outputs: Record<string, { dims: number[]; data: number[] }>; predictions: Array<{ label: string; index: number; score: number }> };
  /** The browser's answer once it is no longer `previous` (the page replaces it when a run finishes). */
  const answerAfter = async (previous: string) => {
    await page.waitForFunction((prev) => document.querySelector('pre[aria-label="Browser answer (JSON)"]')?.textContent !== prev, previous, { polling: 100 });
    return answerOf();
  };
  /** Full-page screenshots at 1280 px and at an 820 px tablet width. */
  const shoot = async (name: string) => {
    for (const width of [1280, 820]) {
      await page.setViewportSize({ width, height: width === 820 ? 1000 : 800 });
      await page.screenshot({ path: path.join(ARTIFACTS, `${name}-${width}.png`), fullPage: true });
    }
    await page.setViewportSize({ width: 1280, height: 800 });
  };
  const pick = async (bundleId: string) => {
    await page.getByRole('combobox', { name: 'Model or bundle' }).selectOption(`bundle:${bundleId}`);
    await page.getByRole('button', { name: 'Load in the browser' }).click();
    await page.getByRole('status').filter({ hasText: 'loaded in this browser' }).waitFor({ timeout: 60_000 });
  };

  before(async () => {
    requireChromium();
    ensureConsoleBuilt();
    await mkdir(ARTIFACTS, { recursive: true });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-playground-'));
    cp = await startControlPlane();
    tabular = quickDemoTabular();
    image = await quickDemoImages();
    for (const [name, bytes] of [['tabular-demo', tabular], ['image-demo', image]] as const) {
      const r = await cp.api('POST', `/api/v1/models/${name}/versions`, { body: bytes as unknown as BodyInit, headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    tabularBundle = await build('tabular-demo@1', 'tabular-demo');
    imageBundle = await build('image-demo@1', 'image-demo');
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.setDefaultTimeout(30_000);
    page.on('request', (r) => requested.push(new URL(r.url()).pathname));
  });

  after(async () => {
    await browser?.close();
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('onnxruntime-web is not part of the first load; it loads on the playground', async () => {
    await signIn(page, cp.url, cp.adminToken, /enroll the first one/); // the empty fleet's page
    assert.deepEqual(requested.filter((p) => /^\/assets\/(ort[.-]|playground-)/.test(p)), [], 'no playground or onnxruntime asset before the page opens');
    await page.getByRole('link', { name: 'Playground' }).click();
    await page.getByRole('heading', { level: 1, name: 'Playground' }).waitFor();
    assert.ok(requested.some((p) => /\/assets\/playground-[\w-]+\.js$/.test(p)), requested.join('\n'));
  });

  test('a feature row typed into the tabular bundle\'s form: the browser answers as onnxruntime-node does, with the agent\'s postprocessing', async () => {
    await pick(tabularBundle);
    assert.ok(requested.some((p) => /\/assets\/ort-wasm-simd-threaded-[\w-]+\.wasm$/.test(p)), 'the wasm comes from the console build');
    const row = { f0: 0.5, f1: -1.25, f2: 3, f3: 0.125, f4: -2, f5: 1.5, f6: 0.75, f7: -0.5 };
    for (const [f, v] of Object.entries(row)) await page.getByLabel(new RegExp(`^${f} `)).fill(String(v));
    await page.getByRole('button', { name: 'Run' }).click();
    await page.getByText(/Largest absolute difference browser vs server/).waitFor();
    const answer = await answerOf();
    const { definition } = await loadBundleDefinition(path.join(REPO, 'firmware-bundles', 'tabular-demo', 'bundle.json'));
    assert.equal(definition.preprocess.type, 'tabular');
    const t = preprocessTabular(definition.preprocess as Parameters<typeof preprocessTabular>[0], row);
    const expected = await ortNode(tabular, 'features', t.dims, t.data);
    assert.deepEqual(answer.outputs.logits.dims, [1, 3]);
    answer.outputs.logits.data.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-5, `logit ${i}: browser ${v}, onnxruntime-node ${expected[i]}`));
    // Predictions as the agent's local API gives them: softmax top 3 with the bundle's labels.
    const e = expected.map((z) => Math.exp(z - Math.max(...expected)));
    const p = e.map((x) => x / e.reduce((a, b) => a + b, 0));
    const best = p.indexOf(Math.max(...p));
    assert.equal(answer.predictions.length, 3);
    assert.equal(answer.predictions[0].index, best);
    assert.equal(answer.predictions[0].label, ['low', 'medium', 'high'][best]);
    assert.ok(Math.abs(answer.predictions[0].score - p[best]) < 1e-5);
    const server = JSON.parse(await page.getByLabel('Server answer (JSON)').innerText());
    server.outputs.logits.data.forEach((v: number, i: number) => assert.ok(Math.abs(v - expected[i]) < 1e-5));
    await assertLabelled(page, 'playground (tabular)');
    await shoot('playground-tabular');
  });

  test('an image given to the image bundle: decoded in the browser, the agent\'s tensor step, the same answer as the agent\'s preprocessing + onnxruntime-node', async () => {
    // A shape as the demo data draws them, 32×32 like the bundle, so the browser's decode is exact (a
    // resize would use another filter than sharp's).
    const pixels = Buffer.from((await makeShapes({ n: 1, seed: 11 })).pixels);
    const png = await sharp(pixels, { raw: { width: 32, height: 32, channels: 3 } }).png().toBuffer();
    const file = path.join(dir, 'shape.png');
    await writeFile(file, png);
    await pick(imageBundle);
    await page.getByLabel('Image file').setInputFiles(file);
    await page.getByText(/Largest absolute difference browser vs server/).waitFor();
    const answer = await answerOf();
    const { definition } = await loadBundleDefinition(path.join(REPO, 'firmware-bundles', 'image-demo', 'bundle.json'));
    const t = await preprocessImage(definition.preprocess as Parameters<typeof preprocessImage>[0], png);
    const expected = await ortNode(image, 'image', t.dims, t.data);
    assert.deepEqual(answer.outputs.logits.dims, [1, 3]);
    answer.outputs.logits.data.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-4, `logit ${i}: browser ${v}, agent preprocessing + onnxruntime-node ${expected[i]}`));
    assert.equal(answer.predictions[0].label, ['circle', 'square', 'triangle'][expected.indexOf(Math.max(...expected))]);
    const agreement = await page.getByLabel('Browser and server agreement').innerText();
    const diff = Number(/difference browser vs server: (\S+)/.exec(agreement)?.[1]);
    assert.ok(diff < 1e-4, agreement);
    await page.getByRole('img', { name: 'The image that was run' }).waitFor();

    // Dropped onto the page instead of chosen: another image, the same agreement.
    const inverted = await sharp(Buffer.from(pixels.map((v) => 255 - v)), { raw: { width: 32, height: 32, channels: 3 } }).png().toBuffer();
    const previous = (await page.getByLabel('Browser answer (JSON)').textContent()) ?? '';
    const dataTransfer = await page.evaluateHandle((b64) => {
      const dt = new DataTransfer();
      dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], 'dropped.png', { type: 'image/png' }));
      return dt;
    }, inverted.toString('base64'));
    await page.getByRole('region', { name: 'Image', exact: true }).dispatchEvent('drop', { dataTransfer });
    const dropped = await answerAfter(previous);
    const t2 = await preprocessImage(definition.preprocess as Parameters<typeof preprocessImage>[0], inverted);
    const expected2 = await ortNode(image, 'image', t2.dims, t2.data);
    dropped.outputs.logits.data.forEach((v, i) => assert.ok(Math.abs(v - expected2[i]) < 1e-4, `dropped image, logit ${i}: browser ${v}, agent preprocessing + onnxruntime-node ${expected2[i]}`));
    await assertLabelled(page, 'playground (image)');
    await shoot('playground-image');
  });

  test('a bare model version takes raw tensors as JSON; a malformed one is a readable error, not a crash', async () => {
    await page.getByRole('combobox', { name: 'Model or bundle' }).selectOption('version:tabular-demo@1');
    await page.getByRole('button', { name: 'Load in the browser' }).click();
    await page.getByRole('status').filter({ hasText: 'loaded in this browser' }).waitFor({ timeout: 60_000 });
    const box = page.getByLabel(/^features \(float32\)/);
    await box.fill('{"dims": [1, 8], "data": [1, 2]}');
    await page.getByRole('button', { name: 'Run' }).click();
    await page.getByRole('alert').filter({ hasText: /features/ }).waitFor();
    const data = [0.25, -0.5, 1, 2, -1, 0, 0.75, 3];
    await box.fill(JSON.stringify({ dims: [1, 8], data }));
    await page.getByRole('button', { name: 'Run' }).click();
    await page.getByText(/Largest absolute difference browser vs server/).waitFor();
    const answer = await answerOf();
    const expected = await ortNode(tabular, 'features', [1, 8], Float32Array.from(data));
    answer.outputs.logits.data.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-5, `logit ${i}: browser ${v}, onnxruntime-node ${expected[i]}`));
    assert.equal(answer.predictions, undefined, 'no bundle, no postprocessing');
  });
});

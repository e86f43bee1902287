// Covers scripts/make-demo-models.ts (npm test only looks under server/, agent/, … so it lives here).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { formatDemoTable, makeDemoModels } from '../../scripts/make-demo-models.ts';
import { inspectOnnx } from '../onnx/inspect.ts';
import { evaluateOnnx } from './evaluate.ts';
import { readShapesFolder, toNchw } from './synthetic-shapes.ts';
import { featureMatrix, labelIndices, readTabularCsv } from './synthetic-tabular.ts';

describe('make-demo-models', () => {
  let dir = '';
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('writes both models, their data and a summary; the files on disk score what the summary says', async (t) => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-demo-'));
    const s = await makeDemoModels(dir, { quick: true });
    for (const line of formatDemoTable(s).split('\n')) t.diagnostic(line);
    t.diagnostic(`total ${s.totalMs} ms`);
    const files = await readdir(dir);
    for (const f of ['tabular-demo.onnx', 'tabular-train.csv', 'tabular-reference.csv', 'image-demo.onnx', 'images', 'demo-models.json']) {
      assert.ok(files.includes(f), `${f} missing`);
    }
    assert.ok(s.tabular.accuracy >= 0.9 && s.image.accuracy >= 0.9, JSON.stringify(s));

    const ref = await readTabularCsv(join(dir, 'tabular-reference.csv'));
    assert.equal(ref.length, s.tabular.heldOutRows);
    assert.equal((await readTabularCsv(join(dir, 'tabular-train.csv'))).length, s.tabular.trainRows);
    const tab = new Uint8Array(await readFile(join(dir, 'tabular-demo.onnx')));
    assert.equal(tab.length, s.tabular.bytes);
    assert.deepEqual(inspectOnnx(tab).inputs[0], { name: 'features', dtype: 'float32', shape: ['batch', 8] });
    const tabEval = await evaluateOnnx(tab, { data: featureMatrix(ref), dims: [ref.length, 8] }, labelIndices(ref));
    assert.equal(tabEval.accuracy, s.tabular.accuracy);

    const images = await readShapesFolder(join(dir, 'images'));
    assert.equal(images.n, s.image.heldOutRows);
    assert.equal((await readdir(join(dir, 'images'))).filter((f) => f.endsWith('.png')).length, images.n);
    const img = new Uint8Array(await readFile(join(dir, 'image-demo.onnx')));
    assert.deepEqual(inspectOnnx(img).inputs[0], { name: 'image', dtype: 'float32', shape: ['batch', 3, 32, 32] });
    const imgEval = await evaluateOnnx(img, { data: toNchw(images.pixels, images.n), dims: [images.n, 3, 32, 32] }, images.labels);
    assert.equal(imgEval.accuracy, s.image.accuracy);

    const json = JSON.parse(await readFile(join(dir, 'demo-models.json'), 'utf8'));
    assert.equal(json.image.params.trainer, 'cnn');
    assert.match(formatDemoTable(s), /tabular-demo\.onnx .* %/);
  });
});

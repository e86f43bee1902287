// The model zoo (issue 17), continued in its own file so the two run in parallel: models whose weights
// live outside the usual place — in ONNX external data files beside the .onnx, and inside a Loop body —
// through push → facts → bundle → deploy to a real agent → predict (against onnxruntime run directly)
// → statistics → optimize.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { writeTar } from '../server/datasets/tar.ts';
import { runCli } from './helpers/cli.ts';
import type { TestPlane } from './helpers/control-plane.ts';
import { startPlaneWithAgent, type PlaneWithAgent } from './helpers/plane-with-agent.ts';
import { close, direct, rowsOf, zooSteps } from './helpers/zoo-lab.ts';
import { externalWeightsModel, loopModel } from './helpers/zoo-models.ts';

describe('model zoo: external weights and Loop bodies through the whole loop on a real agent', { timeout: 300_000 }, () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  let lab: PlaneWithAgent;
  const { cli, push, ship, statsReach, setReference, predict } = zooSteps(() => lab);

  before(async () => {
    lab = await startPlaneWithAgent({ site: 'zoo-weights', prefix: 'flotilla-zoo-weights-' });
    ({ cp, dir, env } = lab);
  });
  after(async () => {
    await lab?.stop();
  });

  test('external weights: the .onnx and its data file pushed together, hashed and stored, shipped in the signed bundle, loaded by the agent; optimize inlines them', async () => {
    const ext = externalWeightsModel();
    const folder = path.join(dir, 'ext-export');
    await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, 'model.onnx'), ext.model);
    await writeFile(path.join(folder, ext.dataFile), ext.data);
    const dataSha = createHash('sha256').update(ext.data).digest('hex');

    // Without its data file: the CLI names it, and so does the API for a bare .onnx body.
    const alone = path.join(dir, 'ext-alone');
    await mkdir(alone, { recursive: true });
    await writeFile(path.join(alone, 'model.onnx'), ext.model);
    const missing = await runCli(['models', 'push', path.join(alone, 'model.onnx'), '--name', 'external'], env);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /external data file "model\.onnx\.data", which is not beside it/);
    const bare = await cp.api('POST', '/api/v1/models/external/versions', { body: Buffer.from(ext.model), headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(bare.status, 422, JSON.stringify(bare.body));
    assert.match(bare.body.error.message, /external data file "model\.onnx\.data", which was not pushed/);
    // A data file that does not hold the bytes the model names.
    const short = await cp.api('POST', '/api/v1/models/external/versions', { body: Buffer.from(writeTar([{ path: 'model.onnx', data: ext.model }, { path: ext.dataFile, data: ext.data.subarray(0, 100) }])), headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(short.status, 422, JSON.stringify(short.body));
    assert.match(short.body.error.message, /tensor "b" reads bytes 128–140 of "model\.onnx\.data", which has 100/);
    assert.equal((await cp.api('GET', '/api/v1/models/external/versions')).status, 404, 'nothing registered');

    // The .onnx with its data file beside it (as torch.onnx leaves them).
    const pushed = await runCli(['models', 'push', path.join(folder, 'model.onnx'), '--name', 'external'], env);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.match(pushed.stdout, /pushed external@1 \(model\.onnx \+ model\.onnx\.data, .*27 parameters/);
    const v = await cli('models', 'show', 'external@1');
    assert.equal(v.paramCount, 27);
    assert.equal(v.initializerBytes, 108, 'the external weights are counted at their size');
    assert.deepEqual(v.facts.externalData, [{ path: ext.dataFile, sha256: dataSha, size: ext.data.length }]);
    const stored = await fetch(`${cp.url}/artifacts/sha256/${dataSha}`, { headers: { authorization: `Bearer ${cp.adminToken}` } });
    assert.equal(stored.status, 200, 'the data file is stored');
    assert.ok(Buffer.from(await stored.arrayBuffer()).equals(Buffer.from(ext.data)));
    // The export folder, and a .tar of it, register the same files.
    await cli('models', 'push', folder, '--name', 'external-dir');
    const tarFile = path.join(dir, 'ext-export.tar');
    await writeFile(tarFile, writeTar([{ path: 'export/model.onnx', data: ext.model }, { path: `export/${ext.dataFile}`, data: ext.data }]));
    await cli('models', 'push', tarFile, '--name', 'external-tar');
    for (const ref of ['external-dir@1', 'external-tar@1']) {
      const o = await cli('models', 'show', ref);
      assert.equal(o.sha256, v.sha256, `${ref}: same model file`);
      assert.deepEqual(o.facts.externalData, v.facts.externalData, `${ref}: same data file`);
    }

    // Served: onnxruntime run directly on the exported folder is the reference.
    const fromFolder = async (x: number[], n: number) => {
      const s = await ort.InferenceSession.create(path.join(folder, 'model.onnx'));
      try {
        return Array.from((await s.run({ x: new ort.Tensor('float32', Float32Array.from(x), [n, 8]) })).y.data as Float32Array);
      } finally {
        await s.release();
      }
    };
    const refRows = [];
    for (let i = 0; i < 60; i++) {
      const x = rowsOf(1, 8, 0.4 + i * 0.03)[0];
      const y = await fromFolder(x, 1);
      const best = y.indexOf(Math.max(...y));
      refRows.push({ x_mean: x.reduce((a, b) => a + b, 0) / 8, outputs: { predictedClass: best, confidence: Math.min(1, Math.max(0, y[best])) } });
    }
    await setReference('external@1', refRows, 3);
    const built = await ship('external@1', {
      name: 'external',
      preprocess: { type: 'tensor', dims: { N: 1 }, summaries: { x_mean: { input: 'x', stat: 'mean' } } },
      postprocess: { task: 'classification', labels: ['k', 'l', 'm'] },
    });
    assert.deepEqual(built.files.find((f: { path: string }) => f.path === ext.dataFile), { path: ext.dataFile, sha256: dataSha, size: ext.data.length }, 'the bundle (and so the signed manifest) names the data file by hash');
    for (const seed of [0.8, 1.6, 2.4]) {
      const x = rowsOf(1, 8, seed)[0];
      const r = await predict({ inputs: { x: { dims: [1, 8], data: x } } });
      close(r.outputs.y.data, await fromFolder(x, 1), 1e-5, `external seed ${seed}`);
    }
    await statsReach('external@1', 3);

    // The optimizer puts the weights back inside and quantizes them: its variant is one self-contained file.
    const opt = await runCli(['--json', 'optimize', 'external@1', '--quantize', 'int8'], env);
    assert.ok(opt.code === 0 || /rejected|REJECTED/.test(opt.stderr), opt.stderr);
    const variant = await cli('models', 'show', JSON.parse(opt.stdout || '{}').version?.ref ?? 'external@2');
    assert.equal(variant.facts.externalData, undefined, 'no side file');
    assert.equal(variant.facts.weightTypes.int8, 24, `W [8, 3] is int8: ${JSON.stringify(variant.facts.weightTypes)}`);
  });

  test('control flow: a Loop whose body holds its own weights — counted, bundled, served, quantized inside the body', async () => {
    const bytes = loopModel();
    await push('looped', bytes);
    const v = await cli('models', 'show', 'looped@1');
    assert.equal(v.paramCount, 98, 'trip count, condition, W_out and the body\'s W_body and b_body');
    assert.ok(v.facts.weightTypes.float32 >= 64 + 8 + 24, JSON.stringify(v.facts.weightTypes));
    const refRows = [];
    for (let i = 0; i < 60; i++) {
      const x = rowsOf(1, 8, 0.25 + i * 0.05)[0];
      const y = (await direct(bytes, { x: new ort.Tensor('float32', Float32Array.from(x), [1, 8]) })).y;
      const best = y.indexOf(Math.max(...y));
      refRows.push({ x_mean: x.reduce((a, b) => a + b, 0) / 8, outputs: { predictedClass: best, confidence: Math.min(1, Math.max(0, y[best])) } });
    }
    await setReference('looped@1', refRows, 3);
    await ship('looped@1', {
      name: 'looped',
      preprocess: { type: 'tensor', dims: { N: 1 }, summaries: { x_mean: { input: 'x', stat: 'mean' } } },
      postprocess: { task: 'classification', labels: ['s', 't', 'u'] },
    });
    for (const seed of [0.7, 1.5, 3.1]) {
      const x = rowsOf(2, 8, seed).flat();
      const want = (await direct(bytes, { x: new ort.Tensor('float32', Float32Array.from(x), [2, 8]) })).y;
      const r = await predict({ inputs: { x: { dims: [2, 8], data: x } } });
      close(r.outputs.y.data, want, 1e-5, `Loop seed ${seed}`);
    }
    await statsReach('looped@1', 3);

    const opt = await runCli(['--json', 'optimize', 'looped@1', '--quantize', 'int8'], env);
    assert.ok(opt.code === 0 || /rejected|REJECTED/.test(opt.stderr), opt.stderr);
    const variant = await cli('models', 'show', JSON.parse(opt.stdout || '{}').version?.ref ?? 'looped@2');
    assert.equal(variant.facts.quantization.format, 'QDQ');
    assert.equal(variant.facts.weightTypes.int8, 64 + 24, `the body's W_body and the top-level W_out are int8: ${JSON.stringify(variant.facts.weightTypes)}`);
  });
});

// References from a tensor dataset for raw-tensor models whose postprocess is not a classifier:
// `models reference m@N --dataset <tensors>` fills each row's outputs as a device's statistics record
// them — a `binary` model's thresholded label with its probability, a `regression` model's first
// value — so prediction drift has a reference for them too. Counts are checked exactly against
// onnxruntime run directly on the same samples.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { encodeNpy } from '../server/datasets/npy.ts';
import { encodeModel, floatTensor, node, valueInfo } from '../server/onnx/build.ts';
import { cliJson } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';

const N = 60;
const xs = Array.from({ length: N * 4 }, (_, i) => Math.fround(Math.sin(i * 0.77) * 1.5));

function linear(width: number, sigmoid: boolean): Uint8Array {
  return encodeModel({
    opset: 13,
    inputs: [valueInfo('x', 'float32', ['batch', 4])],
    outputs: [valueInfo('y', 'float32', ['batch', width])],
    initializers: [floatTensor('W', [4, width], Array.from({ length: 4 * width }, (_, i) => [0.9, -0.6, 0.4, 0.7, -0.3, 0.5, 0.8, -0.2][i])), floatTensor('b', [width], Array.from({ length: width }, (_, i) => 0.1 * (i + 1)))],
    nodes: sigmoid ? [node('MatMul', ['x', 'W'], ['xw']), node('Add', ['xw', 'b'], ['z']), node('Sigmoid', ['z'], ['y'])] : [node('MatMul', ['x', 'W'], ['xw']), node('Add', ['xw', 'b'], ['y'])],
  });
}

async function firstColumn(model: Uint8Array, width: number): Promise<number[]> {
  const s = await ort.InferenceSession.create(model);
  const out = (await s.run({ x: new ort.Tensor('float32', Float32Array.from(xs), [N, 4]) })).y.data as Float32Array;
  await s.release();
  return Array.from({ length: N }, (_, i) => out[i * width]);
}

describe('tensor references for binary and regression outputs', { timeout: 120_000 }, () => {
  let cp: TestPlane;
  let dir: string;
  let cli: (...args: string[]) => Promise<any>;
  before(async () => {
    cp = await startControlPlane({ driftCron: 'off' });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-tensor-ref-'));
    const env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    cli = (...args) => cliJson(env, ...args);
    await writeFile(path.join(dir, 'x.npy'), encodeNpy({ dtype: 'float32', shape: [N, 4], data: xs }));
    await cli('datasets', 'push', path.join(dir, 'x.npy'), '--name', 'xs');
  });
  after(async () => {
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function referenceOf(name: string, model: Uint8Array, postprocess: object) {
    await writeFile(path.join(dir, `${name}.onnx`), model);
    await cli('models', 'push', path.join(dir, `${name}.onnx`), '--name', name);
    const def = path.join(dir, `${name}-def`);
    await mkdir(def);
    await writeFile(path.join(def, 'bundle.json'), JSON.stringify({ name, preprocess: { type: 'tensor', dims: { batch: 1 }, summaries: { x_mean: { input: 'x', stat: 'mean' } } }, postprocess }));
    await cli('bundles', 'build', `${name}@1`, '--def', def);
    const profile = await cli('models', 'reference', `${name}@1`, '--dataset', 'xs@1');
    assert.equal(profile.rows, N);
    return { profile, sketch: (await cp.api('GET', `/api/v1/models/${name}/versions/1/reference?sketch=true`)).body.sketch };
  }

  test('binary: the label at the definition\'s threshold and the probability as confidence', async () => {
    const model = linear(1, true);
    const p = await firstColumn(model, 1);
    const above = p.filter((v) => v >= 0.6).length;
    assert.notEqual(above, p.filter((v) => v >= 0.5).length, 'the samples tell a 0.6 threshold from 0.5');
    const { profile, sketch } = await referenceOf('gate', model, { task: 'binary', output: 'y', threshold: 0.6, labels: ['closed', 'open'] });
    assert.deepEqual(profile.layout.outputs, { task: 'classification', numClasses: 2 });
    assert.deepEqual(sketch.outputs.predictedClass.counts, [N - above, above]);
    assert.equal(sketch.outputs.confidence.count, N);
    const sum = sketch.outputs.confidence.sums.reduce((a: number, b: number) => a + b, 0);
    assert.ok(Math.abs(sum - p.reduce((a, b) => a + b, 0)) < 1e-4, `confidence is the probability: ${sum}`);
  });

  test('regression: the first value of each answer', async () => {
    const model = linear(2, false);
    const y0 = await firstColumn(model, 2);
    const { profile, sketch } = await referenceOf('level', model, { task: 'regression', output: 'y' });
    assert.equal(profile.layout.outputs.task, 'regression');
    assert.equal(sketch.outputs.value.count, N);
    assert.equal(sketch.outputs.predictedClass, undefined);
    const sum = sketch.outputs.value.sums.reduce((a: number, b: number) => a + b, 0);
    assert.ok(Math.abs(sum - y0.reduce((a, b) => a + b, 0)) < 1e-4, `value sums ${sum}`);
    // Every value lands in the bins the reference made from those very values.
    assert.equal(sketch.outputs.value.bins.reduce((a: number, b: number) => a + b, 0), N);
  });
});

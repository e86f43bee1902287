// POST /models/{name}/versions/{version}/run on a real control plane: the answer equals onnxruntime-node
// run on the same file here, int64 outputs come back as numbers, and wrong input names, types, shapes
// or roles are refused with a 4xx that says what to fix.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { encodeModel, floatTensor, node, valueInfo } from '../server/onnx/build.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

/** x float32 [2, 4] (fixed) → logits [2, 3] and label int64 [2] (ArgMax). */
function fixedModel(): Uint8Array {
  return encodeModel({
    inputs: [valueInfo('x', 'float32', [2, 4])],
    outputs: [valueInfo('logits', 'float32', [2, 3]), valueInfo('label', 'int64', [2])],
    initializers: [floatTensor('W', [4, 3], Array.from({ length: 12 }, (_, i) => Math.sin(i + 1))), floatTensor('b', [3], [0.1, -0.2, 0.3])],
    nodes: [node('Gemm', ['x', 'W', 'b'], ['logits']), node('ArgMax', ['logits'], ['label'], { axis: 1, keepdims: 0 })],
  });
}

describe('run a model version on the server', () => {
  let cp: TestPlane;
  const run = (path: string, body: unknown, token?: string | null) => cp.api('POST', `/api/v1/models/${path}/run`, { json: body, token });

  before(async () => {
    cp = await startControlPlane();
    for (const [name, bytes] of [['tab', gemmModel({ seed: 3 })], ['fixed', fixedModel()]] as const) {
      const r = await cp.api('POST', `/api/v1/models/${name}/versions`, { body: bytes as unknown as BodyInit, headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
  });
  after(() => cp.stop());

  test('the answer is what onnxruntime gives on the same file, for a batch and by alias', async () => {
    const data = Array.from({ length: 16 }, (_, i) => (i - 8) / 3);
    const r = await run('tab/versions/1', { inputs: { features: { dims: [2, 8], data } } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.model, 'tab@1');
    assert.ok(r.body.latencyMs >= 0);
    const session = await ort.InferenceSession.create(gemmModel({ seed: 3 }));
    const want = (await session.run({ features: new ort.Tensor('float32', Float32Array.from(data), [2, 8]) })).logits;
    await session.release();
    assert.deepEqual(r.body.outputs.logits.dims, [2, 3]);
    assert.equal(r.body.outputs.logits.type, 'float32');
    (want.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - r.body.outputs.logits.data[i]) < 1e-6, `logit ${i}: ${r.body.outputs.logits.data[i]} vs ${v}`));

    assert.equal((await cp.api('PUT', '/api/v1/models/tab/aliases/champion', { json: { version: 1 } })).status, 200);
    const byAlias = await run('tab/versions/champion', { inputs: { features: { dims: [2, 8], data } } });
    assert.deepEqual(byAlias.body.outputs, r.body.outputs);
  });

  test('int64 outputs come back as numbers', async () => {
    const x = [1, 0, 0, 0, 0, 0, 0, 1];
    const r = await run('fixed/versions/1', { inputs: { x: { dims: [2, 4], data: x, type: 'float32' } } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const session = await ort.InferenceSession.create(fixedModel());
    const want = await session.run({ x: new ort.Tensor('float32', Float32Array.from(x), [2, 4]) });
    await session.release();
    assert.equal(r.body.outputs.label.type, 'int64');
    assert.deepEqual(r.body.outputs.label.data, Array.from(want.label.data as BigInt64Array, Number));
  });

  test('bad input is a 4xx that names the problem', async () => {
    const cases: Array<[string, unknown, number, RegExp]> = [
      ['tab/versions/1', { inputs: { pixels: { dims: [1, 8], data: Array(8).fill(0) } } }, 400, /unknown input\(s\) pixels: the model takes features/],
      ['tab/versions/1', { inputs: {} }, 400, /missing input\(s\) features/],
      ['tab/versions/1', { inputs: { features: { dims: [1, 8], data: [1, 2, 3] } } }, 400, /dims \[1, 8\] hold 8 values, data has 3/],
      ['tab/versions/1', { inputs: { features: { dims: [1, 7], data: Array(7).fill(0) } } }, 400, /dimension 1 must be 8, not 7/],
      ['tab/versions/1', { inputs: { features: { dims: [8], data: Array(8).fill(0) } } }, 400, /has 2 dimensions \[batch, 8\], not 1/],
      ['tab/versions/1', { inputs: { features: { dims: [1, 8], data: Array(8).fill(0), type: 'int64' } } }, 400, /input features is float32, not int64/],
      ['tab/versions/1', { inputs: { features: { dims: [1, 8], data: Array(8).fill('a') } } }, 400, /./],
      ['fixed/versions/1', { inputs: { x: { dims: [3, 4], data: Array(12).fill(0) } } }, 400, /dimension 0 must be 2, not 3/],
      ['tab/versions/9', { inputs: { features: { dims: [1, 8], data: Array(8).fill(0) } } }, 404, /model version "tab@9" not found/],
      ['nope/versions/1', { inputs: {} }, 404, /model "nope" not found/],
    ];
    for (const [path, body, status, message] of cases) {
      const r = await run(path, body);
      assert.equal(r.status, status, `${path} ${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error.message, message);
    }
    const malformed = await cp.api('POST', '/api/v1/models/tab/versions/1/run', { body: '{"inputs":', headers: { 'content-type': 'application/json' } });
    assert.equal(malformed.status, 400);
  });

  test('tokens: none is 401, a viewer is 403, an ml-engineer may run', async () => {
    const body = { inputs: { features: { dims: [1, 8], data: Array(8).fill(1) } } };
    assert.equal((await run('tab/versions/1', body, null)).status, 401);
    const token = async (role: string) => (await cp.api('POST', '/api/v1/tokens', { json: { name: role, role } })).body.token as string;
    const viewer = await run('tab/versions/1', body, await token('viewer'));
    assert.equal(viewer.status, 403);
    assert.match(viewer.body.error.message, /role "viewer" may not do this \(needs models:write\)/);
    assert.equal((await run('tab/versions/1', body, await token('ml-engineer'))).status, 200);
  });
});

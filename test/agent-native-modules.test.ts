// The compiled agent loads its native add-ons only when the work needs them (agent/README.md,
// "Memory"): idle it has neither onnxruntime nor sharp mapped; a tabular bundle brings onnxruntime
// but not sharp; an image bundle's first image brings sharp. Read from `GET /v1/status` →
// `memory.native` (the shared objects the process has mapped), not from timing or RSS.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { api, waitFor } from '../agent/testing/harness.ts';
import { encodeModel, floatTensor, node, valueInfo } from '../server/onnx/build.ts';
import { gemmModel } from './helpers/models.ts';
import { startPlaneWithAgent, type PlaneWithAgent } from './helpers/plane-with-agent.ts';

const BUNDLES = path.join(import.meta.dirname, '..', 'firmware-bundles');
const ROW = { f0: 0.5, f1: -1, f2: 2, f3: 0.1, f4: 0, f5: 1.5, f6: -0.3, f7: 0.8 };

/** 3×32×32 image → 3 logits (mean per channel, one Gemm): the image-demo definition's shapes. */
function imageModel(): Uint8Array {
  return encodeModel({
    inputs: [valueInfo('image', 'float32', ['batch', 3, 32, 32])],
    outputs: [valueInfo('logits', 'float32', ['batch', 3])],
    initializers: [floatTensor('W', [3, 3], [1, 0, 0, 0, 1, 0, 0, 0, 1]), floatTensor('b', [3], [0, 0.1, -0.1])],
    nodes: [node('ReduceMean', ['image'], ['pooled'], { axes: [2, 3], keepdims: 0 }), node('Gemm', ['pooled', 'W', 'b'], ['logits'])],
  });
}

let lab: PlaneWithAgent;
before(async () => {
  lab = await startPlaneWithAgent({ site: 'native', prefix: 'flotilla-native-modules-' });
});
after(async () => {
  await lab.stop();
});

test('native add-ons: none idle, onnxruntime with a tabular model, sharp with the first image', async () => {
  const { cli, port, deviceId, dir } = lab;
  const native = async () => (await api(port, 'GET', '/v1/status')).body.memory.native as string[];
  const activeModel = async () => {
    const d = (await lab.cp.api('GET', `/api/v1/devices/${deviceId}`)).body;
    return d.updateState === 'active' ? (d.reported?.active?.model?.name as string) : undefined;
  };

  await waitFor(async () => (await api(port, 'GET', '/v1/status')).body.mqtt.connected, 'agent connected', 30_000);
  assert.deepEqual(await native(), [], 'an idle agent loads neither onnxruntime nor sharp');

  await writeFile(path.join(dir, 'tab.onnx'), gemmModel({ seed: 1 }));
  await cli('models', 'push', path.join(dir, 'tab.onnx'), '--name', 'tab');
  await cli('bundles', 'build', 'tab@1', '--def', path.join(BUNDLES, 'tabular-demo'));
  await cli('deploy', 'tab@1', '--device', deviceId);
  await waitFor(async () => (await activeModel()) === 'tab', 'tab@1 active', 60_000);
  assert.equal((await api(port, 'POST', '/v1/predict', { features: ROW })).status, 200);
  assert.deepEqual(await native(), ['onnxruntime'], 'a tabular model needs onnxruntime, not sharp');

  await writeFile(path.join(dir, 'cam.onnx'), imageModel());
  await cli('models', 'push', path.join(dir, 'cam.onnx'), '--name', 'cam');
  await cli('bundles', 'build', 'cam@1', '--def', path.join(BUNDLES, 'image-demo'));
  await cli('deploy', 'cam@1', '--device', deviceId);
  await waitFor(async () => (await activeModel()) === 'cam', 'cam@1 active', 60_000);
  const png = await sharp(Buffer.alloc(32 * 32 * 3, 128), { raw: { width: 32, height: 32, channels: 3 } }).png().toBuffer();
  const r = await api(port, 'POST', '/v1/predict', new Uint8Array(png), { 'content-type': 'image/png' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(await native(), ['onnxruntime', 'sharp']);
});

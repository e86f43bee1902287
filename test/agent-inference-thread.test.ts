// An agent process started with --inference-thread main (sessions on the agent's own thread, no
// inference worker): a deployed bundle answers through the local API exactly as the model does, an
// upgrade swaps the answers to the new version, and bad input is still a 400 with its message.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { api, waitFor } from '../agent/testing/harness.ts';
import { gemmModel } from './helpers/models.ts';
import { startPlaneWithAgent, type PlaneWithAgent } from './helpers/plane-with-agent.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');
const ROW = { f0: 0.5, f1: -1, f2: 2, f3: 0.1, f4: 0, f5: 1.5, f6: -0.3, f7: 0.8 };

async function directLogits(bytes: Uint8Array): Promise<number[]> {
  const s = await ort.InferenceSession.create(bytes);
  const out = await s.run({ features: new ort.Tensor('float32', Float32Array.from(Object.values(ROW)), [1, 8]) });
  await s.release();
  return Array.from(out.logits.data as Float32Array);
}

let lab: PlaneWithAgent;
before(async () => {
  lab = await startPlaneWithAgent({ site: 'lab', prefix: 'flotilla-inference-thread-', agentArgs: ['--inference-thread', 'main'] });
});
after(async () => {
  await lab.stop();
});

test('--inference-thread main: deploy, predict, upgrade, bad input', async () => {
  const { cli, port, deviceId, dir } = lab;
  const activeVersion = async () => {
    const d = (await lab.cp.api('GET', `/api/v1/devices/${deviceId}`)).body;
    return d.updateState === 'active' ? (d.reported?.active?.model?.version as number) : undefined;
  };
  for (const v of [1, 2]) {
    await writeFile(path.join(dir, `v${v}.onnx`), gemmModel({ seed: v }));
    await cli('models', 'push', path.join(dir, `v${v}.onnx`), '--name', 'tabular-demo', ...(v > 1 ? ['--parent', 'tabular-demo@1'] : []));
    await cli('bundles', 'build', `tabular-demo@${v}`, '--def', BUNDLE_DEF);
    await cli('deploy', `tabular-demo@${v}`, '--device', deviceId);
    await waitFor(async () => (await activeVersion()) === v, `v${v} active`, 60_000);
    const expected = await directLogits(gemmModel({ seed: v }));
    const r = await api(port, 'POST', '/v1/predict', { features: ROW });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.bundle.model.version, v);
    (r.body.outputs.logits.data as number[]).forEach((x, i) => assert.ok(Math.abs(x - expected[i]) < 1e-5, `v${v} logit ${i}: ${x} vs ${expected[i]}`));
  }
  const bad = await api(port, 'POST', '/v1/predict', { features: { f0: 1 } });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'INVALID_INPUT');
  assert.match(bad.body.error.message, /f1/);
  assert.equal((await api(port, 'POST', '/v1/predict', { features: ROW })).status, 200);
});

// An agent process started with --inference-thread main (sessions on the agent's own thread, no
// inference worker): a deployed bundle answers through the local API exactly as the model does, an
// upgrade swaps the answers to the new version, and bad input is still a 400 with its message.
// And an agent in the default mode (auto): the tabular MLP starts in the worker and moves to the
// agent's thread while requests are in flight, none of them failing; /v1/status says where and why.
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
let auto: PlaneWithAgent;
before(async () => {
  [lab, auto] = await Promise.all([
    startPlaneWithAgent({ site: 'lab', prefix: 'flotilla-inference-thread-', agentArgs: ['--inference-thread', 'main'] }),
    startPlaneWithAgent({ site: 'lab', prefix: 'flotilla-inference-thread-auto-' }),
  ]);
});
after(async () => {
  await Promise.all([lab?.stop(), auto?.stop()]);
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
    const { inference } = (await api(port, 'GET', '/v1/status')).body;
    assert.deepEqual({ mode: inference.mode, thread: inference.thread, reason: inference.reason }, { mode: 'main', thread: 'main', reason: 'set to main' });
  }
  const bad = await api(port, 'POST', '/v1/predict', { features: { f0: 1 } });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'INVALID_INPUT');
  assert.match(bad.body.error.message, /f1/);
  assert.equal((await api(port, 'POST', '/v1/predict', { features: ROW })).status, 200);
});

test('default (--inference-thread auto): the MLP moves to the agent\'s thread under load, every request answered', async () => {
  const { cli, port, deviceId, dir } = auto;
  await writeFile(path.join(dir, 'v1.onnx'), gemmModel({ seed: 1 }));
  await cli('models', 'push', path.join(dir, 'v1.onnx'), '--name', 'tabular-demo');
  await cli('bundles', 'build', 'tabular-demo@1', '--def', BUNDLE_DEF);
  await cli('deploy', 'tabular-demo@1', '--device', deviceId);
  await waitFor(async () => (await auto.cp.api('GET', `/api/v1/devices/${deviceId}`)).body.updateState === 'active', 'v1 active', 60_000);
  const expected = await directLogits(gemmModel({ seed: 1 }));
  const status = async () => (await api(port, 'GET', '/v1/status')).body.inference;
  const before = await status();
  assert.equal(before.mode, 'auto');
  // 8 clients until the model has moved, then 50 requests more each: the move happens with requests in flight.
  let moved = false;
  const client = async () => {
    let after = 0;
    for (let i = 0; after < 50 && i < 1500; i++) {
      const r = await api(port, 'POST', '/v1/predict', { features: ROW });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      (r.body.outputs.logits.data as number[]).forEach((x, k) => assert.ok(Math.abs(x - expected[k]) < 1e-5, `logit ${k}: ${x} vs ${expected[k]}`));
      if (moved) after++;
      else if (i % 10 === 0) moved = (await status()).thread === 'main';
    }
  };
  await Promise.all(Array.from({ length: 8 }, client));
  const placed = await status();
  assert.equal(placed.thread, 'main', JSON.stringify(placed));
  assert.match(placed.reason, /moved to the agent's thread/);
  assert.equal(placed.runs.timed, 16);
  const d = (await auto.cp.api('GET', `/api/v1/devices/${deviceId}`)).body;
  assert.equal(d.updateState, 'active', 'the move is no failure probation sees');
});

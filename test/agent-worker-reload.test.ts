// The agent's inference worker crashes after an update: the bundle it serves was renamed from staging/
// into bundles/ at activation, and a re-signed manifest for the same files (adopt) then moved it to a
// new dir and deleted the old one. The restarted worker must load the model again and the local API keep
// answering. A real control plane (embedded MQTT), a real artifact server, real onnxruntime; the agent
// in this process with `--inference-thread worker` (the crash hook is the host's).
import assert from 'node:assert/strict';
import { readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { EngineRuntime } from '../agent/engine-adapter.ts';
import { api, waitFor, type TestBundle } from '../agent/testing/harness.ts';
import type { ReportedMessage } from '../protocol/messages/reported.ts';
import { AgentLab } from './helpers/agent-lab.ts';
import { gemmModel } from './helpers/models.ts';

let lab: AgentLab;
let bundle: TestBundle;
const reported: ReportedMessage[] = [];

before(async () => {
  lab = await AgentLab.start({ prefix: 'flotilla-agent-reload-', agent: { inferenceThread: 'worker' } });
  await lab.observe(['reported'], (_channel, msg) => reported.push(msg));
  bundle = await lab.bundle(gemmModel({ seed: 3 }));
});

after(async () => {
  await lab?.stop();
});

test('activated, then adopted under a re-signed manifest (old dir deleted), the crashed worker reloads and the local API answers', { timeout: 90_000 }, async () => {
  // The crash hook is the host's (EngineRuntime's engine is private: bracket access, for this test).
  const host = (lab.agent.runtime as EngineRuntime)['engine'].host;
  const row = [0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8];
  const predict = () => api(lab.port, 'POST', '/v1/predict', { features: row });
  const publish = (counter: number) => lab.deploy(bundle, { counter, bundleId: 'bnd_1', version: 1 });
  const activeAt = (counter: number) => waitFor(() => reported.find((r) => r.state === 'active' && r.active?.counter === counter), `counter ${counter} active`, 30_000);
  /** Crashes the worker and waits until it is back (restarted, its models reloaded or marked broken). */
  const crash = async () => {
    const before = host.stats().workers[0].crashes;
    host.simulateCrash();
    await waitFor(() => host.stats().workers[0].crashes === before + 1 && host.stats().workers[0].state === 'ready', 'the worker restarted', 20_000);
  };

  await publish(1);
  await activeAt(1);
  const first = await predict();
  assert.equal(first.status, 200, JSON.stringify(first.body));
  const logits = first.body.outputs.logits.data;
  const installed1 = path.join(lab.dataDir, await readlink(path.join(lab.dataDir, 'current')));
  assert.equal(path.basename(path.dirname(installed1)), 'bundles', 'activation moved the bundle out of staging/');

  await crash();
  const afterActivation = await predict();
  assert.equal(afterActivation.status, 200, JSON.stringify(afterActivation.body));
  assert.deepEqual(afterActivation.body.outputs.logits.data, logits);

  // The same files under a new counter: adopted (hard links into a new dir, the old dir deleted).
  await publish(2);
  await activeAt(2);
  const installed2 = path.join(lab.dataDir, await readlink(path.join(lab.dataDir, 'current')));
  assert.notEqual(installed2, installed1);
  await assert.rejects(stat(installed1), 'adopt deleted the directory the model was loaded from');

  await crash();
  const afterAdopt = await predict();
  assert.equal(afterAdopt.status, 200, JSON.stringify(afterAdopt.body));
  assert.equal(afterAdopt.body.bundle.counter, 2);
  assert.deepEqual(afterAdopt.body.outputs.logits.data, logits);
});

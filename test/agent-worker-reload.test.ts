// The agent's inference worker crashes after an update: the bundle it serves was renamed from staging/
// into bundles/ at activation, and a re-signed manifest for the same files (adopt) then moved it to a
// new dir and deleted the old one. The restarted worker must load the model again and the local API keep
// answering. A real control plane (embedded MQTT), a real artifact server, real onnxruntime; the agent
// in this process with `--inference-thread worker` (the crash hook is the host's).
import assert from 'node:assert/strict';
import { mkdtemp, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Agent } from '../agent/agent.ts';
import { parseAgentConfig } from '../agent/config.ts';
import type { EngineRuntime } from '../agent/engine-adapter.ts';
import { createAgentLogger } from '../agent/logger.ts';
import { api, ArtifactServer, buildTestBundle, TestTrust, waitFor, type TestBundle } from '../agent/testing/harness.ts';
import type { ReportedMessage } from '../protocol/messages/reported.ts';
import type { MqttClient } from 'mqtt';
import { observeDevice } from './helpers/device-observer.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

let cp: TestPlane;
let art: ArtifactServer;
let trust: TestTrust;
let agent: Agent;
let dataDir: string;
let observer: MqttClient;
let bundle: TestBundle;
const reported: ReportedMessage[] = [];

before(async () => {
  cp = await startControlPlane();
  art = new ArtifactServer();
  await art.start();
  trust = new TestTrust();
  dataDir = await mkdtemp(path.join(tmpdir(), 'flotilla-agent-reload-'));
  const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: {} })).body.token;
  const config = parseAgentConfig({
    server: cp.url,
    enrollToken: token,
    dataDir,
    apiPort: 0,
    trustRoot: trust.rootArg,
    artifactUrl: art.url,
    probationMs: 200,
    inferenceThread: 'worker',
    logLevel: process.env.FLOTILLA_TEST_LOG ?? 'silent',
  });
  agent = new Agent(config, createAgentLogger(config.logLevel));
  await agent.start();
  observer = await observeDevice(cp, agent.identity!.deviceId, ['reported'], (_channel, msg) => reported.push(msg));
  bundle = await buildTestBundle(gemmModel({ seed: 3 }));
  art.add(bundle.model.bytes);
  art.add(bundle.bundleJson.bytes);
});

after(async () => {
  await observer?.endAsync();
  await agent?.stop();
  await art?.stop();
  await cp?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

test('activated, then adopted under a re-signed manifest (old dir deleted), the crashed worker reloads and the local API answers', { timeout: 90_000 }, async () => {
  const deviceId = agent.identity!.deviceId;
  const port = agent.api!.port;
  // The crash hook is the host's (EngineRuntime's engine is private: bracket access, for this test).
  const host = (agent.runtime as EngineRuntime)['engine'].host;
  const row = [0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8];
  const predict = () => api(port, 'POST', '/v1/predict', { features: row });
  const publish = (counter: number) => cp.plane.bus.publish(deviceId, 'desired', trust.desired(trust.bundleManifest(deviceId, bundle, { counter, bundleId: 'bnd_1', version: 1 })), { retain: true });
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
  const installed1 = path.join(dataDir, await readlink(path.join(dataDir, 'current')));
  assert.equal(path.basename(path.dirname(installed1)), 'bundles', 'activation moved the bundle out of staging/');

  await crash();
  const afterActivation = await predict();
  assert.equal(afterActivation.status, 200, JSON.stringify(afterActivation.body));
  assert.deepEqual(afterActivation.body.outputs.logits.data, logits);

  // The same files under a new counter: adopted (hard links into a new dir, the old dir deleted).
  await publish(2);
  await activeAt(2);
  const installed2 = path.join(dataDir, await readlink(path.join(dataDir, 'current')));
  assert.notEqual(installed2, installed1);
  await assert.rejects(stat(installed1), 'adopt deleted the directory the model was loaded from');

  await crash();
  const afterAdopt = await predict();
  assert.equal(afterAdopt.status, 200, JSON.stringify(afterAdopt.body));
  assert.equal(afterAdopt.body.bundle.counter, 2);
  assert.deepEqual(afterAdopt.body.outputs.logits.data, logits);
});

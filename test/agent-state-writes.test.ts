// How often one update writes the agent's state file (each write an atomic replace: temp file, fsync,
// rename, directory fsync; on a gateway, flash writes). Intermediate phases ride with the next write and
// verdicts with their terminal transition, so an update from desired to active writes it twice: the
// probation record before the bundle is installed, and the verdict with `active` (it was nine writes).
// Real control plane, real MQTT, real onnxruntime, the agent in this process.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent } from '../agent/agent.ts';
import { parseAgentConfig } from '../agent/config.ts';
import { createAgentLogger } from '../agent/logger.ts';
import { STATE_FILE } from '../agent/state-store.ts';
import { ArtifactServer, buildTestBundle, TestTrust, waitFor, type TestBundle } from '../agent/testing/harness.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

describe('agent: state file writes per update', { timeout: 90_000 }, () => {
  let cp: TestPlane;
  let art: ArtifactServer;
  let trust: TestTrust;
  let agent: Agent;
  let dataDir: string;
  let deviceId: string;
  let A: TestBundle;
  let B: TestBundle;

  const deploy = (bundle: TestBundle, counter: number) => cp.plane.bus.publish(deviceId, 'desired', trust.desired(trust.bundleManifest(deviceId, bundle, { counter })), { retain: true });
  const saved = async () => JSON.parse(await readFile(path.join(dataDir, STATE_FILE), 'utf8'));
  /** Until state.json itself says `active` for this counter (the write has landed, not only begun). */
  const activeAt = (counter: number) =>
    waitFor(async () => {
      const last = (await saved().catch(() => null))?.transitions.at(-1);
      return last?.state === 'active' && last.counter === counter;
    }, `counter ${counter} active on disk`, 30_000);

  before(async () => {
    cp = await startControlPlane();
    art = new ArtifactServer();
    await art.start();
    trust = new TestTrust();
    dataDir = await mkdtemp(path.join(tmpdir(), 'flotilla-agent-writes-'));
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: {} } })).body.token;
    // Monitoring messages take a state write each (their seq): none within this test.
    const config = parseAgentConfig({ server: cp.url, enrollToken: token, dataDir, apiPort: 0, trustRoot: trust.rootArg, artifactUrl: art.url, probationMs: 200, telemetryIntervalS: 3600, statsWindowS: 86_400, logLevel: process.env.FLOTILLA_TEST_LOG ?? 'silent' });
    agent = new Agent(config, createAgentLogger(config.logLevel));
    await agent.start();
    deviceId = agent.identity!.deviceId;
    A = await buildTestBundle(gemmModel({ seed: 1 }));
    B = await buildTestBundle(gemmModel({ seed: 2 }));
    for (const b of [A, B]) {
      art.add(b.model.bytes);
      art.add(b.bundleJson.bytes);
    }
  });

  after(async () => {
    await agent?.stop();
    await art?.stop();
    await cp?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  test('desired → active writes state.json twice, and every phase is on disk at the end', async () => {
    await deploy(A, 1); // the first one also stores the key list
    await activeAt(1);
    const before = agent.state!.writes;
    await deploy(B, 2);
    await activeAt(2);
    assert.equal(agent.state!.writes - before, 2, 'state.json writes for one update');
    const s = await saved();
    const phases = s.transitions.filter((t: { counter?: number }) => t.counter === 2).map((t: { state: string }) => t.state);
    assert.deepEqual(phases, ['downloading', 'verifying', 'staging', 'activating', 'probation', 'active']);
    assert.equal(s.highWaterCounter, 2);
    assert.equal(s.probation, null);
    assert.equal(s.handled.at(-1).outcome, 'active');
  });

  test('a refused manifest writes it once (verdict and `failed` together)', async () => {
    const before = agent.state!.writes;
    // Counter 1 again (below the floor, a new manifest: another expiry): refused as a rollback.
    await cp.plane.bus.publish(deviceId, 'desired', trust.desired(trust.bundleManifest(deviceId, A, { counter: 1, expiresAt: new Date(Date.now() + 7200e3) })), { retain: true });
    const s = await waitFor(async () => {
      const d = await saved();
      return d.transitions.at(-1)?.state === 'failed' ? d : undefined;
    }, 'refusal on disk', 15_000);
    assert.equal(agent.state!.writes - before, 1);
    assert.equal(s.handled.at(-1).counter, 1);
  });
});

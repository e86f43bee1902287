// A newer key list is trusted in memory and written at once, but a desired message's verdict does not
// wait for that write (issue 16: in a simulator's 10,000-device fan-out the fsynced replace queued behind
// every other device's file operations and held each device's verification). What stays strict: nothing
// irreversible happens before a durable write that holds the key list — no bundle is installed while it
// is held, and a refusal's verdict carries it. State writes are held here by gating the agent's own
// StateStore (a slow disk); real control plane, real MQTT, real onnxruntime, the agent in this process.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent } from '../agent/agent.ts';
import { parseAgentConfig } from '../agent/config.ts';
import { createAgentLogger } from '../agent/logger.ts';
import { STATE_FILE, type AgentState } from '../agent/state-store.ts';
import { ArtifactServer, buildTestBundle, TestTrust, waitFor, type TestBundle } from '../agent/testing/harness.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

describe('agent: the key list write does not hold the verdict', { timeout: 240_000 }, () => {
  let cp: TestPlane;
  let art: ArtifactServer;
  let trust: TestTrust;
  let agent: Agent;
  let dataDir: string;
  let deviceId: string;
  let A: TestBundle;
  /** Set while state writes are held: update() applies the change in memory, then waits for release. */
  let held: { release: () => void; done: Promise<void> } | null = null;

  const saved = async (): Promise<AgentState> => JSON.parse(await readFile(path.join(dataDir, STATE_FILE), 'utf8'));
  const holdWrites = () => {
    let release!: () => void;
    held = { release: () => release(), done: new Promise<void>((r) => (release = r)) };
  };

  before(async () => {
    cp = await startControlPlane();
    art = new ArtifactServer();
    await art.start();
    trust = new TestTrust();
    dataDir = await mkdtemp(path.join(tmpdir(), 'flotilla-agent-keylist-'));
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: {} } })).body.token;
    const config = parseAgentConfig({ server: cp.url, enrollToken: token, dataDir, apiPort: 0, trustRoot: trust.rootArg, artifactUrl: art.url, probationMs: 200, telemetryIntervalS: 3600, statsWindowS: 86_400, logLevel: process.env.FLOTILLA_TEST_LOG ?? 'silent' });
    agent = new Agent(config, createAgentLogger(config.logLevel));
    await agent.start();
    deviceId = agent.identity!.deviceId;
    const store = agent.state!;
    const update = store.update.bind(store);
    store.update = async (change) => {
      if (!held) return update(change);
      store.note(change); // in memory now, as update() does
      await held.done;
      return update(() => {});
    };
    A = await buildTestBundle(gemmModel({ seed: 1 }));
    art.add(A.model.bytes);
    art.add(A.bundleJson.bytes);
  });

  after(async () => {
    held?.release();
    await agent?.stop();
    await art?.stop();
    await cp?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  test('the first manifest is verified and its download starts while the key list is not on disk yet; nothing is installed until it is', async () => {
    holdWrites();
    try {
      await cp.plane.bus.publish(deviceId, 'desired', trust.desired(trust.bundleManifest(deviceId, A, { counter: 1 })), { retain: true });
      await waitFor(() => agent.reporter!.desiredCounter === 1, 'manifest 1 accepted while the key list write is held', 60_000);
      // The update goes on to its first durable write (the probation record before installing) and waits there.
      await waitFor(() => agent.reporter!.current === 'activating', 'update waiting to install', 60_000);
      assert.equal(agent.state!.get().keylist?.signed.version, 1, 'trusted in memory');
      assert.equal((await saved().catch(() => null))?.keylist ?? null, null, 'not on disk yet');
      assert.equal(existsSync(path.join(dataDir, 'current')), false, 'nothing installed before the key list is on disk');
    } finally {
      held!.release();
      held = null;
    }
    await waitFor(async () => (await saved().catch(() => null))?.transitions.at(-1)?.state === 'active', 'active on disk', 60_000);
    assert.equal((await saved()).keylist?.signed.version, 1);
  });

  test('a refused manifest that brings a newer key list records the list with its verdict', async () => {
    trust.rotate();
    // Another device's manifest under key list v2: refused (WRONG_DEVICE), the list is still kept.
    await cp.plane.bus.publish(deviceId, 'desired', trust.desired(trust.bundleManifest('dev_someoneelse', A, { counter: 2 })), { retain: true });
    const s = await waitFor(async () => {
      const d = await saved().catch(() => null);
      return d?.transitions.at(-1)?.state === 'failed' ? d : undefined;
    }, 'refusal on disk', 60_000);
    assert.equal(s.lastError?.code, 'WRONG_DEVICE');
    assert.equal(s.keylist?.signed.version, 2, 'the newer list is on disk with the verdict');
  });
});

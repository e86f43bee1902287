// The agent against the real release path of the server: keys set up through the API (root-signed
// key list), enrollment with manual approval (MQTT refused until approved, retried with backoff),
// trust on first use of the announced root, a bundle built and deployed by the server and fetched
// from the server's own /artifacts route (Basic auth, per-device ACL); a restart without the token.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent } from '../agent/agent.ts';
import { parseAgentConfig, type AgentConfig } from '../agent/config.ts';
import { createAgentLogger } from '../agent/logger.ts';
import { api, REPO, waitFor } from '../agent/testing/harness.ts';
import { createKeyList, signKeyList } from '../firmware-bundles/key-list.ts';
import { generateKeyPair } from '../firmware-bundles/keys.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

describe('agent: enrollment, approval and the server release path', { timeout: 90_000 }, () => {
  let cp: TestPlane;
  let dataDir: string;
  let config: AgentConfig;
  let agent: Agent | undefined;
  const root = generateKeyPair();

  before(async () => {
    cp = await startControlPlane();
    dataDir = await mkdtemp(path.join(tmpdir(), 'flotilla-agent-enroll-'));
    // `flotilla keys init`, done through the API: a server-held release key named by a key list the
    // (offline) root signed.
    const release = await cp.api('POST', '/api/v1/keys/release');
    assert.equal(release.status, 201, JSON.stringify(release.body));
    const list = createKeyList({ version: 1, root, keys: [release.body], expiresAt: new Date(Date.now() + 86_400_000 * 30) });
    const put = await cp.api('PUT', '/api/v1/keys/keylist', { json: signKeyList(list, root.privateKeyPem) });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lab' }, autoApprove: false } })).body.token;
    config = parseAgentConfig({
      server: cp.url,
      enrollToken: token,
      dataDir,
      apiPort: 0,
      name: 'gateway-7',
      reconnectMinMs: 50,
      reconnectMaxMs: 300,
      probationMs: 200,
      logLevel: process.env.FLOTILLA_TEST_LOG ?? 'silent',
    });
  });

  after(async () => {
    await agent?.stop();
    await cp?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  test('a pending device retries MQTT with backoff and connects once approved; TOFU pins the announced root', async () => {
    agent = new Agent(config, createAgentLogger(config.logLevel));
    await agent.start();
    const id = agent.identity!;
    assert.equal(id.trust?.keyid, root.keyid);
    assert.equal(id.trust?.source, 'tofu');
    assert.equal((await stat(path.join(dataDir, 'identity.json'))).mode & 0o777, 0o600);
    const device = await cp.api('GET', `/api/v1/devices/${id.deviceId}`);
    assert.equal(device.body.status, 'pending');
    assert.equal(device.body.name, 'gateway-7');
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(agent.session!.connected, false, 'refused while pending');
    assert.equal(agent.session!.connections, 0);
    const approved = await cp.api('POST', `/api/v1/devices/${id.deviceId}/approve`);
    assert.equal(approved.status, 200);
    await waitFor(() => agent!.session!.connected, 'connected after approval', 5000);
  });

  test('a bundle the server builds and deploys is fetched from /artifacts and served', async () => {
    const deviceId = agent!.identity!.deviceId;
    const up = await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel({ seed: 3 }) as BodyInit, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(up.status, 201, JSON.stringify(up.body));
    const { definition, labels } = await loadBundleDefinition(path.join(REPO, 'firmware-bundles', 'tabular-demo', 'bundle.json'));
    const built = await cp.api('POST', '/api/v1/bundles', { json: { model: 'tab@1', definition, labels } });
    assert.equal(built.status, 201, JSON.stringify(built.body));
    const t0 = Date.now();
    const dep = await cp.api('POST', '/api/v1/deployments', { json: { bundle: built.body.id, device: deviceId } });
    assert.equal(dep.status, 201, JSON.stringify(dep.body));
    const port = agent!.api!.port;
    await waitFor(async () => (await api(port, 'GET', '/v1/status')).body.update.state === 'active', 'active', 15_000);
    console.log(`# server deploy → agent active (real /artifacts, 200 ms probation): ${Date.now() - t0} ms`);
    const p = await api(port, 'POST', '/v1/predict', { features: { f0: 1, f1: 2, f2: 3, f3: 4, f4: 5, f5: 6, f6: 7, f7: 8 } });
    assert.equal(p.status, 200, JSON.stringify(p.body));
    assert.equal(p.body.bundle.id, built.body.id);
    assert.equal(p.body.bundle.model.name, 'tab');
    assert.deepEqual(p.body.predictions.map((x: { label: string }) => x.label).sort(), ['high', 'low', 'medium']);
    const shown = await waitFor(async () => {
      const d = await cp.api('GET', `/api/v1/devices/${deviceId}`);
      return d.body.reported?.state === 'active' ? d.body : null;
    }, 'server sees reported active');
    assert.equal(shown.reported.active.bundleId, built.body.id);
  });

  test('a restart needs no token: the identity and the active bundle are reused before MQTT is up', async () => {
    const before = agent!.identity!;
    await agent!.stop();
    const { enrollToken: _t, server: _s, ...rest } = config;
    agent = new Agent({ ...rest }, createAgentLogger(config.logLevel));
    await agent.start();
    assert.equal(agent.identity!.deviceId, before.deviceId);
    const s = await api(agent.api!.port, 'GET', '/v1/status');
    assert.equal(s.body.active.counter, 1);
    const p = await api(agent.api!.port, 'POST', '/v1/predict', { features: [[1, 2, 3, 4, 5, 6, 7, 8]] });
    assert.equal(p.status, 200);
    const devices = await cp.api('GET', '/api/v1/devices');
    assert.equal(devices.body.devices.length, 1, 'no second enrollment');
    const identity = JSON.parse(await readFile(path.join(dataDir, 'identity.json'), 'utf8'));
    assert.equal(identity.trust.keyid, root.keyid);
  });
});

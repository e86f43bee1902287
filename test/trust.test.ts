// Only signed metadata changes what a device runs (issue 11), attacked as an outsider would: a real
// control plane, a real agent process, and a rogue MQTT broker started here that lets anyone in.
// Unsigned commands from it cannot roll the device back; a signed rollback through the API can; a
// probation rollback leaves the device on a bundle a signed manifest names (and the server shows the
// stale desired state); a server restored from an older database snapshot converges with one deployment.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { AgentProcess, api, freePort, waitFor } from '../agent/testing/harness.ts';
import { createKeyList, signKeyList } from '../firmware-bundles/key-list.ts';
import { generateKeyPair } from '../firmware-bundles/keys.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { ControlPlane } from '../server/control-plane.ts';
import { createLogger } from '../server/logger.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { batchOneOnlyModel, gemmModel } from './helpers/models.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo', 'bundle.json');
const ROW = [0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8];

/** A broker that lets anyone in and can publish anything: what a rogue or misconfigured broker does. */
async function rogueBroker() {
  const broker = await Aedes.createBroker();
  const server: Server = createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client: MqttClient = await mqtt.connectAsync(url, { clientId: 'attacker', reconnectPeriod: 0 });
  return {
    url,
    broker,
    client,
    async stop() {
      await client.endAsync();
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('trust: only signed metadata changes what runs', { timeout: 240_000 }, () => {
  let cp: TestPlane;
  let dir: string;
  let agent: AgentProcess;
  let agentDir: string;
  let apiPort: number;
  let deviceId: string;
  const bundles: Record<string, string> = {};

  const device = async () => (await cp.api('GET', `/api/v1/devices/${deviceId}`)).body;
  const deploy = async (bundle: string) => {
    const r = await cp.api('POST', '/api/v1/deployments', { json: { bundle, device: deviceId } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  };
  const activeOn = (bundle: string, what: string, ms = 45_000) =>
    waitFor(async () => {
      const d = await device();
      return d.updateState === 'active' && d.reported?.active?.bundleId === bundle ? d : undefined;
    }, what, ms).catch(async (err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify((await device()).reported)}\n${agent.output.slice(-3000)}`);
    });
  const serving = async () => (await api(apiPort, 'POST', '/v1/predict', { features: ROW })).body.bundle;
  const startAgent = (first: string[] = []) =>
    new AgentProcess(
      [...first, '--data-dir', agentDir, '--api-port', String(apiPort), '--probation-ms', '400', '--probation-min-requests', '3', '--probation-max-error-rate', '0.5', '--reconnect-min-ms', '100', '--reconnect-max-ms', '1000'],
      { FLOTILLA_AGENT_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'info' },
    ).start();

  before(async () => {
    // Fixed ports: the restored control plane must come back where the agent knows it.
    cp = await startControlPlane({ httpPort: await freePort(), mqttPort: await freePort(), desiredStaleAfterS: 2 });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-trust-'));
    // keys init, as the CLI does it: the root stays here, the server holds the release key.
    const root = generateKeyPair();
    const release = (await cp.api('POST', '/api/v1/keys/release')).body;
    const list = createKeyList({ version: 1, root, keys: [release], threshold: 1, expiresAt: new Date(Date.now() + 365 * 86_400_000) });
    assert.equal((await cp.api('PUT', '/api/v1/keys/keylist', { json: signKeyList(list, root.privateKeyPem) })).status, 200);
    const { definition, labels } = await loadBundleDefinition(BUNDLE_DEF);
    const models: Array<[string, Uint8Array]> = [['good1', gemmModel({ seed: 1 })], ['good2', gemmModel({ seed: 2 })], ['bad', batchOneOnlyModel()]];
    for (const [i, [name, bytes]] of models.entries()) {
      assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: bytes as BodyInit })).status, 201);
      const b = await cp.api('POST', '/api/v1/bundles', { json: { model: `tab@${i + 1}`, definition, labels } });
      assert.equal(b.status, 201, JSON.stringify(b.body));
      bundles[name] = b.body.id;
    }
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lab' } } })).body.token;
    agentDir = path.join(dir, 'agent');
    apiPort = await freePort();
    agent = startAgent(['--server', cp.url, '--enroll-token', token, '--trust-root', root.publicKey]);
    deviceId = await waitFor(async () => (await cp.api('GET', '/api/v1/devices')).body.devices.find((d: { online: boolean }) => d.online)?.id, 'agent online', 60_000);
    await deploy(bundles.good1);
    await activeOn(bundles.good1, 'active on good1');
    await deploy(bundles.good2);
    await activeOn(bundles.good2, 'active on good2');
  });

  after(async () => {
    await agent?.stop();
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a rogue broker: unsigned rollback refused, replayed id and expired command dropped; the device keeps its signed bundle', async () => {
    const rogue = await rogueBroker();
    const identityFile = path.join(agentDir, 'identity.json');
    const identity = JSON.parse(await readFile(identityFile, 'utf8'));
    const realUrl = identity.mqtt.url;
    try {
      await agent.stop();
      await writeFile(identityFile, JSON.stringify({ ...identity, mqtt: { ...identity.mqtt, url: rogue.url } }), { mode: 0o600 });
      agent = startAgent();
      const replies: Array<{ id: string; status: string; error?: { code: string } }> = [];
      rogue.client.on('message', (_t, p) => replies.push(JSON.parse(p.toString())));
      await rogue.client.subscribeAsync(deviceTopic(deviceId, 'cmd/res'), { qos: 1 });
      await waitFor(() => Object.keys((rogue.broker as unknown as { clients: Record<string, unknown> }).clients).includes(deviceId), 'agent connected to the rogue broker', 60_000);
      await new Promise((r) => setTimeout(r, 300)); // its subscriptions are in place
      const send = (cmd: Record<string, unknown>) => rogue.client.publishAsync(deviceTopic(deviceId, 'cmd'), JSON.stringify({ v: 1, args: {}, expiresAt: new Date(Date.now() + 60_000).toISOString(), ...cmd }), { qos: 1 });
      await send({ id: 'evil-rollback', command: 'rollback' });
      const refused = await waitFor(() => replies.find((r) => r.id === 'evil-rollback'), 'answer to the unsigned rollback');
      assert.equal(refused.status, 'error');
      assert.equal(refused.error!.code, 'SIGNED_ONLY');
      assert.equal((await serving()).id, bundles.good2, 'still serving the signed bundle');
      // The same id twice: answered once. An expired command: not answered at all.
      await send({ id: 'ping-once', command: 'ping' });
      await send({ id: 'ping-once', command: 'ping' });
      await send({ id: 'too-late', command: 'ping', expiresAt: new Date(Date.now() - 1000).toISOString() });
      await send({ id: 'marker', command: 'ping' });
      await waitFor(() => replies.find((r) => r.id === 'marker'), 'marker ping answered');
      assert.equal(replies.filter((r) => r.id === 'ping-once').length, 1, 'a replayed id is refused');
      assert.ok(!replies.some((r) => r.id === 'too-late'), 'an expired command is dropped');
      const status = (await api(apiPort, 'GET', '/v1/status')).body;
      assert.equal(status.update.droppedCommandsBy.replayed, 1);
      assert.equal(status.update.droppedCommandsBy.expired, 1);
      // Back on the real control plane: still on the signed bundle, not rolled back.
      await agent.stop();
      await writeFile(identityFile, JSON.stringify({ ...identity, mqtt: { ...identity.mqtt, url: realUrl } }), { mode: 0o600 });
      agent = startAgent();
      await waitFor(async () => (await device()).online, 'back online on the real broker', 60_000);
      assert.equal((await serving()).id, bundles.good2);
      assert.equal((await activeOn(bundles.good2, 'still active on good2')).reported.active.counter, 2);
    } finally {
      await rogue.stop();
    }
  });

  test('a signed rollback through the API: next counter for the previous bundle, audited with who asked, installed by the device', async () => {
    const r = await cp.api('POST', `/api/v1/devices/${deviceId}/rollback`, { json: { reason: 'bad accuracy' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.from, bundles.good2);
    assert.equal(r.body.to, bundles.good1);
    assert.equal(r.body.counter, 3);
    const d = await activeOn(bundles.good1, 'rolled back to good1');
    assert.equal(d.reported.active.counter, 3);
    assert.equal((await serving()).id, bundles.good1);
    const audit = (await cp.api('GET', '/api/v1/audit?action=device.rollback')).body.entries;
    assert.equal(audit[0].target, deviceId);
    assert.equal(audit[0].details.to, bundles.good1);
    assert.equal(audit[0].details.reason, 'bad accuracy');
    assert.match(audit[0].actor, /\S/);
    const deps = (await cp.api('GET', '/api/v1/deployments')).body.deployments;
    assert.equal(deps[0].id, r.body.deploymentId, 'recorded as a deployment');
    // A device without a previous bundle cannot be rolled back: a clear 409.
    const other = (await cp.api('POST', '/api/v1/devices/dev_nothere00/rollback')).status;
    assert.equal(other, 404);
  });

  test('probation rollback: the device ends on a bundle a signed manifest names, does not loop, and the server shows the stale desired state', async () => {
    let stop = false;
    const traffic = (async () => {
      while (!stop) {
        const r = await api(apiPort, 'POST', '/v1/predict', { features: [ROW, ROW] }).catch(() => null);
        if (!r || r.status !== 200) await new Promise((res) => setTimeout(res, 10));
      }
    })();
    let failedCounter = 0;
    try {
      await deploy(bundles.bad);
      failedCounter = (await device()).desired.counter;
      await waitFor(async () => {
        const d = await device();
        return d.updateState === 'rolled_back' && d.reported?.lastError?.counter === failedCounter;
      }, 'probation rollback', 60_000);
    } finally {
      stop = true;
      await traffic;
    }
    const d = await device();
    assert.equal(d.reported.lastError.code, 'PROBATION_FAILED');
    assert.equal(d.reported.active.bundleId, bundles.good1);
    assert.equal(d.reported.active.counter, 3, 'on the bundle of the signed rollback manifest (counter 3)');
    // The manifest the device now runs under is the signed, unexpired one the server issued for it.
    const onDisk = JSON.parse(await readFile(path.join(agentDir, 'current', 'manifest.json'), 'utf8')).signed;
    assert.equal(onDisk.counter, 3);
    assert.equal(onDisk.deviceId, deviceId);
    assert.ok(Date.parse(onDisk.expiresAt) > Date.now());
    // Redelivered (reconnect), the failed manifest stays refused: no second attempt.
    await (cp.plane as unknown as { broker: { disconnect(id: string): Promise<void> } }).broker.disconnect(deviceId);
    await waitFor(async () => (await device()).online, 'reconnected', 30_000);
    await new Promise((r) => setTimeout(r, 1000));
    const transitions = ((await api(apiPort, 'GET', '/v1/status')).body.update.transitions as Array<{ state: string; counter?: number }>).filter((t) => t.counter === failedCounter);
    assert.equal(transitions.filter((t) => t.state === 'downloading').length, 1, JSON.stringify(transitions));
    // Desired (bad) and active (good1) disagree past FLOTILLA_DESIRED_STALE_AFTER_S (2 s here): shown and re-published.
    const stale = await waitFor(async () => (await device()).desiredStale, 'stale desired shown', 30_000);
    assert.ok(stale.since && stale.republishedAt);
    const listed = (await cp.api('GET', '/api/v1/devices')).body.devices.find((x: { id: string }) => x.id === deviceId);
    assert.ok(listed.desiredStale);
    assert.equal((await cp.api('GET', '/api/v1/deployments')).body.deployments[0].staleDevices, 1);
    const metrics = await (await fetch(`${cp.url}/metrics`)).text();
    assert.match(metrics, /^flotilla_devices_desired_stale 1$/m);
    // A newer signed manifest converges the device and clears the stale mark.
    await deploy(bundles.good2);
    await activeOn(bundles.good2, 'converged on good2');
    await waitFor(async () => (await device()).desiredStale === null, 'stale mark cleared', 30_000);
  });

  test('restored from an older database snapshot: the server learns the device counter, shows the unknown bundle, and ONE deployment converges', async () => {
    const dbFile = path.join(cp.dataDir, 'flotilla.db');
    const snapshot = path.join(dir, 'snapshot.db');
    const config = cp.plane.config;
    const restart = async () => {
      const next = new ControlPlane(config, createLogger(process.env.FLOTILLA_TEST_LOG ?? 'silent'));
      await next.start();
      cp.plane = next;
    };
    // Backup while stopped (consistent file), then more deployments the snapshot will not know about.
    await cp.plane.stop();
    const copyDb = async (from: string, to: string) => {
      // The database is the file and its write-ahead log: copied together while the server is stopped.
      for (const suffix of ['', '-wal']) {
        await rm(to + suffix, { force: true });
        await copyFile(from + suffix, to + suffix).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
      }
      await rm(to + '-shm', { force: true });
    };
    await copyDb(dbFile, snapshot);
    await restart();
    const snapCounter = (await device()).desired.counter;
    const { definition, labels } = await loadBundleDefinition(BUNDLE_DEF);
    const newer = (await cp.api('POST', '/api/v1/bundles', { json: { model: 'tab@1', definition: { ...definition, name: 'tabular-newer' }, labels } })).body.id;
    await deploy(bundles.good1);
    await activeOn(bundles.good1, 'active on good1 after the snapshot');
    await deploy(newer);
    const ran = await activeOn(newer, 'active on a bundle built after the snapshot');
    const highest = ran.reported.active.counter;
    assert.equal(highest, snapCounter + 2);

    // Restore the snapshot (database only; the artifact store kept its newer files) and restart.
    await cp.plane.stop();
    await copyDb(snapshot, dbFile);
    await restart();
    const seen = await waitFor(async () => {
      const d = await device();
      return d.online && d.reported?.highestCounter >= highest ? d : undefined;
    }, 'device reports its highest counter to the restored server', 30_000);
    assert.equal(seen.desired.counter, snapCounter, 'the restored server is behind');
    assert.equal(seen.activeBundleKnown, false, 'the active bundle is unknown to the restored server');
    assert.match(await (await fetch(`${cp.url}/metrics`)).text(), /^flotilla_devices_active_bundle_unknown 1$/m);
    assert.equal((await serving()).id, newer, 'the old desired state republished at start was refused (a rollback)');

    // ONE deployment: signed above what the device reported, so it is accepted.
    await deploy(bundles.good2);
    const d = await activeOn(bundles.good2, 'converged with one deployment');
    assert.equal(d.reported.active.counter, highest + 1);
    assert.equal(d.activeBundleKnown, true);
    const raised = (await cp.api('GET', '/api/v1/audit?action=device.counter.raise')).body.entries;
    assert.equal(raised[0].target, deviceId);
    assert.equal(raised[0].details.stored, snapCounter);
    assert.equal(raised[0].details.reported, highest);
  });
});

// Desired-state fan-out on both brokers: the embedded one takes the server's messages straight in (no
// client round trip), an external Mosquitto through the server's client, pipelined. Either way each
// device gets its own signed manifest with its own counter, as the exact bytes that are stored (what a
// restart publishes again), live to a connected device and retained to one that subscribes later.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { waitFor } from '../agent/testing/harness.ts';
import type { KeyList } from '../firmware-bundles/key-list.ts';
import { verifyManifest } from '../firmware-bundles/manifest.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { storedDesiredPayloads } from '../server/deployments/stored-desired.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { mosquittoSkip, startMosquitto, type TestMosquitto } from './helpers/mosquitto.ts';
import { tabVersions, trustReleaseKey } from './helpers/rollout-lab.ts';

const FACTS = { arch: 'arm64', cpus: 4, memoryBytes: 4 * 1024 ** 3, os: 'linux 6.1', agentVersion: '0.1.0' };
const DEVICES = 24;
const LIVE = 16;

for (const broker of ['embedded', 'mosquitto'] as const) {
  describe(`desired-state fan-out on the ${broker} broker`, { skip: broker === 'mosquitto' ? mosquittoSkip() : false }, () => {
    let cp: TestPlane | undefined;
    let mosq: TestMosquitto | undefined;
    const clients: MqttClient[] = [];
    after(async () => {
      for (const c of clients) c.end(true);
      await cp?.stop();
      await mosq?.stop();
    });

    test('every device gets its own signed manifest as the stored bytes, live or retained; the next deployment reaches all with the next counter', async () => {
      if (broker === 'mosquitto') mosq = await startMosquitto();
      cp = await startControlPlane(
        mosq
          ? { externalMqttUrl: mosq.url, externalBroker: { username: 'flotilla-server', password: randomBytes(16).toString('base64url'), admin: mosq.admin, clientId: `flotilla-fanout-${randomBytes(3).toString('hex')}`, sessionExpiryS: 300 } }
          : {},
      );
      const plane = cp;
      await trustReleaseKey(plane);
      const [b1, b2] = await tabVersions(plane, 2);
      assert.equal((await plane.api('POST', '/api/v1/cohorts', { json: { name: 'fan', selector: 'site=fan' } })).status, 201);
      const token = (await plane.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'fan' } } })).body.token as string;
      const devices: Array<{ id: string; password: string; got: string[] }> = [];
      for (let i = 0; i < DEVICES; i++) {
        const r = await plane.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        devices.push({ id: r.body.deviceId, password: r.body.mqtt.password, got: [] });
      }
      const connect = async (d: (typeof devices)[number]) => {
        const c = await mqtt.connectAsync(plane.mqttUrl, { clientId: d.id, username: d.id, password: d.password, reconnectPeriod: 0, connectTimeout: 10_000 });
        clients.push(c);
        c.on('error', () => {});
        c.on('message', (_t, payload) => d.got.push(payload.toString('utf8')));
        await c.subscribeAsync(deviceTopic(d.id, 'desired'), { qos: 1 });
      };
      // Each message: exactly the stored bytes, and a manifest that verifies for this device only, at `counter`.
      const check = async (d: (typeof devices)[number], bundle: string, counter: number) => {
        const text = d.got.at(-1)!;
        const [stored] = await storedDesiredPayloads(plane.plane.db, [d.id]);
        assert.equal(text, stored.payload, `${d.id}: the published bytes are the stored ones`);
        const msg = JSON.parse(text) as { keylist: { signed: KeyList }; manifest: { signed: { bundle: { id: string }; counter: number; deviceId: string }; signatures: Array<{ sig: string }> } };
        assert.equal(msg.manifest.signed.deviceId, d.id);
        assert.equal(msg.manifest.signed.counter, counter);
        assert.equal(msg.manifest.signed.bundle.id, bundle);
        const ok = verifyManifest(msg.manifest, { keylist: msg.keylist.signed, deviceId: d.id, cohort: 'fan', activeCounter: counter - 1, agentVersion: '0.1.0', now: new Date() });
        assert.ok(ok.ok, JSON.stringify(ok));
        const other = devices.find((o) => o.id !== d.id)!.id;
        assert.equal(verifyManifest(msg.manifest, { keylist: msg.keylist.signed, deviceId: other, cohort: 'fan', activeCounter: null, agentVersion: '0.1.0', now: new Date() }).ok, false, 'not valid for another device');
        return msg.manifest.signatures[0].sig;
      };

      const live = devices.slice(0, LIVE);
      for (const d of live) await connect(d);
      assert.equal((await plane.api('POST', '/api/v1/deployments', { json: { bundle: b1, cohort: 'fan' } })).status, 201);
      await waitFor(() => live.every((d) => d.got.length >= 1), 'every connected device got the first deployment', 30_000, 50);
      const sigs = new Set<string>();
      for (const d of live) sigs.add(await check(d, b1, 1));
      // Devices that connect afterwards find it retained.
      const later = devices.slice(LIVE);
      for (const d of later) await connect(d);
      await waitFor(() => later.every((d) => d.got.length >= 1), 'every later device got the retained deployment', 30_000, 50);
      for (const d of later) sigs.add(await check(d, b1, 1));
      assert.equal(sigs.size, DEVICES, 'one signature per device: each manifest is its own');

      assert.equal((await plane.api('POST', '/api/v1/deployments', { json: { bundle: b2, cohort: 'fan' } })).status, 201);
      await waitFor(() => devices.every((d) => d.got.at(-1)?.includes(`"counter":2`)), 'every device got the second deployment', 30_000, 50);
      for (const d of devices) await check(d, b2, 2);
    });
  });
}

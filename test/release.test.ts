// The server's release path: keys init/rotate (CLI, offline root), bundle builds, signed per-device
// desired state over real MQTT, Range artifact downloads, late joiners, guarded deletion.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { verifyKeyList } from '../firmware-bundles/key-list.ts';
import { verifyManifest } from '../firmware-bundles/manifest.ts';
import { DesiredMessage } from '../protocol/messages/desired.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };
const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');

/** A device-side MQTT client that collects its retained/new desired messages. */
async function desiredWatcher(url: string, id: string, password: string) {
  const client = await mqtt.connectAsync(url, { clientId: id, username: id, password, reconnectPeriod: 0 });
  const messages: DesiredMessage[] = [];
  client.on('message', (_t, payload) => messages.push(DesiredMessage.parse(JSON.parse(payload.toString()))));
  await client.subscribeAsync(deviceTopic(id, 'desired'), { qos: 1 });
  return {
    client,
    messages,
    async next(count: number): Promise<DesiredMessage> {
      for (let i = 0; i < 200 && messages.length < count; i++) await new Promise((r) => setTimeout(r, 25));
      assert.ok(messages.length >= count, `expected ${count} desired messages, got ${messages.length}`);
      return messages[count - 1];
    },
  };
}

describe('release path (server side)', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  let enrollToken: string;
  const clients: MqttClient[] = [];
  const devices: Array<{ deviceId: string; mqtt: { password: string }; trust: { rootKeyid: string; rootPublicKey: string } | null }> = [];

  before(async () => {
    cp = await startControlPlane();
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-release-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    enrollToken = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lab' } } })).body.token;
  });
  after(async () => {
    for (const c of clients) c.end(true);
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const enroll = async () => {
    const r = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: enrollToken, facts: FACTS } });
    assert.equal(r.status, 201);
    devices.push(r.body);
    return r.body as (typeof devices)[number];
  };

  test('deploying before keys exist is a clear 409', async () => {
    await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel() as BodyInit });
    const d = await enroll();
    assert.equal(d.trust, null);
    const built = await runCli(['--json', 'bundles', 'build', 'tab@1', '--def', BUNDLE_DEF], env);
    assert.equal(built.code, 0, built.stderr);
    const res = await cp.api('POST', '/api/v1/deployments', { json: { bundle: 'tab@1', device: d.deviceId } });
    assert.equal(res.status, 409);
    assert.match(res.body.error.message, /keys init/);
  });

  test('keys init writes the root key offline (0600) and publishes a root-signed key list', async () => {
    const rootFile = path.join(dir, 'root.key');
    const init = await runCli(['--json', 'keys', 'init', '--root-key', rootFile], env);
    assert.equal(init.code, 0, init.stderr);
    const out = JSON.parse(init.stdout);
    assert.equal((await stat(rootFile)).mode & 0o777, 0o600);
    const keys = await cp.api('GET', '/api/v1/keys');
    assert.equal(keys.body.keylist.signed.version, 1);
    assert.equal(keys.body.keylist.signed.root.keyid, out.rootKeyid);
    assert.ok(!JSON.stringify(keys.body).includes('PRIVATE KEY'), 'no private key leaves the server');
    const again = await runCli(['keys', 'init', '--root-key', path.join(dir, 'other.key')], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already initialised/);
    // New enrollments learn the root to pin.
    const d = await enroll();
    assert.deepEqual(d.trust, { rootKeyid: out.rootKeyid, rootPublicKey: out.rootPublicKey });
  });

  test('deploy publishes a per-device signed manifest that verifies against the pinned root', async () => {
    const [a, b] = devices;
    const wa = await desiredWatcher(cp.mqttUrl, a.deviceId, a.mqtt.password);
    clients.push(wa.client);
    const dep = await runCli(['--json', 'deploy', 'tab@1', '--device', a.deviceId], env);
    assert.equal(dep.code, 0, dep.stderr);
    const msg = await wa.next(1);
    const root = devices[1].trust!;
    const kl = verifyKeyList(msg.keylist, { pinnedRootKeys: [{ keyid: root.rootKeyid, publicKey: root.rootPublicKey }], now: new Date() });
    assert.ok(kl.ok, !kl.ok ? kl.message : '');
    const mf = verifyManifest(msg.manifest, { keylist: kl.keylist, deviceId: a.deviceId, activeCounter: null, agentVersion: '0.1.0', now: new Date() });
    assert.ok(mf.ok, !mf.ok ? mf.message : '');
    assert.equal(mf.manifest.counter, 1);
    assert.deepEqual(mf.manifest.files.map((f) => f.path).sort(), ['bundle.json', 'model.onnx']);
    // The same manifest is not valid for another device (mix-and-match).
    const other = verifyManifest(msg.manifest, { keylist: kl.keylist, deviceId: b.deviceId, activeCounter: null, agentVersion: '0.1.0', now: new Date() });
    assert.equal(!other.ok && other.reason, 'WRONG_DEVICE');
    // The device's view: desired with counter 1.
    const shown = await cp.api('GET', `/api/v1/devices/${a.deviceId}`);
    assert.equal(shown.body.desired.counter, 1);

    // Artifacts: Basic auth as the device, Range resumes, other devices and anonymous callers refused.
    const model = mf.manifest.files.find((f) => f.path === 'model.onnx')!;
    const basic = (id: string, pw: string) => 'Basic ' + Buffer.from(`${id}:${pw}`).toString('base64');
    const full = await fetch(`${cp.url}/artifacts/sha256/${model.sha256}`, { headers: { authorization: basic(a.deviceId, a.mqtt.password) } });
    assert.equal(full.status, 200);
    const bytes = Buffer.from(await full.arrayBuffer());
    assert.equal(createHash('sha256').update(bytes).digest('hex'), model.sha256);
    const part = await fetch(`${cp.url}/artifacts/sha256/${model.sha256}`, { headers: { authorization: basic(a.deviceId, a.mqtt.password), range: 'bytes=100-' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 100-${model.size - 1}/${model.size}`);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), bytes.subarray(100));
    const bad = await fetch(`${cp.url}/artifacts/sha256/${model.sha256}`, { headers: { authorization: basic(a.deviceId, a.mqtt.password), range: `bytes=${model.size + 5}-` } });
    assert.equal(bad.status, 416);
    assert.equal((await fetch(`${cp.url}/artifacts/sha256/${model.sha256}`, { headers: { authorization: basic(a.deviceId, 'wrong') } })).status, 401);
    assert.equal((await fetch(`${cp.url}/artifacts/sha256/${model.sha256}`, { headers: { authorization: basic(b.deviceId, b.mqtt.password) } })).status, 403);
    assert.equal((await fetch(`${cp.url}/artifacts/sha256/${model.sha256}`)).status, 401);
  });

  test('key rotation re-signs desired state with the new key; devices verify it without manual steps', async () => {
    const [a] = devices;
    const wa = await desiredWatcher(cp.mqttUrl, a.deviceId, a.mqtt.password);
    clients.push(wa.client);
    const first = await wa.next(1); // retained
    const oldKey = first.manifest!.signatures[0].keyid;
    const rot = await runCli(['--json', 'keys', 'rotate', '--root-key', path.join(dir, 'root.key')], env);
    assert.equal(rot.code, 0, rot.stderr);
    const msg = await wa.next(2);
    const root = devices[1].trust!;
    const kl = verifyKeyList(msg.keylist, { pinnedRootKeys: [{ keyid: root.rootKeyid, publicKey: root.rootPublicKey }], current: first.keylist.signed as never, now: new Date() });
    assert.ok(kl.ok);
    assert.equal(kl.keylist.version, 2);
    const mf = verifyManifest(msg.manifest, { keylist: kl.keylist, deviceId: a.deviceId, activeCounter: 1, agentVersion: '0.1.0', now: new Date() });
    assert.ok(mf.ok, !mf.ok ? mf.message : '');
    assert.notEqual(msg.manifest!.signatures[0].keyid, oldKey);
    // A manifest signed by the retired key no longer verifies under the new list.
    const stale = verifyManifest(first.manifest, { keylist: kl.keylist, deviceId: a.deviceId, activeCounter: null, agentVersion: '0.1.0', now: new Date() });
    assert.equal(!stale.ok && stale.reason, 'UNKNOWN_KEY');
    const wrongRoot = await runCli(['keys', 'rotate', '--root-key', path.join(dir, 'nope.key')], env);
    assert.equal(wrongRoot.code, 2);
  });

  test('a cohort deployment reaches devices that join the cohort later', async () => {
    await cp.api('POST', '/api/v1/cohorts', { json: { name: 'lab', selector: 'site=lab,ring=canary' } });
    const [, b] = devices;
    await cp.api('PATCH', `/api/v1/devices/${b.deviceId}/labels`, { json: { set: { ring: 'canary' } } });
    const dep = await cp.api('POST', '/api/v1/deployments', { json: { bundle: 'tabular-demo', cohort: 'lab' } });
    assert.equal(dep.status, 201);
    assert.deepEqual(dep.body.devices, [b.deviceId]);
    const late = await enroll();
    assert.equal((await cp.api('GET', `/api/v1/devices/${late.deviceId}`)).body.desired, null);
    await cp.api('PATCH', `/api/v1/devices/${late.deviceId}/labels`, { json: { set: { ring: 'canary' } } });
    const w = await desiredWatcher(cp.mqttUrl, late.deviceId, late.mqtt.password);
    clients.push(w.client);
    const msg = await w.next(1);
    assert.equal((msg.manifest!.signed as { deviceId: string }).deviceId, late.deviceId);
    assert.equal((await cp.api('GET', `/api/v1/devices/${late.deviceId}`)).body.desired.cohort, 'lab');
  });

  test('manifests close to expiry are re-signed with a new counter and expiry; fresh ones are left alone', async () => {
    const [a] = devices;
    const before = (await cp.api('GET', `/api/v1/devices/${a.deviceId}`)).body.desired;
    assert.deepEqual(await cp.plane.desired.refreshExpiring(), [], 'nothing is close to expiry yet');
    const w = await desiredWatcher(cp.mqttUrl, a.deviceId, a.mqtt.password);
    clients.push(w.client);
    await w.next(1); // the retained one
    // A horizon past the TTL makes every manifest "close to expiry".
    const refreshed = await cp.plane.desired.refreshExpiring(cp.plane.config.manifestTtlS * 1000 + 60_000);
    assert.ok(refreshed.includes(a.deviceId));
    const after = (await cp.api('GET', `/api/v1/devices/${a.deviceId}`)).body.desired;
    assert.equal(after.counter, before.counter + 1);
    assert.equal(after.bundleId, before.bundleId);
    assert.ok(after.expiresAt > before.expiresAt);
    const msg = await w.next(2);
    assert.equal((msg.manifest!.signed as { counter: number }).counter, after.counter);
  });

  test('bad builds and deployments are 4xx; a bundled version cannot be deleted', async () => {
    const badDef = path.join(dir, 'bad.json');
    await writeFile(badDef, JSON.stringify({ name: 'bad', preprocess: { type: 'tabular', input: 'nope', features: [{ name: 'a' }] } }));
    const built = await runCli(['bundles', 'build', 'tab@1', '--def', badDef], env);
    assert.equal(built.code, 1);
    assert.match(built.stderr, /INPUT_NOT_IN_MODEL|nope/);
    const unknown = await cp.api('POST', '/api/v1/deployments', { json: { bundle: 'tab@9', device: devices[0].deviceId } });
    assert.equal(unknown.status, 404);
    const both = await cp.api('POST', '/api/v1/deployments', { json: { bundle: 'tab@1' } });
    assert.equal(both.status, 400);
    const noDevice = await cp.api('POST', '/api/v1/deployments', { json: { bundle: 'tab@1', device: 'dev_nothere00' } });
    assert.equal(noDevice.status, 404);
    const del = await cp.api('DELETE', '/api/v1/models/tab/versions/1');
    assert.equal(del.status, 409);
    assert.ok(del.body.error.details.references.some((r: string) => r.startsWith('bundle bnd_')));
  });

  test('desired state survives a server restart (stored in the embedded broker before it accepts connections)', async () => {
    const [a] = devices;
    const before = (await cp.api('GET', `/api/v1/devices/${a.deviceId}`)).body.desired.counter;
    await cp.plane.stop();
    const { ControlPlane } = await import('../server/control-plane.ts');
    const { createLogger } = await import('../server/logger.ts');
    const restarted = new ControlPlane({ ...cp.plane.config, mqttPort: 0, httpPort: 0 }, createLogger('silent'));
    await restarted.start();
    cp.plane = restarted;
    const w = await desiredWatcher(restarted.mqttUrl, a.deviceId, a.mqtt.password);
    clients.push(w.client);
    const msg = await w.next(1);
    assert.equal((msg.manifest!.signed as { counter: number }).counter, before);
    // Seeded, not republished: a restart of a large fleet costs no message per device through the server's client.
    const out = await restarted.metrics.mqttMessagesOut.get();
    assert.equal(out.values.find((v) => v.labels.channel === 'desired')?.value ?? 0, 0);
  });
});

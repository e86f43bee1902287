// The device bus on the embedded broker subscribes inside the process: device messages published over
// real MQTT reach the handlers in order without the server being a client of its own broker, retained
// messages stored before it subscribed are replayed (marked retained), bad payloads are dropped and
// counted, drain() waits for what was published before it, and the server's publishes reach devices.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { z } from 'zod';
import { waitFor } from '../agent/testing/harness.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { EmbeddedBroker } from '../server/broker/embedded-broker.ts';
import { openDatabase } from '../server/db/client.ts';
import { DeviceStateWriter } from '../server/devices/device-state-writer.ts';
import { loadServerConfig } from '../server/env.ts';
import { createLogger } from '../server/logger.ts';
import { Metrics } from '../server/metrics.ts';
import { DeviceBus, type MessageMeta } from '../server/mqtt/device-bus.ts';

let dir: string;
let broker: EmbeddedBroker;
let state: DeviceStateWriter;
let closeDb: () => void;
let url: string;
const metrics = new Metrics();
const logger = createLogger('silent');
const internal = { username: 'flotilla-server', password: randomBytes(18).toString('base64url') };
const clients: MqttClient[] = [];

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'flotilla-bus-in-process-'));
  const config = loadServerConfig({ FLOTILLA_DATA_DIR: dir });
  const { db, client } = await openDatabase(config.dbUrl);
  closeDb = () => client.close();
  state = new DeviceStateWriter({ db, logger, flushMs: config.deviceStateFlushMs });
  broker = new EmbeddedBroker({ host: '127.0.0.1', port: 0, db, metrics, logger, internal, limits: config.mqttLimits, state, maxPendingConnects: config.mqttMaxPendingConnects });
  url = `mqtt://127.0.0.1:${await broker.start()}`;
});

after(async () => {
  for (const c of clients) c.end(true);
  await broker.stop();
  await state.stop();
  closeDb();
  await rm(dir, { recursive: true, force: true });
});

/** A publisher with full access (the broker's internal login): the device ACL is the broker's, tested elsewhere. */
async function connect(): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { ...internal, clientId: `pub-${randomBytes(3).toString('hex')}`, reconnectPeriod: 0 });
  clients.push(c);
  return c;
}

const connectedClients = () => (broker as unknown as { aedes: { connectedClients: number } }).aedes.connectedClients;

test('device messages reach the handlers in process, in order, with retained replay, drops counted and drain', async () => {
  const device = await connect();
  // Stored before the bus subscribes: a subscribing client would get it replayed, so the bus must too.
  await device.publishAsync(deviceTopic('dev_earlybird01', 'status'), JSON.stringify({ state: 'online' }), { qos: 1, retain: true });

  const bus = new DeviceBus({ metrics, logger, broker: { inProcess: broker } });
  const status: Array<[string, MessageMeta]> = [];
  const seqs: number[] = [];
  let started = 0;
  bus.on('status', z.object({ state: z.string() }), (id, _m, meta) => void status.push([id, meta]));
  // Handlers that wait (ingest settles once its batch committed): drain() must wait for them.
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  bus.on('telemetry', z.object({ seq: z.number() }), async (_id, m) => {
    started++;
    await gate;
    seqs.push(m.seq);
  });
  await bus.start();
  assert.equal(connectedClients(), 1, 'only the publishing device is a client of the broker: the bus is not');
  await waitFor(() => status.length === 1, 'the replayed status', 5000);
  assert.deepEqual(status[0], ['dev_earlybird01', { retained: true }]);

  await device.publishAsync(deviceTopic('dev_earlybird01', 'status'), JSON.stringify({ state: 'offline' }), { qos: 1, retain: true });
  await waitFor(() => status.length === 2, 'the live status', 5000);
  assert.deepEqual(status[1], ['dev_earlybird01', { retained: false }], 'a live publish is not a replay, even with RETAIN set');

  const dropped = () => metrics.registry.getSingleMetricAsString('flotilla_mqtt_messages_dropped_total');
  device.publish(deviceTopic('dev_earlybird01', 'telemetry'), '{not json', { qos: 1 });
  device.publish(deviceTopic('dev_earlybird01', 'telemetry'), JSON.stringify({ seq: 'one' }), { qos: 1 });
  const acked = Array.from({ length: 200 }, (_, i) => device.publishAsync(deviceTopic('dev_earlybird01', 'telemetry'), JSON.stringify({ seq: i + 1 }), { qos: 1 }));
  await waitFor(async () => /telemetry",reason="invalid_schema"\} 1/.test(await dropped()), 'the invalid message counted', 5000);
  assert.match(await dropped(), /telemetry",reason="malformed_json"\} 1/);

  // drain() waits for the handlers of everything delivered so far (aedes acknowledges a QoS 1 publish
  // before it forwards it, so the acknowledgements alone do not say it was delivered).
  await Promise.all(acked);
  await waitFor(() => started === 200, 'all 200 delivered', 10_000);
  let drained = false;
  const draining = bus.drain().then(() => (drained = true));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(drained, false, 'drain() waits for the handlers still running');
  open();
  await draining;
  assert.deepEqual(seqs, Array.from({ length: 200 }, (_, i) => i + 1), 'every delivered message handled, in publish order, when drain() resolved');
  await bus.stop();
});

test("the server's publishes reach a subscribed device", async () => {
  const bus = new DeviceBus({ metrics, logger, broker: { inProcess: broker } });
  await bus.start();
  const device = await connect();
  await device.subscribeAsync(deviceTopic('dev_listener001', 'cmd'), { qos: 1 });
  const got = new Promise<string>((resolve) => device.once('message', (_t, payload) => resolve(payload.toString())));
  await bus.publish('dev_listener001', 'cmd', { op: 'ping' });
  assert.deepEqual(JSON.parse(await got), { op: 'ping' });
  assert.equal(bus.connected, true);
  await bus.stop();
});

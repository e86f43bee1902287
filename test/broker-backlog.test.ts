// The embedded broker survives a backlog of retained desired-state publishes while deliveries wait on
// a slow reader — what a rollout stage does to a busy fleet. With aedes' default concurrency (100) the
// queued messages to topics nobody is subscribed to drained recursively inside mqemitter and the
// server died with "RangeError: Maximum call stack size exceeded" (nextBatch → published → mqemitter).
// The broker is built as the control plane builds it (EmbeddedBroker), over real TCP.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { waitFor } from '../agent/testing/harness.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { EmbeddedBroker } from '../server/broker/embedded-broker.ts';
import { openDatabase } from '../server/db/client.ts';
import { DeviceStateWriter } from '../server/devices/device-state-writer.ts';
import { loadServerConfig } from '../server/env.ts';
import { createLogger } from '../server/logger.ts';
import { Metrics } from '../server/metrics.ts';

const PUBLISHERS = 20;
const PER_PUBLISHER = 500; // 10,000 retained messages: far past the depth that overflowed the stack

let dir: string;
let broker: EmbeddedBroker;
let state: DeviceStateWriter;
let closeDb: () => void;
let url: string;
const internal = { username: 'flotilla-server', password: randomBytes(18).toString('base64url') };
const clients: MqttClient[] = [];
const crashes: Error[] = [];
const onCrash = (err: Error) => crashes.push(err);

before(async () => {
  // An overflow inside the broker surfaces as an uncaught exception: record it so the test fails with it.
  process.on('uncaughtException', onCrash);
  dir = await mkdtemp(path.join(tmpdir(), 'flotilla-backlog-'));
  const config = loadServerConfig({ FLOTILLA_DATA_DIR: dir });
  const { db, client } = await openDatabase(config.dbUrl);
  closeDb = () => client.close();
  const logger = createLogger('silent');
  state = new DeviceStateWriter({ db, logger, flushMs: config.deviceStateFlushMs });
  broker = new EmbeddedBroker({ host: '127.0.0.1', port: 0, db, metrics: new Metrics(), logger, internal, limits: config.mqttLimits, state, maxPendingConnects: config.mqttMaxPendingConnects });
  url = `mqtt://127.0.0.1:${await broker.start()}`;
});

after(async () => {
  for (const c of clients) c.end(true);
  await broker.stop();
  await state.stop();
  closeDb();
  await rm(dir, { recursive: true, force: true });
  process.off('uncaughtException', onCrash);
});

async function connect(name: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { ...internal, clientId: `${name}-${randomBytes(3).toString('hex')}`, reconnectPeriod: 0 });
  clients.push(c);
  return c;
}

test('thousands of retained desired publishes queued behind slow deliveries do not overflow the broker', { timeout: 120_000 }, async () => {
  // A subscriber that stops reading: the broker's writes to it back up, so its deliveries stay in flight
  // (more than aedes' default of 100 at once).
  const slow = await connect('slow');
  let received = 0;
  slow.on('message', () => received++);
  await slow.subscribeAsync(deviceTopic('watched', 'telemetry'), { qos: 0 });
  slow.stream.pause();
  const feeder = await connect('feeder');
  const big = Buffer.alloc(256 * 1024, 1);
  const SLOW_MESSAGES = 150;
  for (let i = 0; i < SLOW_MESSAGES; i++) feeder.publish(deviceTopic('watched', 'telemetry'), big, { qos: 0 });

  // Meanwhile a burst of retained QoS 1 desired states to devices that are not connected (no subscriber),
  // from many connections at once, as a rollout stage and a busy fleet produce.
  const publishers = await Promise.all(Array.from({ length: PUBLISHERS }, (_, k) => connect(`pub${k}`)));
  const acked = publishers.flatMap((c, k) =>
    Array.from({ length: PER_PUBLISHER }, (_, i) => c.publishAsync(deviceTopic(`dev-${k}-${i}`, 'desired'), JSON.stringify({ v: 1, i, pad: 'x'.repeat(200) }), { qos: 1, retain: true })),
  );
  // Let the backlog build, then let the slow reader go.
  await new Promise((r) => setTimeout(r, 1500));
  slow.stream.resume();

  let allAcked = false;
  void Promise.all(acked).then(() => (allAcked = true));
  // A crash stops the broker mid-queue: stop waiting at once and report it.
  await waitFor(() => (allAcked && received === SLOW_MESSAGES) || crashes.length > 0, 'every publish acknowledged and every slow message delivered', 90_000);
  assert.deepEqual(crashes.map((e) => e.message), []);

  // Every retained desired state is stored: a device connecting later gets its own.
  const late = await connect('late');
  const got = new Promise<string>((resolve) => late.once('message', (_t, payload) => resolve(payload.toString())));
  await late.subscribeAsync(deviceTopic(`dev-${PUBLISHERS - 1}-${PER_PUBLISHER - 1}`, 'desired'), { qos: 1 });
  assert.equal(JSON.parse(await got).i, PER_PUBLISHER - 1);
});

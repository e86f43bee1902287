// The embedded broker's MQTT accept queue is bounded by FLOTILLA_MQTT_LISTEN_BACKLOG (default 4096): while the
// broker's event loop is busy, at most that many connections complete their handshake and wait for it; the
// kernel drops the rest's SYNs and their clients retry. Node 20 accepts one connection per loop turn, so the
// queue's depth over the turn rate is how long a device waits before the broker sees it; an operator can bound
// it below the agents' connect timeout. Real TCP, a client process, the broker's loop blocked the way a long
// synchronous turn blocks it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { EmbeddedBroker } from '../server/broker/embedded-broker.ts';
import { openDatabase } from '../server/db/client.ts';
import { DeviceStateWriter } from '../server/devices/device-state-writer.ts';
import { loadServerConfig } from '../server/env.ts';
import { createLogger } from '../server/logger.ts';
import { Metrics } from '../server/metrics.ts';

const BACKLOG = 16;
const CLIENTS = 100;

let dir: string;
let broker: EmbeddedBroker;
let state: DeviceStateWriter;
let closeDb: () => void;
let port: number;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'flotilla-listen-backlog-'));
  const config = loadServerConfig({ FLOTILLA_DATA_DIR: dir, FLOTILLA_MQTT_LISTEN_BACKLOG: String(BACKLOG) });
  const { db, client } = await openDatabase(config.dbUrl);
  closeDb = () => client.close();
  const logger = createLogger('silent');
  state = new DeviceStateWriter({ db, logger, flushMs: config.deviceStateFlushMs });
  const internal = { username: 'flotilla-server', password: randomBytes(18).toString('base64url') };
  broker = new EmbeddedBroker({ host: '127.0.0.1', port: 0, db, metrics: new Metrics(), logger, internal, limits: config.mqttLimits, state, maxPendingConnects: config.mqttMaxPendingConnects, listenBacklog: config.mqttListenBacklog });
  port = await broker.start();
});

after(async () => {
  await broker.stop();
  await state.stop();
  closeDb();
  await rm(dir, { recursive: true, force: true });
});

test('the default accept queue is 4096', () => {
  assert.equal(loadServerConfig({}).mqttListenBacklog, 4096);
});

test('while the broker loop is blocked, no more connections than the configured backlog complete their handshake', async () => {
  // The client process opens its connections on "go" and, 1.5 s later, reports how many completed.
  const client = spawn(process.execPath, ['-e', `
    const net = require('node:net');
    const sockets = [];
    process.stdin.once('data', () => {
      let connected = 0;
      for (let i = 0; i < ${CLIENTS}; i++) {
        const s = net.connect(${port}, '127.0.0.1', () => connected++);
        s.on('error', () => {});
        sockets.push(s);
      }
      setTimeout(() => { process.stdout.write(connected + '\\n'); for (const s of sockets) s.destroy(); process.exit(0); }, 1500);
    });
    process.stdout.write('ready\\n');
  `], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  client.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((resolve) => client.stdout.once('data', () => resolve()));
  client.stdin.write('go\n');
  // Block this process's event loop (the broker's) past the client's 1.5 s: nothing is accepted meanwhile.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);
  await new Promise<void>((resolve) => client.once('exit', () => resolve()));
  const connected = Number(out.split('\n')[1]);
  assert.ok(connected > 0, `some connections completed (got ${out.trim()})`);
  // Linux queues backlog + 1 connections.
  assert.ok(connected <= BACKLOG + 1, `${connected} of ${CLIENTS} connections completed their handshake with a backlog of ${BACKLOG}`);
});

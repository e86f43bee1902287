// The embedded MQTT broker (aedes over TCP): authenticates devices with their hashed credentials
// (shedding load beyond a cap of concurrent checks), confines each to its own topics, and reports
// presence through the batched device state writer. The server's own client
// logs in with a per-process internal secret and has full access.
import { timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import type { Logger } from 'pino';
import type { Db } from '../db/client.ts';
import type { DeviceStateWriter } from '../devices/device-state-writer.ts';
import { verifyDeviceCredentials } from '../devices/device-service.ts';
import type { Metrics } from '../metrics.ts';
import { ConnectGate } from './connect-gate.ts';
import { devicePublishAllowed, deviceSubscribeAllowed } from './device-acl.ts';
import { memoryPersistenceWithRetainedIndex } from './retained-index.ts';

export interface BrokerOptions {
  host: string;
  port: number;
  db: Db;
  metrics: Metrics;
  logger: Logger;
  internal: { username: string; password: string };
  /** Presence writes, batched (a reconnect storm must not become one transaction per CONNECT). */
  state: DeviceStateWriter;
  /** Device credential checks in flight at once; beyond it CONNACK 3 "server unavailable". */
  maxPendingConnects: number;
}

const INTERNAL = Symbol('flotilla.internal');
type TaggedClient = Client & { [INTERNAL]?: boolean };

function authError(message: string, returnCode: 3 | 4 | 5): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

export class EmbeddedBroker {
  private aedes?: Aedes;
  private server?: Server;
  private readonly devices = new Map<string, Client>();
  private readonly gate: ConnectGate;

  constructor(private readonly opts: BrokerOptions) {
    this.gate = new ConnectGate(opts.maxPendingConnects);
  }

  async start(): Promise<number> {
    const { metrics, logger, state } = this.opts;
    this.aedes = await Aedes.createBroker({
      persistence: memoryPersistenceWithRetainedIndex(), // O(1) retained lookup per device subscribe
      authenticate: (client, username, password, done) => {
        // The server's own client never waits behind a storm of devices.
        const gated = username !== this.opts.internal.username;
        if (gated && !this.gate.tryEnter()) {
          metrics.mqttRefused.inc({ kind: 'busy' });
          logger.debug({ clientId: client.id, pending: this.gate.pending }, 'mqtt connect shed: too many pending connects');
          return done(authError('server busy', 3), false);
        }
        this.authenticate(client as TaggedClient, username, password).finally(() => gated && this.gate.leave()).then(
          () => done(null, true),
          (err: AuthenticateError) => {
            metrics.mqttRefused.inc({ kind: 'auth' });
            logger.warn({ clientId: client.id, username, reason: err.message }, 'mqtt connect refused');
            done(err, false);
          },
        );
      },
      authorizePublish: (client, packet, done) => {
        const c = client as TaggedClient | null;
        if (!c || c[INTERNAL]) return done(null);
        if (packet.topic.startsWith('$SYS/') || !devicePublishAllowed(c.id, packet.topic)) {
          metrics.mqttRefused.inc({ kind: 'publish' });
          logger.warn({ deviceId: c.id, topic: packet.topic }, 'device publish outside its topics refused');
          return done(new Error(`publish to ${packet.topic} not allowed`));
        }
        done(null);
      },
      authorizeSubscribe: (client, sub, done) => {
        const c = client as TaggedClient;
        if (c[INTERNAL]) return done(null, sub);
        if (!deviceSubscribeAllowed(c.id, sub.topic)) {
          metrics.mqttRefused.inc({ kind: 'subscribe' });
          logger.warn({ deviceId: c.id, topic: sub.topic }, 'device subscribe outside its topics refused');
          return done(null, null); // SUBACK 0x80 for this filter; the client stays connected
        }
        done(null, sub);
      },
    });
    this.aedes.on('clientReady', (client: TaggedClient) => {
      if (client[INTERNAL]) return;
      this.devices.set(client.id, client);
      metrics.devicesConnected.set(this.devices.size);
      state.presence(client.id, true);
    });
    this.aedes.on('clientDisconnect', (client: TaggedClient) => {
      if (client[INTERNAL] || this.devices.get(client.id) !== client) return; // a session takeover already replaced it
      this.devices.delete(client.id);
      metrics.devicesConnected.set(this.devices.size);
      state.presence(client.id, false);
    });
    this.aedes.on('clientError', (client, err) => logger.debug({ clientId: client.id, err: err.message }, 'mqtt client error'));
    this.server = createServer(this.aedes.handle);
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.opts.port, this.opts.host, () => resolve());
    });
    return (this.server.address() as AddressInfo).port;
  }

  private async authenticate(client: TaggedClient, username: string | undefined, password: Buffer | undefined): Promise<void> {
    if (!username || !password) throw authError('username and password required', 4);
    const internal = this.opts.internal;
    if (username === internal.username) {
      const a = Buffer.from(password);
      const b = Buffer.from(internal.password);
      if (a.length === b.length && timingSafeEqual(a, b)) {
        client[INTERNAL] = true;
        return;
      }
      throw authError('bad internal credentials', 4);
    }
    // Pinning the client id to the device id stops one device from taking over another's session.
    if (client.id !== username) throw authError('client id must equal the device id', 5);
    const check = await verifyDeviceCredentials(this.opts.db, username, password.toString());
    if (check === 'unknown' || check === 'bad_secret') throw authError('bad device credentials', 4);
    if (check !== 'ok') throw authError(`device is ${check}`, 5);
  }

  /** Kicks a device off the broker at once (used on revocation). */
  async disconnect(deviceId: string): Promise<void> {
    const client = this.devices.get(deviceId);
    if (!client) return;
    await new Promise<void>((resolve) => client.close(() => resolve()));
  }

  connectedDevices(): number {
    return this.devices.size;
  }

  async stop(): Promise<void> {
    for (const client of this.devices.values()) client.close();
    this.devices.clear();
    await new Promise<void>((resolve) => (this.aedes ? this.aedes.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

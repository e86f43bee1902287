// The embedded MQTT broker (aedes over TCP, TLS and WebSocket): authenticates devices with their hashed
// credentials (shedding load beyond a cap of concurrent checks), confines each to its own topics, and
// reports presence through the batched device state writer. The server's own client logs in with a
// per-process internal secret and has full access. Input is bounded: a maximum packet size
// (PacketSizeGuard) and per-device rates on the channels that become rows (DeviceRateLimiter).
import { timingSafeEqual } from 'node:crypto';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type Server } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { Logger } from 'pino';
import type { Db } from '../db/client.ts';
import type { DeviceStateWriter } from '../devices/device-state-writer.ts';
import { CredentialLookup } from '../devices/credential-lookup.ts';
import { verifyDeviceCredentials } from '../devices/device-service.ts';
import type { MqttLimits } from '../env.ts';
import type { Metrics } from '../metrics.ts';
import { parseDeviceTopic } from '../../protocol/topics.ts';
import { ConnectGate } from './connect-gate.ts';
import { devicePublishAllowed, deviceSubscribeAllowed } from './device-acl.ts';
import { DeviceRateLimiter } from './device-rate-limiter.ts';
import { guardReads, PacketSizeGuard, PacketTooLarge } from './packet-size-guard.ts';
import { memoryPersistenceWithRetainedIndex } from './retained-index.ts';
import type { BrokerMessage, InProcessBroker } from '../mqtt/in-process-broker.ts';

export interface BrokerOptions {
  host: string;
  port: number;
  db: Db;
  metrics: Metrics;
  logger: Logger;
  internal: { username: string; password: string };
  limits: MqttLimits;
  /** Serve MQTT over TLS (and the WebSocket listener over HTTPS) with this certificate and key. */
  tls?: { certPem: string; keyPem: string };
  /** MQTT over WebSocket on this port (path /mqtt), besides MQTT over TCP. */
  wsPort?: number;
  /** Presence writes, batched (a reconnect storm must not become one transaction per CONNECT). */
  state: DeviceStateWriter;
  /** Device credential checks in flight at once; beyond it CONNACK 3 "server unavailable". */
  maxPendingConnects: number;
  /** Accept queue of the MQTT listener (see start()); default 4096. */
  listenBacklog?: number;
}

/** Channels whose messages become database rows, hence rate-limited per device. */
const RATE_LIMITED: ReadonlySet<string> = new Set(['telemetry', 'stats', 'reported']);
/**
 * An over-rate publish is re-addressed here instead of refused: aedes' only refusal (an error from
 * authorizePublish) closes the connection, and a first excess should cost the message, not the link.
 * No subscription matches a `$` topic through a wildcard and the server subscribes to none, and
 * `retain` is cleared, so the message goes nowhere (a QoS 1 sender still gets its PUBACK).
 */
const DROPPED_TOPIC = '$flotilla/dropped';

const INTERNAL = Symbol('flotilla.internal');
type TaggedClient = Client & { [INTERNAL]?: boolean };

function authError(message: string, returnCode: 3 | 4 | 5): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

export class EmbeddedBroker implements InProcessBroker {
  private aedes?: Aedes;
  private persistence?: ReturnType<typeof memoryPersistenceWithRetainedIndex>;
  private server?: Server;
  private wsServer?: HttpServer;
  private wss?: WebSocketServer;
  /** The WebSocket listener's port once started. */
  wsPort = 0;
  private readonly devices = new Map<string, Client>();
  private readonly limiter: DeviceRateLimiter;
  private readonly gate: ConnectGate;
  /** Credential rows for a burst of connects in one read (a storm is not one SELECT per CONNECT). */
  readonly credentials: CredentialLookup;
  private sweepTimer?: NodeJS.Timeout;
  /** Set by closeDevices(): only the server's own client may connect from then on. */
  private closing = false;

  constructor(private readonly opts: BrokerOptions) {
    this.limiter = new DeviceRateLimiter(opts.limits);
    this.gate = new ConnectGate(opts.maxPendingConnects);
    this.credentials = new CredentialLookup(opts.db);
  }

  /**
   * Starts the broker; `retained` messages are stored before it accepts a connection, so devices that
   * reconnect after a restart find them on subscribe (this broker keeps retained messages in memory).
   */
  async start(retained: Array<{ topic: string; payload: string }> = []): Promise<number> {
    const { metrics, logger, state } = this.opts;
    const persistence = memoryPersistenceWithRetainedIndex(); // O(1) retained lookup per device subscribe
    this.persistence = persistence;
    this.aedes = await Aedes.createBroker({
      persistence,
      // No global cap on messages being delivered at once. With aedes' default (100), once 100 deliveries
      // wait on slow sockets every further publish queues in mqemitter, and when one completes the queue
      // drains recursively through every message that completes synchronously (e.g. a retained `desired`
      // for an offline device): a few thousand queued messages overflow the stack and kill the server
      // (mqemitter PR #204, unmerged). Backpressure stays per client: aedes reads a client's next batch
      // only once its previous publishes were handled. (test/broker-backlog.test.ts)
      concurrency: 0,
      authenticate: (client, username, password, done) => {
        // The server's own client never waits behind a storm of devices.
        const gated = username !== this.opts.internal.username;
        if (gated && this.closing) return done(authError('server shutting down', 3), false);
        if (gated && !this.gate.tryEnter()) {
          metrics.mqttRefused.inc({ kind: 'busy' });
          logger.debug({ clientId: client.id, pending: this.gate.pending }, 'mqtt connect shed: too many pending connects');
          return done(authError('server busy', 3), false);
        }
        this.authenticate(client as TaggedClient, username, password).finally(() => gated && this.gate.leave()).then(
          () => done(null, true),
          (err: AuthenticateError) => {
            metrics.mqttRefused.inc({ kind: err.returnCode === 3 ? 'backoff' : 'auth' });
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
        const channel = parseDeviceTopic(packet.topic)?.channel;
        if (channel && RATE_LIMITED.has(channel) && !this.limiter.take(c.id, channel)) {
          metrics.mqttDropped.inc({ channel, reason: 'rate' });
          if (this.limiter.strike(c.id)) {
            metrics.mqttLimitDisconnects.inc({ reason: 'rate' });
            logger.warn({ deviceId: c.id, channel, backoffMs: this.opts.limits.backoffMs }, 'device kept exceeding its message rate: disconnected');
            return done(new Error('message rate exceeded'));
          }
          packet.topic = DROPPED_TOPIC;
          packet.retain = false;
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
    for (const { topic, payload } of retained) {
      const packet = { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: true, dup: false } as Parameters<typeof persistence.storeRetained>[0];
      // Without a callback the store answers with a promise (its callback form waits for a 'ready' event
      // that aedes 1.x, which awaits setup() itself, never makes it emit).
      await (persistence.storeRetained as unknown as (p: typeof packet) => Promise<void>)(packet);
    }
    this.aedes.on('clientReady', (client: TaggedClient) => {
      if (client[INTERNAL]) return;
      this.devices.set(client.id, client);
      metrics.devicesConnected.set(this.devices.size);
      void state.presence(client.id, true);
    });
    this.aedes.on('clientDisconnect', (client: TaggedClient) => {
      if (client[INTERNAL] || this.devices.get(client.id) !== client) return; // a session takeover already replaced it
      this.devices.delete(client.id);
      metrics.devicesConnected.set(this.devices.size);
      void state.presence(client.id, false);
    });
    this.aedes.on('clientError', (client, err) => logger.debug({ clientId: client.id, err: err.message }, 'mqtt client error'));
    const { tls } = this.opts;
    this.server = tls
      ? createTlsServer({ cert: tls.certPem, key: tls.keyPem }, (socket) => this.accept(socket))
      : createServer((socket) => this.accept(socket));
    this.sweepTimer = setInterval(() => this.limiter.sweep(), 60_000);
    this.sweepTimer.unref();
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      // The accept queue bounds how long a connection can wait before this process sees it. Node 20's libuv
      // (>= 1.45, libuv PR #3696) accepts one connection per event-loop turn, so the queue drains at the loop's
      // turn rate: ≈ 500/s on a quiet machine, 1–340/s on a starved one. 4096 (capped by net.core.somaxconn)
      // absorbs a quiet reconnect storm (Node's 511 overflowed and the SYN retransmits cost seconds); when the
      // server is starved, any queue holds connections past the agents' 30 s connect timeout (1024 was tried:
      // the 19,900-device run stalled the same way, bench/RESULTS.md "Why accepts crawl at 19,000"). FLOTILLA_MQTT_LISTEN_BACKLOG.
      this.server!.listen({ port: this.opts.port, host: this.opts.host, backlog: this.opts.listenBacklog ?? 4096 }, () => resolve());
    });
    if (this.opts.wsPort !== undefined) await this.listenWebSocket(this.opts.wsPort);
    return (this.server.address() as AddressInfo).port;
  }

  /** MQTT over WebSocket (over TLS when configured): each connection goes through the same guard and limits. */
  private async listenWebSocket(port: number): Promise<void> {
    const { tls, limits } = this.opts;
    this.wsServer = tls ? createHttpsServer({ cert: tls.certPem, key: tls.keyPem }) : createHttpServer();
    // maxPayload bounds one WebSocket message before it is buffered; the guard bounds MQTT packets across messages.
    this.wss = new WebSocketServer({ server: this.wsServer, path: '/mqtt', maxPayload: limits.maxPacketBytes });
    this.wss.on('connection', (ws, req) => this.accept(createWebSocketStream(ws), req));
    await new Promise<void>((resolve, reject) => {
      this.wsServer!.once('error', reject);
      this.wsServer!.listen(port, this.opts.host, () => resolve());
    });
    this.wsPort = (this.wsServer.address() as AddressInfo).port;
  }

  /** Hands a connection to aedes, its inbound bytes checked by the packet size guard as aedes reads them. */
  private accept(socket: Duplex, req?: unknown): void {
    const { metrics, logger, limits } = this.opts;
    let client: TaggedClient | undefined;
    guardReads(socket, new PacketSizeGuard(limits.maxPacketBytes), (err) => {
      if (!(err instanceof PacketTooLarge)) return; // malformed: closed as mqtt-packet itself would
      const deviceId = client?.id && !client[INTERNAL] && this.devices.get(client.id) === client ? client.id : undefined;
      metrics.mqttDropped.inc({ channel: 'any', reason: 'oversize' });
      metrics.mqttLimitDisconnects.inc({ reason: 'oversize' });
      logger.warn({ deviceId, bytes: err.bytes, maxBytes: err.maxBytes }, 'oversize MQTT packet: connection closed');
      // Each oversize packet costs a connection; one that keeps coming back with them is refused for a while.
      if (deviceId) this.limiter.strike(deviceId);
    });
    client = this.aedes!.handle(socket, req as never) as TaggedClient;
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
    const backoff = this.limiter.bannedFor(username);
    if (backoff > 0) {
      throw authError(`device exceeded its limits: refused for another ${Math.ceil(backoff / 1000)} s`, 3);
    }
    const check = await verifyDeviceCredentials(this.opts.db, username, password.toString(), (id) => this.credentials.get(id));
    if (check === 'unknown' || check === 'bad_secret') throw authError('bad device credentials', 4);
    if (check !== 'ok') throw authError(`device is ${check}`, 5);
  }

  /** Kicks a device off the broker at once (used on revocation). */
  async disconnect(deviceId: string): Promise<void> {
    const client = this.devices.get(deviceId);
    if (!client) return;
    await new Promise<void>((resolve) => client.close(() => resolve()));
  }

  /**
   * Publishes a retained QoS 1 message from the broker itself: stored as retained and forwarded to the
   * subscribers, without a client round trip (the server's own messages need no authorization).
   */
  publishRetained(topic: string, payload: Buffer): Promise<void> {
    return this.publish(topic, payload, { retain: true });
  }

  /** A QoS 1 message from the broker itself (InProcessBroker): resolves once handed to every subscriber. */
  publish(topic: string, payload: Buffer, opts: { retain?: boolean } = {}): Promise<void> {
    const aedes = this.aedes;
    if (!aedes) return Promise.reject(new Error('broker not started'));
    const packet = { cmd: 'publish', topic, payload, qos: 1, retain: opts.retain ?? false, dup: false } as Parameters<Aedes['publish']>[0];
    return new Promise((resolve, reject) => aedes.publish(packet, (err?: Error | null) => (err ? reject(err) : resolve())));
  }

  /**
   * Hands every message published on `filter` to `deliver`, in this process and in publish order
   * (InProcessBroker). A device's QoS 1 publish was acknowledged to it before it gets here (aedes sends
   * PUBACK first, as it did when the server was a client over TCP).
   */
  subscribe(filter: string, deliver: (message: BrokerMessage) => void): Promise<() => Promise<void>> {
    const aedes = this.aedes;
    if (!aedes) return Promise.reject(new Error('broker not started'));
    // aedes' mqemitter waits for the callback before it counts the message delivered; nothing waits here.
    const listener = (packet: { topic: string; payload: Buffer | string }, done: () => void) => {
      deliver({ topic: packet.topic, payload: typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload });
      done();
    };
    const unsubscribe = () => new Promise<void>((resolve) => aedes.unsubscribe(filter, listener as never, () => resolve()));
    return new Promise((resolve, reject) => aedes.subscribe(filter, listener as never, (err?: Error | null) => (err ? reject(err) : resolve(unsubscribe))));
  }

  /** The retained messages stored now on any of `filters` (what a new subscriber would be sent). */
  async retained(filters: string[]): Promise<BrokerMessage[]> {
    if (!this.persistence) throw new Error('broker not started');
    const out: BrokerMessage[] = [];
    for await (const packet of this.persistence.createRetainedStreamCombi(filters) as AsyncIterable<{ topic: string; payload: Buffer }>) out.push({ topic: packet.topic, payload: packet.payload });
    return out;
  }

  connectedDevices(): number {
    return this.devices.size;
  }

  /**
   * First step of a shutdown: stop accepting connections and disconnect every device, while the
   * server's own client stays connected to take what the devices sent before (DeviceBus.drain).
   * A device whose message was not acknowledged keeps it and sends it again on reconnect.
   */
  async closeDevices(): Promise<void> {
    this.closing = true;
    this.server?.close();
    this.wss?.close();
    this.wsServer?.close();
    this.wsServer?.closeAllConnections();
    const clients = Object.values(((this.aedes as unknown as { clients?: Record<string, TaggedClient> })?.clients ?? {})).filter((c) => !c[INTERNAL]);
    // No last wills: the devices did not fail, the broker is going away (their presence is written from
    // clientDisconnect as for any disconnect). A will is a retained publish the server's own client then
    // takes and stores: 10,000 of them made a clean stop take seconds, while the fleet waited to reconnect.
    for (const c of clients) (c as unknown as { will: unknown }).will = null;
    await Promise.all(clients.map((c) => new Promise<void>((resolve) => c.close(() => resolve()))));
  }

  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    for (const client of this.devices.values()) client.close();
    this.devices.clear();
    await new Promise<void>((resolve) => (this.aedes ? this.aedes.close(() => resolve()) : resolve()));
    // close() a second time (after closeDevices) reports ERR_SERVER_NOT_RUNNING; stopped is stopped.
    await new Promise<void>((resolve) => (this.server?.listening ? this.server.close(() => resolve()) : resolve()));
    this.wss?.close();
    this.wsServer?.closeAllConnections();
    await new Promise<void>((resolve) => (this.wsServer?.listening ? this.wsServer.close(() => resolve()) : resolve()));
  }
}

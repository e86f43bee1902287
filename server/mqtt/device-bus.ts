// The server's side of MQTT: receives every device channel, validates each payload with the shared
// schema and hands it to the part that owns the channel; publishes desired state and commands.
// A malformed or unknown message is dropped and counted, never thrown. With an external broker it is an
// MQTT client; with the embedded one it subscribes inside the process (in-process-broker.ts).
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { allDevicesFilter, type Channel, deviceTopic, type DevicePublishChannel, parseDeviceTopic } from '../../protocol/topics.ts';
import type { Metrics } from '../metrics.ts';
import { holdAcksUntilDone } from './ack-after-commit.ts';
import type { InProcessBroker } from './in-process-broker.ts';

/** `retained`: a stored message the broker replays on (re)subscribe, not one the device just sent. */
export interface MessageMeta {
  retained: boolean;
}
type Handler = (deviceId: string, message: unknown, meta: MessageMeta) => Promise<void> | void;

export interface DeviceBusOptions {
  metrics: Metrics;
  logger: Logger;
  /** The broker: the embedded one in this process, or one reached as an MQTT client. */
  broker: { inProcess: InProcessBroker } | MqttConnection;
}

/** The server as an MQTT client of its broker. */
export interface MqttConnection {
  url: string;
  username: string;
  password: string;
  /** With an external broker, replicas share device traffic through `$share/<group>/...`. */
  sharedGroup?: string;
  /**
   * An external broker: MQTT 5 with a persistent session under this replica's stable client id, and
   * each device message acknowledged only once its handler finished (ingest: once committed), so a
   * replica killed mid-batch gets its unacknowledged messages again when it reconnects (ack-after-commit.ts).
   */
  persistent?: { clientId: string; sessionExpiryS: number };
  /** The broker refused the server's login (e.g. Mosquitto lost the server's client); it keeps retrying. */
  onRefused?(): void;
}

export class DeviceBus {
  private client?: MqttClient;
  private inProcess?: InProcessBroker;
  private unsubscribes: Array<() => Promise<void>> = [];
  private readonly handlers = new Map<string, { schema: z.ZodType; handler: Handler }>();
  /** Handlers still running (async ones), awaited by drain(). */
  private readonly inFlight = new Set<Promise<void>>();
  /** A topic only this client publishes and subscribes to: its echo marks "everything before it arrived". */
  private barrierTopic?: string;
  private barrierWaiters: Array<() => void> = [];

  constructor(private readonly opts: DeviceBusOptions) {}

  /** Registers the owner of a channel; call before start(). */
  on<S extends z.ZodType>(channel: DevicePublishChannel, schema: S, handler: (deviceId: string, message: z.infer<S>, meta: MessageMeta) => Promise<void> | void): void {
    this.handlers.set(channel, { schema, handler: handler as Handler });
  }

  async start(): Promise<void> {
    const { broker } = this.opts;
    if ('inProcess' in broker) return this.startInProcess(broker.inProcess);
    const opts = broker;
    const persistent = opts.persistent;
    const clientId = persistent?.clientId ?? `flotilla-server-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
    const client = mqtt.connect(opts.url, {
      username: opts.username,
      password: opts.password,
      clientId,
      reconnectPeriod: 1000,
      // A refused login is retried too (MQTT.js stops by default): the broker may get the client back (onRefused).
      reconnectOnConnackError: true,
      ...(persistent
        ? // receiveMaximum: acknowledgements wait for a batch commit, so allow a batch's worth (and more) in flight.
          { protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: persistent.sessionExpiryS, receiveMaximum: 65_535 } }
        : { clean: true }),
    });
    this.client = client;
    const acks = persistent ? holdAcksUntilDone(client) : undefined;
    // Before CONNACK: a resumed session's unacknowledged messages arrive right behind it.
    client.on('message', (topic, payload, packet) => {
      if (topic === this.barrierTopic) return this.barrierEchoed();
      // MQTT sets RETAIN only on messages replayed to a new subscription (live forwards carry 0).
      const p = this.receive(topic, payload, { retained: packet.retain });
      acks?.holdUntil(packet, p);
    });
    client.on('error', (err) => {
      this.opts.logger.warn({ err: err.message }, 'server mqtt client error');
      const code = (err as Error & { code?: unknown }).code;
      if (code === 4 || code === 5 || code === 134 || code === 135) opts.onRefused?.();
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        client.end(true);
        reject(err);
      };
      client.once('error', onError);
      client.once('connect', () => {
        client.off('error', onError);
        resolve();
      });
    });
    const filters = this.deviceFilters().map((f) => (opts.sharedGroup ? `$share/${opts.sharedGroup}/${f}` : f));
    if (!opts.sharedGroup) filters.push((this.barrierTopic = `flotilla/v1/server/${clientId}/barrier`));
    if (filters.length) {
      const granted = await client.subscribeAsync(filters, { qos: 1 });
      const refused = granted.filter((g) => g.qos >= 128).map((g) => g.topic);
      if (refused.length) throw new Error(`the broker refused the server's subscriptions: ${refused.join(', ')}`);
    }
  }

  /**
   * The embedded broker: its device messages arrive by a function call in publish order (no socket, no
   * MQTT parse, no PUBACK back to aedes). Devices were acknowledged by aedes on receipt, as before.
   */
  private async startInProcess(broker: InProcessBroker): Promise<void> {
    this.inProcess = broker;
    const filters = this.deviceFilters();
    for (const filter of filters) this.unsubscribes.push(await broker.subscribe(filter, ({ topic, payload }) => void this.receive(topic, payload, { retained: false })));
    this.barrierTopic = `flotilla/v1/server/in-process-${process.pid}/barrier`;
    this.unsubscribes.push(await broker.subscribe(this.barrierTopic, () => this.barrierEchoed()));
    // What subscribing as a client would replay: retained messages stored before (a device's `status`).
    for (const { topic, payload } of await broker.retained(filters)) void this.receive(topic, payload, { retained: true });
  }

  private deviceFilters(): string[] {
    return [...this.handlers.keys()].map((ch) => allDevicesFilter(ch as DevicePublishChannel));
  }

  /** Dispatches one message; its handler's promise is tracked for drain(). */
  private receive(topic: string, payload: Buffer, meta: MessageMeta): Promise<void> {
    const p = this.dispatch(topic, payload, meta);
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
    return p;
  }

  private barrierEchoed(): void {
    for (const resolve of this.barrierWaiters.splice(0)) resolve();
  }

  /**
   * Waits until every device message the broker forwarded so far has been handed to its handler and
   * the handlers have finished: the broker delivers in order, so the echo of a barrier message comes
   * after them. Called at shutdown once devices are disconnected, before the handlers' owners stop,
   * so nothing the broker acknowledged to a device is dropped. (Embedded broker only: with a shared
   * subscription the barrier's echo could go to another replica.)
   */
  async drain(timeoutMs = 5000): Promise<void> {
    if (this.connected && this.barrierTopic) {
      const echoed = new Promise<void>((resolve) => this.barrierWaiters.push(resolve));
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => (timer = setTimeout(() => {
        this.opts.logger.warn({ timeoutMs }, 'device bus drain: barrier not echoed in time');
        resolve();
      }, timeoutMs)));
      await this.publishBytes(this.barrierTopic, Buffer.alloc(0)).catch(() => {});
      await Promise.race([echoed, timedOut]);
      clearTimeout(timer);
    }
    await Promise.all(this.inFlight);
  }

  private async dispatch(topic: string, payload: Buffer, meta: MessageMeta): Promise<void> {
    const { metrics, logger } = this.opts;
    const parsed = parseDeviceTopic(topic);
    const entry = parsed ? this.handlers.get(parsed.channel) : undefined;
    if (!parsed || !entry) {
      metrics.mqttDropped.inc({ channel: parsed?.channel ?? 'unknown', reason: 'unknown_topic' });
      return;
    }
    const channel = parsed.channel;
    metrics.mqttMessagesIn.inc({ channel });
    if (payload.length === 0) return; // a cleared retained message
    let json: unknown;
    try {
      json = JSON.parse(payload.toString('utf8'));
    } catch {
      metrics.mqttDropped.inc({ channel, reason: 'malformed_json' });
      logger.warn({ deviceId: parsed.deviceId, channel }, 'dropped malformed JSON from device');
      return;
    }
    const result = entry.schema.safeParse(json);
    if (!result.success) {
      const versioned = typeof json === 'object' && json !== null && 'v' in json && (json as { v: unknown }).v !== 1;
      metrics.mqttDropped.inc({ channel, reason: versioned ? 'schema_version' : 'invalid_schema' });
      logger.warn({ deviceId: parsed.deviceId, channel, issue: result.error.issues[0]?.message }, 'dropped invalid message from device');
      return;
    }
    try {
      await entry.handler(parsed.deviceId, result.data, meta);
    } catch (err) {
      metrics.mqttDropped.inc({ channel, reason: 'handler_error' });
      logger.error({ err, deviceId: parsed.deviceId, channel }, 'device message handler failed');
    }
  }

  get connected(): boolean {
    return this.inProcess ? true : (this.client?.connected ?? false);
  }

  async publish(deviceId: string, channel: Channel, message: unknown, opts: { retain?: boolean } = {}): Promise<void> {
    await this.send(deviceTopic(deviceId, channel), Buffer.from(JSON.stringify(message)), opts.retain ?? false);
    this.opts.metrics.mqttMessagesOut.inc({ channel });
  }

  /** Publishes bytes already serialized (QoS 1); resolves on the broker's acknowledgement. */
  async publishBytes(topic: string, payload: Buffer, channel?: Channel, opts: { retain?: boolean } = {}): Promise<void> {
    await this.send(topic, payload, opts.retain ?? false);
    if (channel) this.opts.metrics.mqttMessagesOut.inc({ channel });
  }

  private async send(topic: string, payload: Buffer, retain: boolean): Promise<void> {
    if (this.inProcess) return this.inProcess.publish(topic, payload, { retain });
    if (!this.client) throw new Error('device bus not started');
    await this.client.publishAsync(topic, payload, { qos: 1, retain });
  }

  async stop(): Promise<void> {
    for (const unsubscribe of this.unsubscribes.splice(0)) await unsubscribe();
    this.inProcess = undefined;
    await this.client?.endAsync();
    this.client = undefined;
  }
}

// The device's MQTT session: client id = username = device id, persistent session (clean: false),
// QoS 1, `status` online (retained) on connect with `offline` as the last will, subscriptions to the
// device's own `desired` and `cmd` only (never `cmd/#`: overlapping filters deliver twice).
// MQTT.js reconnects at a fixed period, so reconnection is ours: exponential backoff with full jitter
// (backoff.ts), starting from a random delay so a fleet dropped by a control-plane restart does not
// come back as one burst. It also paces a device that is still pending approval (CONNACK "Not
// authorized") and one the broker shed under load (CONNACK 3 "Server unavailable"): both back off.
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { StatusMessage } from '../protocol/messages/status.ts';
import { deviceTopic, type DevicePublishChannel } from '../protocol/topics.ts';
import { Backoff, type BackoffOptions } from './backoff.ts';
import { mqttTlsOptions } from './tls-pin.ts';

export interface MqttSessionOptions {
  url: string;
  deviceId: string;
  password: string;
  agentVersion: string;
  logger: Logger;
  /** Backoff windows; `probeMaxMs` caps the window after a refused TCP connect (nothing listens). */
  reconnect: BackoffOptions & { probeMaxMs?: number };
  /** One attempt, TCP handshake to CONNACK (agent/config.ts mqttConnectTimeoutMs); default 30 s. */
  connectTimeoutMs?: number;
  /** CA (PEM) the broker's certificate must chain to (mqtts:// and wss://). */
  ca?: string | null;
  onDesired(payload: Buffer): void;
  onCommand(payload: Buffer): void;
  /** Called after each (re)connection once `status` online is sent. */
  onConnected?(): void;
  /** Called once per connect attempt with how it ended and how long it took (the reconnect bench's timeline). */
  onAttempt?(outcome: ConnectOutcome, ms: number): void;
  /** Called when an established connection closes. */
  onDisconnected?(): void;
  /** The broker refused the login (CONNACK 4 or 5: bad credentials or not authorized). */
  onRefused?(): void;
}

/**
 * How a connect attempt ended: `ok` (CONNACK 0), `busy` (CONNACK 3: the broker sheds load or is
 * shutting down), `refused` (ECONNREFUSED: nothing listens, e.g. the control plane is restarting),
 * `denied` (CONNACK 4/5: pending approval, revoked, bad credentials), `lost` (any other socket error,
 * or the connection closed before a CONNACK, e.g. the connect timeout).
 */
export type ConnectOutcome = 'ok' | 'busy' | 'refused' | 'denied' | 'lost';

/** The outcome an MQTT.js 'error' event means for the attempt in flight. */
function classify(err: Error & { code?: unknown }): ConnectOutcome {
  if (err.code === 3) return 'busy';
  if (err.code === 'ECONNREFUSED') return 'refused';
  if (err.code === 4 || err.code === 5 || /not authori[sz]ed|bad user ?name or password/i.test(err.message)) return 'denied';
  return 'lost';
}

export class MqttSession {
  private client?: MqttClient;
  private reconnectTimer?: NodeJS.Timeout;
  private stopping = false;
  private backoff: Backoff;
  /** The attempt in flight: whether it got CONNACK 0, else what its first error said. */
  private attempt: { connected: boolean; failure?: ConnectOutcome; startedAt: number } = { connected: false, startedAt: Date.now() };
  /** Connections made so far (tests and status). */
  connections = 0;
  /** Messages the broker acknowledged (the simulator's messages/s). */
  published = 0;

  constructor(private readonly opts: MqttSessionOptions) {
    this.backoff = new Backoff(opts.reconnect);
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Starts connecting; never throws for an unreachable broker (it keeps retrying until stop()). */
  start(): void {
    const { opts } = this;
    this.stopping = false;
    this.attempt = { connected: false, startedAt: Date.now() };
    const status = (state: 'online' | 'offline'): StatusMessage => ({ v: 1, state, at: new Date().toISOString(), agentVersion: opts.agentVersion });
    const client = mqtt.connect(opts.url, {
      clientId: opts.deviceId,
      username: opts.deviceId,
      password: opts.password,
      clean: false,
      protocolVersion: 4, // the embedded broker speaks 3.1.1
      reconnectPeriod: 0, // reconnection with backoff is done below
      resubscribe: false, // we subscribe on every connect ourselves
      connectTimeout: opts.connectTimeoutMs ?? 30_000,
      keepalive: 30,
      writeCache: false, // mqtt-packet's cache of 65,536 two-byte Buffers is ≈ 6 MB of heap (agent/README.md, "Memory")
      ...mqttTlsOptions(opts.ca),
      will: { topic: deviceTopic(opts.deviceId, 'status'), payload: Buffer.from(JSON.stringify(status('offline'))), qos: 1, retain: true },
    });
    this.client = client;
    client.on('connect', (connack) => {
      this.attempt.connected = true;
      opts.onAttempt?.('ok', Date.now() - this.attempt.startedAt);
      this.connections++;
      this.backoff.reset();
      opts.logger.info({ sessionPresent: connack.sessionPresent }, 'mqtt connected');
      this.publish('status', status('online'), { retain: true });
      const filters = [deviceTopic(opts.deviceId, 'desired'), deviceTopic(opts.deviceId, 'cmd')];
      client.subscribeAsync(filters, { qos: 1 }).then(
        (granted) => {
          const refused = granted.filter((g) => g.qos >= 128).map((g) => g.topic);
          if (refused.length) opts.logger.error({ refused }, 'broker refused subscriptions');
        },
        (err: Error) => opts.logger.error({ err: err.message }, 'subscribe failed'),
      );
      opts.onConnected?.();
    });
    client.on('message', (topic, payload) => {
      if (topic === deviceTopic(opts.deviceId, 'desired')) opts.onDesired(payload);
      else if (topic === deviceTopic(opts.deviceId, 'cmd')) opts.onCommand(payload);
      else opts.logger.debug({ topic }, 'message on an unexpected topic dropped');
    });
    // Without an 'error' listener MQTT.js errors (e.g. CONNACK refusals) would crash the process.
    client.on('error', (err) => {
      const outcome = classify(err);
      if (!this.attempt.connected) this.attempt.failure ??= outcome;
      if (outcome === 'denied') opts.onRefused?.();
      if (outcome === 'busy') return opts.logger.info('mqtt broker busy (server unavailable): backing off');
      opts.logger.warn({ err: err.message }, outcome === 'denied' ? 'mqtt connect refused: device pending approval, revoked, or bad credentials' : 'mqtt error');
    });
    client.on('close', () => {
      const { connected, failure, startedAt } = this.attempt;
      this.attempt = { connected: false, startedAt: Date.now() };
      const outcome = connected ? undefined : (failure ?? 'lost');
      if (outcome) opts.onAttempt?.(outcome, Date.now() - startedAt);
      else opts.onDisconnected?.();
      this.scheduleReconnect(outcome);
    });
  }

  /**
   * While the broker's port refuses connections (a restart), the window stays at `probeMaxMs`: the
   * fleet is back within a few seconds of the broker listening, still spread over that window. A
   * CONNACK "busy", a timeout or a refusal by the broker grow it towards `maxMs` (the server is up and
   * asks for less load, or the device is not let in).
   */
  private scheduleReconnect(outcome?: ConnectOutcome): void {
    if (this.stopping || this.reconnectTimer) return;
    const delay = this.backoff.next(outcome === 'refused' ? this.opts.reconnect.probeMaxMs : undefined);
    this.opts.logger.debug({ inMs: delay }, 'mqtt reconnect scheduled');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.stopping && this.client && !this.client.connected && !this.client.reconnecting) {
        this.attempt.startedAt = Date.now();
        this.client.reconnect();
      }
    }, delay);
  }

  /**
   * Publishes one message (QoS 1). Resolves once the broker acknowledged it; never rejects (a
   * refusal or a stop is logged), so a caller cannot leak an unhandled rejection.
   */
  async publish(channel: DevicePublishChannel, message: unknown, o: { retain?: boolean } = {}): Promise<boolean> {
    const client = this.client;
    if (!client) return false;
    try {
      await client.publishAsync(deviceTopic(this.opts.deviceId, channel), JSON.stringify(message), { qos: 1, retain: o.retain ?? false });
      this.published++;
      return true;
    } catch (err) {
      this.opts.logger.debug({ channel, err: (err as Error).message }, 'publish failed');
      return false;
    }
  }

  /** Clean stop: announces `offline` (a clean disconnect does not fire the last will), then closes. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const client = this.client;
    if (!client) return;
    if (client.connected) {
      const offline: StatusMessage = { v: 1, state: 'offline', at: new Date().toISOString(), agentVersion: this.opts.agentVersion };
      await Promise.race([this.publish('status', offline, { retain: true }), new Promise((r) => setTimeout(r, 2000).unref())]);
    }
    await client.endAsync(true).catch(() => {});
    this.client = undefined;
  }
}

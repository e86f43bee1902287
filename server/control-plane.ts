// The control plane's composition root: wires database, artifact store, broker, device bus and HTTP.
// The constructor only stores the config; start() brings everything up, stop() tears it all down.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createAdaptorServer } from '@hono/node-server';
import type { Client } from '@libsql/client';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ReportedMessage } from '../protocol/messages/reported.ts';
import { StatusMessage } from '../protocol/messages/status.ts';
import { registerDeliveryGauge } from './alerts/deliveries.ts';
import { WebhookSender } from './webhooks/webhook-sender.ts';
import { createApp } from './app.ts';
import { ArtifactStore } from './artifacts/artifact-store.ts';
import { DownloadGate } from './artifacts/download-gate.ts';
import { bootstrapAdminToken } from './bootstrap-admin.ts';
import type { DeviceBrokerAccess } from './broker/device-broker-access.ts';
import { DynsecAdmin } from './broker/dynsec-admin.ts';
import { EmbeddedBroker } from './broker/embedded-broker.ts';
import { MosquittoAccess, SHARED_GROUP } from './broker/mosquitto-access.ts';
import { BrokerReconciler } from './broker/broker-reconciler.ts';
import { type Db, openDatabase } from './db/client.ts';
import { bundlesReferencingVersion } from './bundles/bundle-service.ts';
import { reconcileDevice } from './deployments/deployment-service.ts';
import { DesiredState } from './deployments/desired-state.ts';
import { busPublisher, embeddedPublisher } from './deployments/desired-publisher.ts';
import { storedDesiredPayloads } from './deployments/stored-desired.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { registerTrustGauges, StaleDesiredMonitor } from './deployments/stale-desired.ts';
import { DeviceCommands } from './devices/device-commands.ts';
import { CommandResponse } from '../protocol/messages/command.ts';
import { DeviceStateWriter } from './devices/device-state-writer.ts';
import { DriftMonitor } from './drift/drift-monitor.ts';
import { EventFeed } from './events/event-feed.ts';
import type { ServerConfig } from './env.ts';
import { Ingest } from './ingest/ingest.ts';
import { loadKeyCipher } from './keys/key-cipher.ts';
import { KeylistWarner, registerKeylistGauge } from './keys/key-expiry.ts';
import { secureKeysAtRest } from './keys/key-service.ts';
import { JobRunner } from './jobs/job-runner.ts';
import { Scheduler } from './jobs/scheduler.ts';
import { createLogger } from './logger.ts';
import { Metrics } from './metrics.ts';
import { ModelRunner } from './models/model-runner.ts';
import { DeviceBus } from './mqtt/device-bus.ts';
import { FleetMetrics } from './telemetry/fleet-metrics.ts';
import { PhaseTimer } from './phase-timer.ts';

const HTTP_LISTEN_BACKLOG = 4096;

export class ControlPlane {
  readonly metrics = new Metrics();
  readonly logger: Logger;
  db!: Db;
  store!: ArtifactStore;
  bus!: DeviceBus;
  /** The MQTT credentials the server's own client uses (random per start with the embedded broker). */
  serverCredentials!: { username: string; password: string };
  desired!: DesiredState;
  commands!: DeviceCommands;
  private manifestRefresh?: NodeJS.Timeout;
  private keylistWarner?: KeylistWarner;
  staleDesired?: StaleDesiredMonitor;
  ingest!: Ingest;
  driftMonitor!: DriftMonitor;
  jobRunner!: JobRunner;
  scheduler!: Scheduler;
  /** The webhook outbox's sender (subscriptions, and the alert webhook when configured). */
  webhooks!: WebhookSender;
  /** The sender, when FLOTILLA_ALERT_WEBHOOK_URL is set: drift alerts and the scheduler enqueue alert deliveries only then. */
  alertWebhook?: WebhookSender;
  eventFeed!: EventFeed;
  modelRunner!: ModelRunner;
  httpPort = 0;
  mqttPort = 0;
  /** Set on the first start only: the bootstrap admin token. */
  adminToken: string | null = null;
  private dbClient?: Client;
  private broker?: EmbeddedBroker;
  private dynsec?: DynsecAdmin;
  /** Mosquitto's clients and roles for devices (set when FLOTILLA_MQTT_ADMIN_* is). */
  mosquitto?: MosquittoAccess;
  /** Reconciles Mosquitto's device clients with the database, periodically and on demand. */
  brokerReconciler?: BrokerReconciler;
  private deviceState?: DeviceStateWriter;
  private http?: Server;

  constructor(readonly config: ServerConfig, logger?: Logger) {
    this.logger = logger ?? createLogger(config.logLevel);
  }

  /** What the broker must learn when a device enrolls, is approved or revoked. */
  get brokerAccess(): DeviceBrokerAccess {
    if (this.mosquitto) return this.mosquitto;
    // The embedded broker checks the database at each CONNECT; only a revoked device must be kicked.
    // Any other external broker (EMQX) asks the server through its HTTP hooks (server/broker/emqx-hooks.ts).
    return { enrolled: async () => {}, enrollEnded: async () => {}, approved: async () => {}, revoked: async (id) => void (await this.broker?.disconnect(id)) };
  }

  get httpUrl(): string {
    return `${this.config.tls ? 'https' : 'http'}://127.0.0.1:${this.httpPort}`;
  }

  get mqttUrl(): string {
    return this.config.externalMqttUrl ?? `${this.config.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${this.mqttPort}`;
  }

  /** The embedded broker's MQTT over WebSocket port (0: none). */
  get mqttWsPort(): number {
    return this.broker?.wsPort ?? 0;
  }

  async start(): Promise<void> {
    const { config, logger, metrics } = this;
    const phases = new PhaseTimer();
    await mkdir(config.dataDir, { recursive: true });
    const { db, client } = await openDatabase(config.dbUrl, { synchronous: config.dbSynchronous });
    phases.mark('database');
    this.db = db;
    this.dbClient = client;
    this.store = new ArtifactStore(path.join(config.dataDir, 'artifacts'));
    await this.store.start();
    this.adminToken = await bootstrapAdminToken(db, config.dataDir);
    const { cipher } = await loadKeyCipher({ key: config.keyEncryptionKey, file: config.keyEncryptionKeyFile, dataDir: config.dataDir });
    await secureKeysAtRest(db, cipher, logger);
    phases.mark('keys');

    const external = config.externalMqttUrl ? config.externalBroker : undefined;
    const internal = external
      ? { username: external.username, password: external.password }
      : { username: 'flotilla-server', password: randomBytes(24).toString('base64url') };
    this.serverCredentials = internal;
    if (config.externalMqttUrl && external?.admin) {
      this.dynsec = new DynsecAdmin({ url: config.externalMqttUrl, ...external.admin, logger });
      await this.dynsec.start();
      this.mosquitto = new MosquittoAccess({ admin: this.dynsec, db, logger, url: config.externalMqttUrl, server: internal });
      await this.mosquitto.ensureServerClient();
    }
    const deviceState = new DeviceStateWriter({ db, logger, flushMs: config.deviceStateFlushMs });
    this.deviceState = deviceState;
    if (!config.externalMqttUrl) {
      this.broker = new EmbeddedBroker({ host: config.mqttHost, port: config.mqttPort, db, metrics, logger, internal, limits: config.mqttLimits, tls: config.tls, wsPort: config.mqttWsPort, state: deviceState, maxPendingConnects: config.mqttMaxPendingConnects, listenBacklog: config.mqttListenBacklog });
      // Retained messages do not survive a restart of the embedded broker: each device's desired state is
      // stored in it again before it accepts connections.
      const desired = await storedDesiredPayloads(db);
      phases.mark('desiredRead');
      this.mqttPort = await this.broker.start(desired.map(({ deviceId, payload }) => ({ topic: deviceTopic(deviceId, 'desired'), payload })));
      phases.mark('brokerListening');
    }
    // The embedded broker hands device messages over inside this process; an external one is reached as a client.
    this.bus = new DeviceBus({
      metrics,
      logger,
      broker: this.broker
        ? { inProcess: this.broker }
        : { url: this.mqttUrl, ...internal, sharedGroup: SHARED_GROUP, persistent: external && { clientId: external.clientId, sessionExpiryS: external.sessionExpiryS }, onRefused: () => this.brokerReconciler?.runSoon() },
    });
    // A retained copy replayed when this client subscribes updates state but is not a sign of life (lastSeen stays).
    // Both handlers settle once the device-state flush committed: in replica mode the bus acknowledges then.
    this.bus.on('status', StatusMessage, (deviceId, msg, meta) => deviceState.presence(deviceId, msg.state === 'online', new Date(), { replay: meta.retained }));
    this.bus.on('reported', ReportedMessage, (deviceId, msg, meta) => deviceState.reported(deviceId, msg, new Date(), { replay: meta.retained }));
    this.commands = new DeviceCommands(db, this.bus);
    this.bus.on('cmd/res', CommandResponse, (deviceId, msg) => {
      deviceState.seen(deviceId);
      return this.commands.onResponse(deviceId, msg);
    });
    // stats/telemetry: ingest validates with protocol/'s validators itself, to count refusals by their reason code.
    this.ingest = new Ingest({
      db,
      metrics,
      logger,
      flushMs: config.ingestFlushMs,
      batchSize: config.ingestBatchSize,
      retentionHours: config.statsRetentionHours,
      minuteRollupRetentionHours: config.minuteRollupRetentionHours,
      samplesRetentionDays: config.samplesRetentionDays,
      deliveryRetentionDays: config.alertDeliveryRetentionDays,
    });
    this.ingest.start();
    // Every message a device sends moves its lastSeen (batched by the device-state writer, no write per message).
    this.bus.on('stats', z.unknown(), (deviceId, msg) => {
      deviceState.seen(deviceId);
      return this.ingest.acceptStats(deviceId, msg);
    });
    this.bus.on('telemetry', z.unknown(), (deviceId, msg) => {
      deviceState.seen(deviceId);
      return this.ingest.acceptTelemetry(deviceId, msg);
    });
    await this.bus.start();
    phases.mark('bus');
    // Devices whose state changed while the broker or this server was down (any replica may run it: idempotent).
    if (this.mosquitto) {
      this.brokerReconciler = new BrokerReconciler({ access: this.mosquitto, metrics, logger, everyS: config.brokerReconcileS });
      await this.brokerReconciler.run();
      this.brokerReconciler.start();
    }
    // The embedded broker takes desired state straight in; an external one through the server's client.
    const desiredOut = this.broker ? embeddedPublisher(this.broker, metrics) : busPublisher(this.bus);
    this.desired = new DesiredState(db, desiredOut, logger, cipher, config.manifestTtlS);
    // Re-sign manifests before they expire; checking a few times per refresh horizon is plenty.
    this.manifestRefresh = setInterval(
      () => void this.desired.refreshExpiring().catch((err) => logger.error({ err }, 'manifest refresh failed')),
      Math.min(3600_000, (config.manifestTtlS * 1000) / 12),
    );
    this.manifestRefresh.unref();
    // One sender for the webhook outbox: subscriptions always, the alert webhook when configured.
    this.webhooks = new WebhookSender({
      db,
      url: config.alertWebhookUrl,
      secret: config.alertWebhookSecret,
      cipher,
      logger,
      metrics,
      maxAttempts: config.alertWebhookMaxAttempts,
      pollMs: config.alertWebhookPollMs,
      baseDelayMs: config.alertWebhookBaseDelayMs,
    });
    this.webhooks.start();
    if (config.alertWebhookUrl) this.alertWebhook = this.webhooks;
    this.driftMonitor = new DriftMonitor({ db, logger, cron: config.driftCron, windowS: config.driftWindowS, webhook: this.alertWebhook });
    this.driftMonitor.start();
    // Retraining and rollouts: only the holder of the scheduler lease runs them (see server/jobs/scheduler.ts).
    const holder = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    this.jobRunner = new JobRunner({
      db,
      store: this.store,
      desired: this.desired,
      logger,
      dataDir: config.dataDir,
      holder,
      serverUrl: () => config.publicUrl ?? this.httpUrl,
      maxUploadBytes: config.maxUploadBytes,
      heartbeatMs: config.schedulerTickMs,
      staleMs: Math.max(10 * config.schedulerTickMs, 2000),
      retryBackoffMs: config.jobRetryBackoffMs,
      concurrency: config.jobConcurrency,
    });
    this.scheduler = new Scheduler({ db, logger, desired: this.desired, runner: this.jobRunner, holder, enabled: config.schedulerEnabled, tickMs: config.schedulerTickMs, leaseTtlMs: config.schedulerLeaseTtlMs, webhook: this.alertWebhook });
    this.eventFeed = new EventFeed({ db, logger, pollMs: config.eventsPollMs, keepAliveMs: config.eventsKeepAliveMs, retentionDays: config.eventsRetentionDays });
    this.eventFeed.start();
    new FleetMetrics(db, metrics);
    registerDeliveryGauge(db, metrics);
    registerKeylistGauge(db, metrics);
    registerTrustGauges(db, metrics);
    this.staleDesired = new StaleDesiredMonitor({ db, desired: this.desired, logger, staleAfterS: config.desiredStaleAfterS });
    this.staleDesired.start();
    this.keylistWarner = new KeylistWarner({ db, logger, warnS: config.keylistWarnS });
    this.keylistWarner.start();
    // An external broker keeps retained messages itself; publishing again repairs one that lost them (idempotent).
    if (config.externalMqttUrl) await this.desired.publish();

    const app = createApp({
      db,
      store: this.store,
      metrics,
      logger,
      desired: this.desired,
      commands: this.commands,
      maxUploadBytes: config.maxUploadBytes,
      downloadGate: new DownloadGate(config.artifactMaxDownloads, config.artifactRetryAfterS, config.artifactIdleTimeoutS),
      versionReferenceChecks: [bundlesReferencingVersion],
      onDeviceChanged: async (id) => {
        await reconcileDevice(db, this.desired, id);
      },
      onKeyListChanged: () => this.desired.resignAll(),
      keyCipher: cipher,
      webhooks: this.webhooks,
      mosquitto: this.mosquitto && this.brokerReconciler ? { access: this.mosquitto, reconciler: this.brokerReconciler } : undefined,
      keylistWarnS: config.keylistWarnS,
      disconnectDevice: (id) => this.brokerAccess.revoked(id),
      brokerAccess: this.brokerAccess,
      mqttHooks: { token: config.mqttHookToken, server: { username: config.externalBroker.username, password: config.externalBroker.password } },
      deviceUrls: (requestUrl) => {
        const origin = new URL(requestUrl);
        return {
          serverUrl: config.publicUrl ?? origin.origin,
          mqttUrl: config.publicMqttUrl ?? config.externalMqttUrl ?? `${config.tls ? 'mqtts' : 'mqtt'}://${origin.hostname}:${this.mqttPort}`,
          ca: config.tlsCaPem,
        };
      },
      driftMonitor: this.driftMonitor,
      jobRunner: this.jobRunner,
      driftWindowS: config.driftWindowS,
      eventFeed: this.eventFeed,
      modelRunner: (this.modelRunner = new ModelRunner({ logger })),
      health: async () => {
        const database = await client.execute('SELECT 1').then(() => true, () => false);
        const mqtt = this.bus.connected;
        return { ok: database && mqtt, checks: { database, mqtt } };
      },
    });
    await new Promise<void>((resolve, reject) => {
      const tls = config.tls ? { createServer: createHttpsServer, serverOptions: { cert: config.tls.certPem, key: config.tls.keyPem } } : {};
      this.http = createAdaptorServer({ fetch: app.fetch, ...tls }) as Server;
      this.http.once('error', reject);
      // Node's default listen backlog (511) overflows when a fleet fetches a deployment's bundle within
      // seconds: the connections past it wait out SYN-ACK retransmits (1, 2, 4, 8 … s) and the agents'
      // 30 s idle timeouts (scale bench, bench/RESULTS.md "Artifact downloads at scale"). 4,096 is this kernel's somaxconn, as the MQTT listener's.
      this.http.listen({ port: config.httpPort, host: config.httpHost, backlog: HTTP_LISTEN_BACKLOG }, () => resolve());
    });
    this.httpPort = (this.http!.address() as AddressInfo).port;
    this.scheduler.start();
    phases.mark('http');
    logger.info({ http: this.httpPort, mqtt: this.mqttUrl, dataDir: config.dataDir, phasesMs: phases.ms }, 'control plane started');
  }

  async stop(): Promise<void> {
    const phases = new PhaseTimer();
    // Ends the open event streams first, so closing the HTTP server does not wait for them.
    this.eventFeed?.stop();
    await new Promise<void>((resolve) => {
      if (!this.http) return resolve();
      this.http.close(() => resolve());
      this.http.closeAllConnections?.();
    });
    phases.mark('http');
    // Devices go first, and what they sent before reaches its handlers: the broker acknowledged it.
    await this.broker?.closeDevices();
    phases.mark('devicesClosed');
    await this.bus?.drain();
    phases.mark('busDrained');
    clearInterval(this.manifestRefresh);
    this.brokerReconciler?.stop();
    this.keylistWarner?.stop();
    await this.staleDesired?.stop();
    await this.scheduler?.stop();
    await this.modelRunner?.stop();
    await this.jobRunner?.stop();
    this.commands?.stop();
    await this.bus?.stop();
    await this.driftMonitor?.stop();
    await this.ingest?.stop();
    await this.webhooks?.stop();
    await this.broker?.stop();
    await this.dynsec?.stop();
    await this.deviceState?.stop(); // after the broker: its disconnects mark every device offline
    phases.mark('rest');
    this.dbClient?.close();
    this.logger.info({ phasesMs: phases.ms }, 'control plane stopped');
  }
}

// The agent's composition root: identity → bundles on disk and runtime (boot into the newest bundle
// that verifies) → local API → MQTT session (desired, commands, reported, status). The constructor
// only stores its inputs; start() brings everything up, stop() tears it down in reverse order with
// no timers, sockets or worker threads left behind.
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { PublicKeyRef } from '../firmware-bundles/keys.ts';
import { BundleStore } from './bundle-store.ts';
import { CommandHandler } from './commands.ts';
import type { AgentConfig } from './config.ts';
import { Downloader } from './downloader.ts';
import { EngineRuntime } from './engine-adapter.ts';
import { loadOrEnroll, parseTrustRoot, type Identity } from './identity.ts';
import { pinnedFetch, readCaFile } from './tls-pin.ts';
import { LocalApi } from './local-api.ts';
import type { ModelRuntime } from './model-runtime.ts';
import { Monitoring } from './monitoring/monitoring.ts';
import { MqttSession } from './mqtt-session.ts';
import { loadedNativeModules } from './native-modules.ts';
import { BrokerAccessRestore } from './broker-access-restore.ts';
import { Reconciler } from './reconciler.ts';
import { Reporter } from './reporter.ts';
import { SampleCapture } from './sample-capture.ts';
import { ShadowEvaluator } from './shadow/shadow-evaluator.ts';
import { StateStore } from './state-store.ts';
import { AGENT_VERSION } from './version.ts';

const LOCK_FILE = 'agent.lock';
const SAMPLE_OUTBOX_DIR = 'samples-outbox';

export class AgentLockedError extends Error {
  override name = 'AgentLockedError';
}

export class Agent {
  identity?: Identity;
  runtime?: ModelRuntime;
  reconciler?: Reconciler;
  reporter?: Reporter;
  state?: StateStore;
  session?: MqttSession;
  brokerRestore?: BrokerAccessRestore;
  api?: LocalApi;
  capture?: SampleCapture;
  monitoring?: Monitoring;
  shadow?: ShadowEvaluator;
  private commands?: CommandHandler;
  private lockPath?: string;
  private readonly stopCtl = new AbortController();
  private readonly startedAt = new Date().toISOString();

  constructor(
    readonly config: AgentConfig,
    readonly logger: Logger,
    /**
     * Seams for the fleet simulator (simulator/): another runtime (a stub instead of onnxruntime), no
     * local API (one listening socket per simulated device would be wasted).
     */
    private readonly deps: { runtime?: ModelRuntime; localApi?: boolean } = {},
  ) {}

  async start(): Promise<void> {
    const { config, logger } = this;
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
    await this.lock();
    const trustRoot: PublicKeyRef | undefined = config.trustRoot ? await parseTrustRoot(config.trustRoot) : undefined;
    const ca = config.ca ? await readCaFile(config.ca) : undefined;
    const identity = await loadOrEnroll({
      dataDir: config.dataDir,
      server: config.server,
      enrollToken: config.enrollToken,
      name: config.name,
      trustRoot,
      ca,
      logger,
      signal: this.stopCtl.signal,
      retry: { minMs: config.reconnectMinMs, maxMs: config.reconnectMaxMs },
    });
    this.identity = identity;
    const log = logger.child({ deviceId: identity.deviceId });
    // With a pinned CA, every HTTPS call and the MQTT connection verify against it alone.
    const tlsFetch = pinnedFetch(identity.tls?.ca);

    const state = new StateStore(config.dataDir);
    this.state = state;
    const bundles = new BundleStore(config.dataDir);
    const runtime = this.deps.runtime ?? new EngineRuntime({ logger: log, hostOptions: { thread: config.inferenceThread } });
    this.runtime = runtime;
    await runtime.start();
    const reporter = new Reporter(state, AGENT_VERSION, log);
    this.reporter = reporter;
    const downloader = new Downloader({
      baseUrl: config.artifactUrl ?? identity.serverUrl,
      username: identity.deviceId,
      password: identity.mqtt.password,
      retries: config.downloadRetries,
      answerTimeoutMs: config.downloadAnswerTimeoutMs,
      idleTimeoutMs: config.downloadIdleTimeoutMs,
      backoff: { minMs: Math.min(1000, config.reconnectMinMs), maxMs: Math.min(30_000, config.reconnectMaxMs) },
      logger: log,
      fetch: tlsFetch,
    });
    const monitoring = new Monitoring({ deviceId: identity.deviceId, config, state, runtime, logger: log });
    this.monitoring = monitoring;
    // Opt-in: idle until a verified manifest's agentConfig turns it on.
    // Batches wait on disk (own directory and bound), so a restart does not lose them.
    const capture = new SampleCapture({
      serverUrl: identity.serverUrl,
      deviceId: identity.deviceId,
      secret: identity.mqtt.password,
      logger: log,
      storeDir: path.join(config.dataDir, SAMPLE_OUTBOX_DIR),
      maxStoredBytes: config.sampleOutboxMaxBytes,
      fetch: tlsFetch,
    });
    this.capture = capture;
    runtime.onPrediction((e) => capture.offerPrediction(e));
    await capture.start();
    // Candidates named in the serving manifest run beside the active model, never answering.
    const shadow = new ShadowEvaluator({ dataDir: config.dataDir, agentVersion: AGENT_VERSION, downloader, downloadTimeoutMs: config.updateTimeoutMs, runtime, report: (r) => reporter.setShadow(r), logger: log });
    this.shadow = shadow;
    shadow.start();
    const reconciler = new Reconciler({
      deviceId: identity.deviceId,
      pinnedRoot: identity.trust ? { keyid: identity.trust.keyid, publicKey: identity.trust.publicKey } : null,
      agentVersion: AGENT_VERSION,
      config,
      state,
      bundles,
      downloader,
      runtime,
      reporter,
      logger: log,
      onActive: (b) => {
        monitoring.bundleActivated(b);
        capture.configure(b);
        shadow.configure(b.manifest);
      },
    });
    this.reconciler = reconciler;
    await reconciler.start();
    await monitoring.start(); // after the reconciler loaded the state (sequences live there)

    if (this.deps.localApi !== false) {
      this.api = new LocalApi({ host: config.apiHost, port: config.apiPort, socketPath: config.apiSocket, runtime, logger: log, status: () => this.status() });
      await this.api.start();
    }

    // Asks no more often than the reconnect backoff's ceiling (30 s at most at first).
    const restore = new BrokerAccessRestore({ serverUrl: identity.serverUrl, deviceId: identity.deviceId, secret: identity.mqtt.password, fetch: tlsFetch, logger: log, firstPauseMs: Math.min(30_000, config.reconnectMaxMs) });
    this.brokerRestore = restore;
    const session = new MqttSession({
      url: identity.mqtt.url,
      deviceId: identity.deviceId,
      password: identity.mqtt.password,
      agentVersion: AGENT_VERSION,
      logger: log,
      reconnect: { minMs: config.reconnectMinMs, maxMs: config.reconnectMaxMs, probeMaxMs: config.reconnectProbeMaxMs },
      connectTimeoutMs: config.mqttConnectTimeoutMs,
      ca: identity.tls?.ca,
      onDesired: (payload) => reconciler.handleDesired(payload),
      onCommand: (payload) => this.commands!.handle(payload),
      onRefused: () => restore.refused(),
      onConnected: () => {
        restore.connected();
        reporter.flush();
        monitoring.connected();
      },
    });
    this.commands = new CommandHandler({
      logger: log,
      dataDir: config.dataDir,
      reply: (message) => session.publish('cmd/res', message),
      ping: () => ({ pong: true, at: new Date().toISOString(), agentVersion: AGENT_VERSION, active: this.status().active }),
      report: () => {
        reporter.flush();
        return reporter.snapshot();
      },
    });
    this.session = session;
    reporter.attach(session);
    monitoring.attach(session);
    session.start();
    log.info({ version: AGENT_VERSION, dataDir: config.dataDir, api: this.api ? `${config.apiHost}:${this.api.port}` : null }, 'agent started');
  }

  /** GET /v1/status: identity, the active bundle, and where updates stand. */
  status() {
    const snap = this.reporter?.snapshot();
    return {
      deviceId: this.identity?.deviceId ?? null,
      agentVersion: AGENT_VERSION,
      startedAt: this.startedAt,
      trustRoot: this.identity?.trust ? { keyid: this.identity.trust.keyid, source: this.identity.trust.source } : null,
      mqtt: { connected: this.session?.connected ?? false, loginsRestored: this.brokerRestore?.restored ?? 0 },
      monitoring: this.monitoring?.status() ?? null,
      sampleCapture: this.capture?.status() ?? null,
      shadow: this.shadow?.status() ?? null,
      active: snap?.active ?? null,
      /** The active bundle's onnxruntime session options, over the worker's defaults (graph optimizations all, QDQ folded). */
      sessionOptions: this.runtime?.activeSessionOptions?.() ?? null,
      /** Which thread the active model runs on and why (`--inference-thread`; runtime/thread-choice.ts). */
      inference: this.runtime?.activePlacement?.() ?? null,
      memory: memoryNow(),
      update: snap
        ? { state: snap.state, desired: snap.desired, progress: snap.progress ?? null, lastError: snap.lastError, transitions: snap.transitions.slice(-20), ...this.reconciler?.status(), droppedCommands: this.commands?.dropped ?? 0, droppedCommandsBy: this.commands?.droppedBy ?? null }
        : null,
    };
  }

  async stop(): Promise<void> {
    this.stopCtl.abort(new Error('agent stopping'));
    await this.api?.stop();
    await this.monitoring?.stop(); // the window in progress goes to the outbox
    await this.capture?.stop();
    await this.session?.stop();
    await this.reconciler?.stop();
    await this.shadow?.stop();
    await this.commands?.stop();
    await this.runtime?.stop();
    if (this.lockPath) await rm(this.lockPath, { force: true });
    this.logger.info('agent stopped');
  }

  /** One agent per data dir: a second one would race the first on the same files. */
  private async lock(): Promise<void> {
    const file = path.join(this.config.dataDir, LOCK_FILE);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await open(file, 'wx', 0o600);
        await fh.writeFile(String(process.pid));
        await fh.close();
        this.lockPath = file;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
        if (pid > 0 && pid !== process.pid && isAlive(pid)) throw new AgentLockedError(`another agent (pid ${pid}) uses ${this.config.dataDir}`);
        await rm(file, { force: true }); // stale: its agent was killed
      }
    }
    throw new AgentLockedError(`cannot lock ${file}`);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** This process's memory in MB (agent/README.md, "Memory", explains what makes it up). */
function memoryNow() {
  const m = process.memoryUsage();
  const mb = (n: number) => Math.round(n / 1e5) / 10;
  return { rssMB: mb(m.rss), heapUsedMB: mb(m.heapUsed), heapTotalMB: mb(m.heapTotal), externalMB: mb(m.external), arrayBuffersMB: mb(m.arrayBuffers), native: loadedNativeModules() };
}

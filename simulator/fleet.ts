// N simulated devices in one process, each a real `Agent` (enrollment, MQTT session with last will,
// signed desired state, reporting, telemetry, stats windows, the on-disk outbox) with its own data
// directory, the `StubRuntime` instead of onnxruntime and no local API. One fleet-wide timer sends the
// simulated requests (not one timer per device), and starts are bounded in parallel so enrolling
// thousands of devices does not open thousands of HTTP requests at once (nor, with a connect wait,
// thousands of MQTT connections).
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Logger } from 'pino';
import { Agent } from '../agent/agent.ts';
import { parseAgentConfig } from '../agent/config.ts';
import type { DriftSpec } from './inputs.ts';
import { StubRuntime } from './stub-runtime.ts';

export interface FleetOptions {
  devices: number;
  server: string;
  enrollToken?: string;
  /** Root public key to pin (else trust on first use from the enrollment answer). */
  trustRoot?: string;
  /** Parent of one data directory per device (`<dataDir>/<name>`); kept, so a restart reuses identities. */
  dataDir: string;
  /** Device names are `<namePrefix><index>`; distinct per simulator process targeting one server. */
  namePrefix: string;
  telemetryS?: number;
  statsS?: number;
  /** Share of devices (0..1) whose every update fails (model load refused). */
  failUpdates: number;
  drift: readonly DriftSpec[];
  /** Request rows each device with an active tabular bundle sends per second (0: none). */
  rowsPerS: number;
  /** Agents starting (enrolling) at the same time. */
  startConcurrency: number;
  /**
   * How long a start slot waits for its device's MQTT session before starting the next device (0: not
   * at all). With it, at most `startConcurrency` devices connect at once: a loaded broker sees bounded
   * batches, not every device's CONNECT with its timeouts and retries; a device not connected by then
   * goes on retrying with the agent's own jittered backoff.
   */
  connectWaitMs: number;
  probationMs: number;
  /** The agents' download splay (--download-splay-ms; 0: none). */
  downloadSplayMs?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  logger: Logger;
}

export interface FleetProgress {
  devices: number;
  started: number;
  connected: number;
  updating: number;
  active: number;
  failed: number;
  /** Devices whose agent has decided on a signed desired state (verified and accepted it, or refused it). */
  accepted: number;
  /** Messages the broker acknowledged since the fleet started. */
  published: number;
  /** Lowest and highest counter of the desired states accepted (0: none yet): a new deployment reached every device once the lowest passed the highest before it. */
  counterMin: number;
  counterMax: number;
}

interface SimDevice {
  name: string;
  agent: Agent;
  runtime: StubRuntime;
  started: boolean;
}

const UPDATING = new Set(['downloading', 'verifying', 'staging', 'activating', 'probation']);

/** Stable choice of the failing devices: the same names fail on every run. */
export function failsUpdates(name: string, share: number): boolean {
  if (share <= 0) return false;
  const h = createHash('sha256').update(name).digest().readUInt32BE(0);
  return h / 2 ** 32 < share;
}

export class SimFleet {
  readonly devices: SimDevice[] = [];
  private requestTimer?: NodeJS.Timeout;
  private stopping = false;
  private starting?: Promise<void>;
  /** Agents that failed to start (e.g. enrollment refused), with the first reason. */
  startFailures = 0;
  firstStartError: string | null = null;

  constructor(private readonly o: FleetOptions) {}

  /** Starts every device (bounded in parallel); resolves once all have started or failed to. */
  async start(): Promise<void> {
    const { o } = this;
    for (let i = 0; i < o.devices; i++) {
      const name = `${o.namePrefix}${i}`;
      const runtime = new StubRuntime({ failLoads: failsUpdates(name, o.failUpdates), drift: o.drift });
      const config = parseAgentConfig({
        server: o.server,
        enrollToken: o.enrollToken,
        trustRoot: o.trustRoot,
        name,
        dataDir: path.join(o.dataDir, name),
        logLevel: o.logger.level,
        telemetryIntervalS: o.telemetryS,
        statsWindowS: o.statsS,
        probationMs: o.probationMs,
        downloadSplayMs: o.downloadSplayMs ?? 0,
        ...(o.reconnectMinMs !== undefined ? { reconnectMinMs: o.reconnectMinMs } : {}),
        ...(o.reconnectMaxMs !== undefined ? { reconnectMaxMs: o.reconnectMaxMs } : {}),
      });
      const agent = new Agent(config, o.logger.child({ sim: name }), { runtime, localApi: false });
      this.devices.push({ name, agent, runtime, started: false });
    }
    if (o.rowsPerS > 0) this.requestTimer = setInterval(() => this.sendRequests(), 1000);
    let next = 0;
    const worker = async () => {
      while (next < this.devices.length && !this.stopping) {
        const d = this.devices[next++];
        try {
          await d.agent.start();
          d.started = true;
          await this.connected(d);
        } catch (err) {
          this.startFailures++;
          this.firstStartError ??= `${d.name}: ${(err as Error).message}`;
          await d.agent.stop().catch(() => {}); // whatever it had opened before failing
        }
      }
    };
    this.starting = Promise.all(Array.from({ length: Math.max(1, Math.min(o.startConcurrency, this.devices.length)) }, worker)).then(() => {});
    await this.starting;
  }

  /** Resolves once the device's session is connected, the connect wait is over or the fleet stops. */
  private async connected(d: SimDevice): Promise<void> {
    const end = Date.now() + this.o.connectWaitMs;
    while (!d.agent.session?.connected && Date.now() < end && !this.stopping) await new Promise((r) => setTimeout(r, 25));
  }

  private sendRequests(): void {
    for (const d of this.devices) {
      if (!d.started) continue;
      const input = d.runtime.request(this.o.rowsPerS);
      if (input) d.agent.runtime!.predict(input).catch(() => {});
    }
  }

  progress(): FleetProgress {
    const p: FleetProgress = { devices: this.devices.length, started: 0, connected: 0, updating: 0, active: 0, failed: 0, accepted: 0, published: 0, counterMin: Infinity, counterMax: 0 };
    for (const d of this.devices) {
      if (!d.started) continue;
      p.started++;
      const { session, reporter } = d.agent;
      if (session?.connected) p.connected++;
      p.published += session?.published ?? 0;
      if (reporter?.desiredCounter != null) p.accepted++;
      const counter = reporter?.desiredCounter ?? 0;
      p.counterMin = Math.min(p.counterMin, counter);
      p.counterMax = Math.max(p.counterMax, counter);
      const state = reporter?.current;
      if (state && UPDATING.has(state)) p.updating++;
      else if (state === 'active') p.active++;
      else if (state === 'failed' || state === 'rolled_back') p.failed++;
    }
    if (p.counterMin === Infinity) p.counterMin = 0;
    return p;
  }

  /** Stops every agent (each announces `offline` and puts its open window in its outbox). */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.requestTimer);
    await this.starting?.catch(() => {});
    const queue = this.devices.filter((d) => d.started);
    const worker = async () => {
      for (let d = queue.pop(); d; d = queue.pop()) await d.agent.stop().catch(() => {});
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(this.o.startConcurrency, queue.length)) }, worker));
  }
}

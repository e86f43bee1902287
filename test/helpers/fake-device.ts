// A device simulated over real MQTT for rollout tests: enrolled through the API, it reports the bundle of
// every signed desired state it receives as active, and keeps what it was sent (bundle and manifest
// counter, in order) so a test can tell a manifest re-delivered (same counter: a retained message after
// a reconnect or a server restart) from a device notified again (a new counter). It reconnects and
// resubscribes by itself, so it rides out a control-plane restart.
import mqtt, { type MqttClient } from 'mqtt';
import { DesiredMessage } from '../../protocol/messages/desired.ts';
import { deviceTopic } from '../../protocol/topics.ts';
import type { TestPlane } from './control-plane.ts';

const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };

export class FakeDevice {
  client!: MqttClient;
  /** Every desired manifest received, in order (re-deliveries included). */
  readonly received: Array<{ bundleId: string; counter: number }> = [];
  active: string | null = null;

  private constructor(readonly id: string, private readonly password: string) {}

  /** Enrolls with `enrollToken` (named `name` when given) and connects to the plane's broker. */
  static async enroll(cp: TestPlane, enrollToken: string, name?: string): Promise<FakeDevice> {
    const r = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: enrollToken, facts: FACTS, ...(name ? { name } : {}) } });
    if (r.status !== 201) throw new Error(`enroll: ${r.status} ${JSON.stringify(r.body)}`);
    const d = new FakeDevice(r.body.deviceId, r.body.mqtt.password);
    await d.connect(cp.mqttUrl);
    return d;
  }

  private async connect(url: string): Promise<void> {
    this.client = await mqtt.connectAsync(url, { clientId: this.id, username: this.id, password: this.password, reconnectPeriod: 200, connectTimeout: 5000 });
    this.client.on('message', (_t, payload) => {
      const manifest = DesiredMessage.parse(JSON.parse(payload.toString())).manifest as unknown as { signed: { bundle: { id: string; name: string; model: { name: string; version: number } }; counter: number } };
      const { bundle, counter } = manifest.signed;
      this.received.push({ bundleId: bundle.id, counter });
      this.active = bundle.id;
      const at = new Date().toISOString();
      const report = {
        v: 1,
        at,
        agentVersion: '0.1.0',
        state: 'active',
        active: { bundleId: bundle.id, bundleName: bundle.name, model: bundle.model, counter, modelSha256: 'x'.repeat(64), activatedAt: at },
        desired: { bundleId: bundle.id, counter },
        lastError: null,
        transitions: [],
      };
      // A report in flight while the broker is away is lost; the retained desired state comes back on reconnect.
      this.client.publishAsync(deviceTopic(this.id, 'reported'), JSON.stringify(report), { qos: 1, retain: true }).catch(() => {});
    });
    // Subscribed again on every (re)connect: a restarted broker knows no session.
    this.client.on('connect', () => void this.client.subscribeAsync(deviceTopic(this.id, 'desired'), { qos: 1 }).catch(() => {}));
    await this.client.subscribeAsync(deviceTopic(this.id, 'desired'), { qos: 1 });
  }

  /** The distinct manifest counters this device was sent for `bundleId` (one per time it was notified). */
  countersFor(bundleId: string): number[] {
    return [...new Set(this.received.filter((r) => r.bundleId === bundleId).map((r) => r.counter))];
  }

  async publish(channel: 'stats' | 'telemetry', payload: unknown): Promise<void> {
    await this.client.publishAsync(deviceTopic(this.id, channel), JSON.stringify(payload), { qos: 1 });
  }

  /** Reports a failed update (retained, as an agent does): `code` and `message` as the agent's lastError. */
  async reportFailure(bundleId: string, counter: number, error: { code: string; message: string; at: Date }): Promise<void> {
    const at = error.at.toISOString();
    const report = { v: 1, at, agentVersion: '0.1.0', state: 'failed', active: null, desired: { bundleId, counter }, lastError: { code: error.code, message: error.message, at, counter }, transitions: [{ state: 'failed', at, counter, reason: error.code }] };
    await this.client.publishAsync(deviceTopic(this.id, 'reported'), JSON.stringify(report), { qos: 1, retain: true });
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

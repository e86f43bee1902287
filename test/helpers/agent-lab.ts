// What the in-process agent tests share (test/agent-*.test.ts that construct `Agent`): a real control
// plane (test/helpers/control-plane.ts: HTTP and embedded MQTT on ephemeral ports, libsql in a temp
// dir), a real artifact server, a test trust root, and one agent enrolled in the plane and running in
// this process on its own data dir. Manifests are signed here and published as the server would;
// stop() tears it all down, observers included.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { Agent } from '../../agent/agent.ts';
import { parseAgentConfig, type AgentConfig, type AgentConfigInput } from '../../agent/config.ts';
import { createAgentLogger } from '../../agent/logger.ts';
import { ArtifactServer, buildTestBundle, TestTrust, type TestBundle } from '../../agent/testing/harness.ts';
import type { Channel } from '../../protocol/topics.ts';
import { startControlPlane, type TestPlane } from './control-plane.ts';
import { observeDevice } from './device-observer.ts';

type Manifest = Parameters<TestTrust['desired']>[0];
type ManifestOptions = Parameters<TestTrust['bundleManifest']>[2];

export class AgentLab {
  /** The running agent; startAgent() replaces it (after a test stopped it). */
  agent!: Agent;
  config!: AgentConfig;
  readonly art = new ArtifactServer();
  readonly trust = new TestTrust();
  private readonly observers: MqttClient[] = [];

  private constructor(
    readonly cp: TestPlane,
    /** The agent's data dir (removed by stop()). */
    readonly dataDir: string,
  ) {}

  /**
   * Starts the plane, the artifact server and an agent enrolled with a fresh token. `agent` adds to or
   * overrides the wiring (server, token, data dir, trust root, artifact URL, API on an ephemeral port)
   * and the short probation (200 ms) that lets a deploy settle quickly.
   */
  static async start(o: { prefix: string; agent?: Partial<AgentConfigInput> }): Promise<AgentLab> {
    const cp = await startControlPlane();
    const dataDir = await mkdtemp(path.join(tmpdir(), o.prefix)).catch(async (e) => {
      await cp.stop();
      throw e;
    });
    const lab = new AgentLab(cp, dataDir);
    try {
      await lab.art.start();
      const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: {} } })).body.token;
      lab.config = parseAgentConfig({
        server: cp.url,
        enrollToken: token,
        dataDir,
        apiPort: 0,
        trustRoot: lab.trust.rootArg,
        artifactUrl: lab.art.url,
        probationMs: 200,
        logLevel: process.env.FLOTILLA_TEST_LOG ?? 'silent',
        ...o.agent,
      });
      await lab.startAgent();
      return lab;
    } catch (e) {
      await lab.stop(); // whatever had started
      throw e;
    }
  }

  /** A new agent on the same config and data dir (it keeps its identity and state). */
  async startAgent(): Promise<Agent> {
    this.agent = new Agent(this.config, createAgentLogger(this.config.logLevel));
    await this.agent.start();
    return this.agent;
  }

  get deviceId(): string {
    return this.agent.identity!.deviceId;
  }

  /** The local API's port (a restarted agent gets a new one). */
  get port(): number {
    return this.agent.api!.port;
  }

  /** Builds a bundle from one of the demo definitions and serves its files. */
  async bundle(model: Uint8Array, demo?: Parameters<typeof buildTestBundle>[1], o?: Parameters<typeof buildTestBundle>[2]): Promise<TestBundle> {
    const b = await buildTestBundle(model, demo, o);
    for (const f of [b.model, b.bundleJson, b.smoke]) if (f) this.art.add(f.bytes);
    return b;
  }

  /** Publishes the device's desired state (retained), with the trust's current key list unless another is given. */
  publish(manifest: Manifest, keylist?: Parameters<TestTrust['desired']>[1]): Promise<void> {
    return this.cp.plane.bus.publish(this.deviceId, 'desired', this.trust.desired(manifest, keylist), { retain: true });
  }

  /** Publishes a signed manifest of `bundle` for this device. */
  deploy(bundle: TestBundle, o: ManifestOptions): Promise<void> {
    return this.publish(this.trust.bundleManifest(this.deviceId, bundle, o));
  }

  /** Watches the device's `channels` as the server sees them (test/helpers/device-observer.ts); ended by stop(). */
  async observe(channels: Channel[], onMessage: (channel: Channel, msg: any) => void): Promise<MqttClient> {
    const client = await observeDevice(this.cp, this.deviceId, channels, onMessage);
    this.observers.push(client);
    return client;
  }

  async stop(): Promise<void> {
    await Promise.all(this.observers.map((c) => c.endAsync()));
    await this.agent?.stop();
    await this.art.stop();
    await this.cp.stop();
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

// The ingest bench's device clients. Real devices are other machines, so by default they run in a
// child process (`fork`) and the bench's process holds only the broker and the receiver (the server,
// or the baseline's bare subscriber). BENCH_INGEST_PUBLISHERS=inline keeps them in the bench's own
// process, as before, where the server competed with its own load generator for one event loop.
//
// As a child: `connect` opens one MQTT client per device, `load` hands over the payloads (outside the
// timed part), `go` publishes them all at QoS 1 (each client pipelining its own), `end` closes.
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { deviceTopic } from '../protocol/topics.ts';

export interface PublisherClient {
  id: string;
  opts: IClientOptions;
}
type Channel = 'stats' | 'telemetry';
type Msg = { type: 'connect'; url: string; clients: PublisherClient[] } | { type: 'load'; channel: Channel; payloads: string[][] } | { type: 'go' } | { type: 'end' };

/** One client per device, publishing from this process. */
class InlinePublishers {
  private clients: Array<{ id: string; client: MqttClient }> = [];
  private loaded: { channel: Channel; payloads: string[][] } | undefined;

  async connect(url: string, clients: PublisherClient[]): Promise<void> {
    this.clients = await Promise.all(clients.map(async ({ id, opts }) => ({ id, client: await mqtt.connectAsync(url, { clientId: id, reconnectPeriod: 0, ...opts }) })));
  }

  load(channel: Channel, payloads: string[][]): void {
    this.loaded = { channel, payloads };
  }

  async go(): Promise<void> {
    const { channel, payloads } = this.loaded!;
    this.loaded = undefined;
    await Promise.all(this.clients.map(({ id, client }, i) => Promise.all(payloads[i].map((p) => client.publishAsync(deviceTopic(id, channel), p, { qos: 1 })))));
  }

  async end(): Promise<void> {
    await Promise.all(this.clients.map(({ client }) => client.endAsync()));
    this.clients = [];
  }

  async close(): Promise<void> {}
}

/** The same clients in a child process, driven over IPC. */
class ChildPublishers {
  private readonly child: ChildProcess;

  constructor() {
    this.child = fork(path.join(import.meta.dirname, 'ingest-publishers.ts'), { execArgv: ['--import', 'tsx'], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  }

  private ask(m: Msg, reply: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const on = (r: { type: string; error?: string }) => {
        if (r.type !== reply && r.type !== 'error') return;
        this.child.off('message', on);
        this.child.off('exit', died);
        if (r.type === 'error') reject(new Error(`publishers: ${r.error}`));
        else resolve();
      };
      const died = (code: number | null) => reject(new Error(`publishers exited (${code})`));
      this.child.on('message', on);
      this.child.once('exit', died);
      this.child.send(m);
    });
  }

  connect = (url: string, clients: PublisherClient[]) => this.ask({ type: 'connect', url, clients }, 'connected');
  load = (channel: Channel, payloads: string[][]) => this.ask({ type: 'load', channel, payloads }, 'loaded');
  go = () => this.ask({ type: 'go' }, 'published');

  end = () => this.ask({ type: 'end' }, 'ended');

  async close(): Promise<void> {
    if (this.child.connected) this.child.disconnect();
  }
}

export interface Publishers {
  connect(url: string, clients: PublisherClient[]): Promise<void>;
  /** Hands over the payloads (not timed). */
  load(channel: Channel, payloads: string[][]): Promise<void> | void;
  /** Publishes what was loaded; resolves once every message is acknowledged by the broker. */
  go(): Promise<void>;
  /** Closes the clients (the process stays for the next connect). */
  end(): Promise<void>;
  /** Ends the child process, if any. */
  close(): Promise<void>;
}

export const publishersWhere = (): 'child' | 'inline' => (process.env.BENCH_INGEST_PUBLISHERS === 'inline' ? 'inline' : 'child');

export function startPublishers(): Publishers {
  return publishersWhere() === 'inline' ? new InlinePublishers() : new ChildPublishers();
}

if (process.send && process.argv[1] === import.meta.filename) {
  const own = new InlinePublishers();
  process.on('message', async (m: Msg) => {
    try {
      if (m.type === 'connect') await own.connect(m.url, m.clients), process.send!({ type: 'connected' });
      else if (m.type === 'load') own.load(m.channel, m.payloads), process.send!({ type: 'loaded' });
      else if (m.type === 'go') await own.go(), process.send!({ type: 'published' });
      else if (m.type === 'end') await own.end(), process.send!({ type: 'ended' });
      // Once the bench disconnects, nothing is left to do: let the process exit.
    } catch (err) {
      process.send!({ type: 'error', error: String(err) });
    }
  });
}

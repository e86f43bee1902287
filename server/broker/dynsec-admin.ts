// A client of Mosquitto 2's dynamic-security plugin: commands are JSON published on
// `$CONTROL/dynamic-security/v1`, answered on `…/v1/response` in one message per request. Each
// command carries a correlation id, echoed in its answer, so concurrent requests never mix answers.
// queue() pipelines: requests made while one message is on its way go out together in the next one
// (the plugin takes a `commands` array), so a burst of enrollments costs a few messages, not one each.
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';

const CONTROL_TOPIC = '$CONTROL/dynamic-security/v1';
const RESPONSE_TOPIC = `${CONTROL_TOPIC}/response`;

export interface DynsecCommand {
  command: string;
  [field: string]: unknown;
}

export interface DynsecResponse {
  command: string;
  error?: string;
  data?: Record<string, unknown>;
  correlationData?: string;
}

export class DynsecError extends Error {
  override name = 'DynsecError';
}

export interface DynsecAdminOptions {
  url: string;
  username: string;
  password: string;
  logger: Logger;
  /** An answer later than this fails the request (the broker is down or the plugin missing). */
  timeoutMs?: number;
}

/** Commands per pipelined message at most (2–3 per enrollment). */
const QUEUE_MAX_COMMANDS = 60;
/** Extra time to answer per command of a message. */
const PER_COMMAND_MS = 200;

interface Queued {
  commands: DynsecCommand[];
  resolve(r: DynsecResponse[]): void;
  reject(err: unknown): void;
}

export class DynsecAdmin {
  private client?: MqttClient;
  private readonly waiting = new Map<string, (r: DynsecResponse) => void>();
  private seq = 0;
  private queued: Queued[] = [];
  private flushing = false;
  /** Messages sent by queue() and the requests they carried (the scale bench reports the ratio). */
  readonly pipeline = { messages: 0, requests: 0 };
  private readonly prefix = randomBytes(4).toString('hex');

  constructor(private readonly opts: DynsecAdminOptions) {}

  async start(): Promise<void> {
    const client = mqtt.connect(this.opts.url, {
      username: this.opts.username,
      password: this.opts.password,
      clientId: `flotilla-dynsec-${this.prefix}`,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
    });
    this.client = client;
    client.on('message', (topic, payload) => {
      if (topic !== RESPONSE_TOPIC) return;
      let body: { responses?: DynsecResponse[] };
      try {
        body = JSON.parse(payload.toString('utf8'));
      } catch {
        return;
      }
      for (const r of body.responses ?? []) {
        const resolve = r.correlationData ? this.waiting.get(r.correlationData) : undefined;
        if (!resolve) continue;
        this.waiting.delete(r.correlationData!);
        resolve(r);
      }
    });
    client.on('error', (err) => this.opts.logger.warn({ err: err.message }, 'mqtt dynamic-security admin client error'));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        client.end(true);
        reject(new DynsecError(`cannot log in to the broker as its dynamic-security admin (${this.opts.username}): ${err.message}`));
      };
      client.once('error', onError);
      client.once('connect', () => {
        client.off('error', onError);
        resolve();
      });
    });
    // Each new connection subscribes again (clean session).
    client.on('connect', () => void client.subscribeAsync(RESPONSE_TOPIC, { qos: 1 }).catch(() => {}));
    await client.subscribeAsync(RESPONSE_TOPIC, { qos: 1 });
  }

  /**
   * Sends commands in one message (the plugin runs them in order) and returns one answer per command,
   * errors included: callers decide which errors are benign (e.g. "already exists").
   */
  async run(commands: DynsecCommand[]): Promise<DynsecResponse[]> {
    const client = this.client;
    if (!client?.connected) throw new DynsecError('not connected to the broker');
    const ids = commands.map(() => `${this.prefix}-${++this.seq}`);
    // One answer message comes after all of a message's commands ran, and Mosquitto 2.0 rewrites its
    // whole dynamic-security file after each change (O(clients) per command): a longer message gets longer.
    const timeoutMs = (this.opts.timeoutMs ?? 10_000) + PER_COMMAND_MS * commands.length;
    const answers = ids.map(
      (id) =>
        new Promise<DynsecResponse>((resolve, reject) => {
          const timer = setTimeout(() => {
            this.waiting.delete(id);
            reject(new DynsecError('the broker did not answer a dynamic-security command in time'));
          }, timeoutMs);
          this.waiting.set(id, (r) => {
            clearTimeout(timer);
            resolve(r);
          });
        }),
    );
    // Settle every answer even if publishing fails, so no timer is left behind.
    const all = Promise.allSettled(answers);
    await client.publishAsync(CONTROL_TOPIC, JSON.stringify({ commands: commands.map((c, i) => ({ ...c, correlationData: ids[i] })) }), { qos: 1 }).catch((err: Error) => {
      for (const id of ids) this.waiting.get(id)?.({ command: 'publish', error: err.message, correlationData: id });
    });
    const settled = await all;
    return settled.map((s) => {
      if (s.status === 'rejected') throw s.reason;
      return s.value;
    });
  }

  /**
   * Like run(), but pipelined: at most one queued message is in flight; requests arriving meanwhile
   * are sent together in the next one. Mosquitto runs a message's commands in order, one request's
   * commands stay adjacent, and each request gets back exactly its own answers.
   */
  queue(commands: DynsecCommand[]): Promise<DynsecResponse[]> {
    return new Promise((resolve, reject) => {
      this.queued.push({ commands, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    // Lets the requests made in the same turn of the event loop join the first message too.
    await new Promise((r) => setImmediate(r));
    while (this.queued.length) {
      const batch: Queued[] = [];
      let n = 0;
      while (this.queued.length && (batch.length === 0 || n + this.queued[0].commands.length <= QUEUE_MAX_COMMANDS)) {
        const q = this.queued.shift()!;
        batch.push(q);
        n += q.commands.length;
      }
      this.pipeline.messages++;
      this.pipeline.requests += batch.length;
      try {
        const answers = await this.run(batch.flatMap((q) => q.commands));
        let at = 0;
        for (const q of batch) {
          q.resolve(answers.slice(at, at + q.commands.length));
          at += q.commands.length;
        }
      } catch (err) {
        for (const q of batch) q.reject(err);
      }
    }
    this.flushing = false;
  }

  /** Like run(), but any error other than the accepted ones throws. */
  async runOk(commands: DynsecCommand[], benign: RegExp = /^$/): Promise<DynsecResponse[]> {
    const res = await this.run(commands);
    const bad = res.find((r) => r.error && !benign.test(r.error));
    if (bad) throw new DynsecError(`dynamic-security ${bad.command}: ${bad.error}`);
    return res;
  }

  async stop(): Promise<void> {
    await this.client?.endAsync().catch(() => {});
    this.client = undefined;
  }
}

// A client of Mosquitto 2's dynamic-security plugin: commands are JSON published on
// `$CONTROL/dynamic-security/v1`, answered on `…/v1/response` in one message per request. Each
// command carries a correlation id, echoed in its answer, so concurrent requests never mix answers.
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

export class DynsecAdmin {
  private client?: MqttClient;
  private readonly waiting = new Map<string, (r: DynsecResponse) => void>();
  private seq = 0;
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
    const answers = ids.map(
      (id) =>
        new Promise<DynsecResponse>((resolve, reject) => {
          const timer = setTimeout(() => {
            this.waiting.delete(id);
            reject(new DynsecError('the broker did not answer a dynamic-security command in time'));
          }, this.opts.timeoutMs ?? 10_000);
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

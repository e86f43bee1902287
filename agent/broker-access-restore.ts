// When the broker refuses the device's login (its client on an external Mosquitto was lost: deleted,
// or the broker's dynamic-security file reset), the agent asks the control plane to put it back by
// proving its secret over HTTP (POST /api/v1/devices/<id>/broker-access): the server keeps only a hash
// of the secret, so the device is where the password comes back from, and no re-enrollment is needed.
// Paced: the first refusal asks at once; while asking changes nothing (a pending or revoked device,
// the embedded broker) the pause doubles up to 15 minutes; a connection resets it.
import type { Logger } from 'pino';
import type { HttpFetch } from './http-client.ts';

const MAX_PAUSE_MS = 15 * 60_000;

export class BrokerAccessRestore {
  private nextAt = 0;
  private pauseMs: number;
  private busy = false;
  /** Answers that put a client or role back (status and tests). */
  restored = 0;

  constructor(private readonly o: { serverUrl: string; deviceId: string; secret: string; fetch: HttpFetch; logger: Logger; firstPauseMs: number; now?: () => number }) {
    this.pauseMs = o.firstPauseMs;
  }

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  /** Resolves when the request in flight (if any) has been answered (tests). */
  settled: Promise<void> = Promise.resolve();

  /** The broker refused the login: ask unless asked recently. */
  refused(): void {
    if (this.busy || this.now() < this.nextAt) return;
    this.busy = true;
    this.settled = this.ask().finally(() => (this.busy = false));
  }

  connected(): void {
    this.nextAt = 0;
    this.pauseMs = this.o.firstPauseMs;
  }

  private async ask(): Promise<void> {
    const { o } = this;
    let changed = false;
    let transient = true; // unreachable server or broker (503): not an answer about this device
    try {
      const res = await o.fetch(new URL(`/api/v1/devices/${encodeURIComponent(o.deviceId)}/broker-access`, o.serverUrl), {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`${o.deviceId}:${o.secret}`).toString('base64')}` },
        signal: AbortSignal.timeout(30_000),
      });
      const body = (await res.text().then((t) => JSON.parse(t) as unknown).catch(() => ({}))) as { createdClient?: boolean; createdRole?: boolean; error?: { message?: string } };
      changed = res.ok && Boolean(body.createdClient || body.createdRole);
      transient = res.status === 503;
      if (changed) {
        this.restored++;
        o.logger.warn({ client: body.createdClient, role: body.createdRole }, 'the broker had lost this device\'s login: the control plane put it back');
      } else if (!res.ok) o.logger.warn({ status: res.status, err: body.error?.message }, 'asking the control plane to restore the broker login failed');
    } catch (err) {
      o.logger.debug({ err: (err as Error).message }, 'control plane unreachable for a broker login restore');
    }
    // After a fix or a transient failure, ask again soon; an answer that changed nothing (pending,
    // revoked, embedded broker, client present) doubles the pause.
    this.pauseMs = changed || transient ? o.firstPauseMs : Math.min(MAX_PAUSE_MS, this.pauseMs * 2);
    this.nextAt = this.now() + this.pauseMs;
  }
}

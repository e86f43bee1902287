// The key list's expiry, watched long before it arrives: a `/metrics` gauge of the seconds left, a
// warning in `GET /keys` (and `flotilla keys show`), and a log line at start and every hour once
// inside the warning horizon. After expiry the server refuses to sign (key-service.ts signingKeys).
import { desc } from 'drizzle-orm';
import type { Logger } from 'pino';
import { Gauge } from 'prom-client';
import type { KeyList } from '../../firmware-bundles/key-list.ts';
import type { Db } from '../db/client.ts';
import { keyLists } from '../db/schema.ts';
import type { Metrics } from '../metrics.ts';
import { RENEW_COMMAND } from './key-service.ts';

export interface KeylistExpiry {
  version: number;
  expiresAt: string;
  expiresInS: number;
  expired: boolean;
  /** Set inside the warning horizon (or after expiry): what to do. */
  warning: string | null;
}

/** Where a key list stands at `now`, warning within `warnS` seconds of expiry. */
export function keylistExpiry(list: Pick<KeyList, 'version' | 'expiresAt'>, now: Date, warnS: number): KeylistExpiry {
  const expiresInS = Math.floor((Date.parse(list.expiresAt) - now.getTime()) / 1000);
  const expired = expiresInS <= 0;
  const warning = expired
    ? `key list v${list.version} expired at ${list.expiresAt}: nothing can be signed until it is renewed (${RENEW_COMMAND})`
    : expiresInS <= warnS
      ? `key list v${list.version} expires in ${Math.ceil(expiresInS / 86400)} day(s) (${list.expiresAt}): renew it with the offline root (${RENEW_COMMAND})`
      : null;
  return { version: list.version, expiresAt: list.expiresAt, expiresInS, expired, warning };
}

async function currentList(db: Db): Promise<KeyList | null> {
  const row = await db.query.keyLists.findFirst({ orderBy: desc(keyLists.version) });
  return row ? ((row.envelope as { signed: KeyList }).signed ?? null) : null;
}

export function registerKeylistGauge(db: Db, metrics: Metrics): void {
  new Gauge({
    name: 'flotilla_keylist_expires_in_seconds',
    help: 'Seconds until the current key list expires (negative once expired); renew with the offline root before it reaches 0',
    labelNames: ['version'],
    registers: [metrics.registry],
    async collect() {
      this.reset();
      const list = await currentList(db);
      if (list) this.set({ version: String(list.version) }, keylistExpiry(list, new Date(), 0).expiresInS);
    },
  });
}

/** Logs the warning at start and then hourly while it applies. */
export class KeylistWarner {
  private timer?: NodeJS.Timeout;

  constructor(private readonly o: { db: Db; logger: Logger; warnS: number; everyMs?: number }) {}

  start(): void {
    void this.check();
    this.timer = setInterval(() => void this.check(), this.o.everyMs ?? 3600_000);
    this.timer.unref();
  }

  async check(): Promise<KeylistExpiry | null> {
    try {
      const list = await currentList(this.o.db);
      if (!list) return null;
      const e = keylistExpiry(list, new Date(), this.o.warnS);
      if (e.expired) this.o.logger.error({ keylist: e.version, expiresAt: e.expiresAt }, e.warning!);
      else if (e.warning) this.o.logger.warn({ keylist: e.version, expiresAt: e.expiresAt, expiresInS: e.expiresInS }, e.warning);
      return e;
    } catch (err) {
      this.o.logger.error({ err }, 'key list expiry check failed');
      return null;
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

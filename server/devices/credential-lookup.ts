// The credential rows MQTT CONNECTs are checked against, read for a burst of connects at once. In a
// reconnect storm thousands of CONNECTs arrive within seconds; one SELECT each took about 1 s of
// the server's 14 s of profiled CPU in a 2,000-device storm (libsql prepares every statement anew). Lookups wait for the next turn of
// the event loop, or for the read in flight to finish, and are answered by one `IN (…)` read each
// 500 ids: under load batches grow by themselves, while a lone connect waits one loop turn.
import { inArray } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { devices } from '../db/schema.ts';
import type { CredentialRow } from './device-service.ts';

// SQLite binds at most 32,766 variables per statement; stay far below.
const IDS_PER_READ = 500;

interface Waiter {
  resolve(row: CredentialRow | undefined): void;
  reject(err: unknown): void;
}

export class CredentialLookup {
  private waiting = new Map<string, Waiter[]>();
  private scheduled = false;
  private reading = false;
  /** SELECT statements issued so far (bench and tests: how well connects were batched). */
  reads = 0;

  constructor(private readonly db: Db) {}

  /** The device's status and credential hash as stored now (undefined: no such device). */
  get(id: string): Promise<CredentialRow | undefined> {
    return new Promise((resolve, reject) => {
      const list = this.waiting.get(id);
      if (list) list.push({ resolve, reject });
      else this.waiting.set(id, [{ resolve, reject }]);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.reading || !this.waiting.size) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.read();
    });
  }

  private async read(): Promise<void> {
    const batch = this.waiting;
    this.waiting = new Map();
    this.reading = true;
    try {
      const ids = [...batch.keys()];
      for (let i = 0; i < ids.length; i += IDS_PER_READ) {
        const chunk = ids.slice(i, i + IDS_PER_READ);
        this.reads++;
        try {
          const rows = await this.db.select({ id: devices.id, status: devices.status, credentialHash: devices.credentialHash }).from(devices).where(inArray(devices.id, chunk));
          const byId = new Map(rows.map((r) => [r.id, { status: r.status, credentialHash: r.credentialHash }]));
          for (const id of chunk) for (const w of batch.get(id)!) w.resolve(byId.get(id));
        } catch (err) {
          for (const id of chunk) for (const w of batch.get(id)!) w.reject(err);
        }
      }
    } finally {
      this.reading = false;
      this.schedule();
    }
  }
}

/**
 * Named leases in the database: one holder at a time, until `expiresAt`. Taking and renewing are one
 * conditional upsert (the row changes only when the lease expired or already belongs to the caller),
 * so two replicas racing for it on one database cannot both win: SQLite serializes the writes and the
 * loser's upsert matches no row. Times are the holders' clocks (ISO strings); a TTL of seconds makes
 * ordinary clock skew harmless.
 *
 * @example
 * const lease = new Lease(db);
 * if (await lease.acquire('scheduler', 'replica-a', 15_000)) { … renew every few seconds … }
 */
import { and, eq, sql } from 'drizzle-orm';
import type { Tx } from '../db/client.ts';
import { leases } from '../db/schema.ts';

export interface LeaseState {
  name: string;
  holder: string;
  expiresAt: string;
}

export class Lease {
  constructor(private readonly db: Tx) {}

  /** Takes the lease if it is free, expired or already ours; true when `holder` holds it afterwards. */
  async acquire(name: string, holder: string, ttlMs: number, now = new Date()): Promise<boolean> {
    const expiresAt = new Date(now.getTime() + ttlMs).toISOString();
    const rows = await this.db
      .insert(leases)
      .values({ name, holder, expiresAt })
      .onConflictDoUpdate({
        target: leases.name,
        set: { holder, expiresAt },
        setWhere: sql`${leases.expiresAt} < ${now.toISOString()} OR ${leases.holder} = ${holder}`,
      })
      .returning({ holder: leases.holder });
    return rows.length === 1 && rows[0].holder === holder;
  }

  /** Extends a lease we hold; false when another holder took it meanwhile (we lost it). */
  async renew(name: string, holder: string, ttlMs: number, now = new Date()): Promise<boolean> {
    const rows = await this.db
      .update(leases)
      .set({ expiresAt: new Date(now.getTime() + ttlMs).toISOString() })
      .where(and(eq(leases.name, name), eq(leases.holder, holder)))
      .returning({ name: leases.name });
    return rows.length === 1;
  }

  /** Gives the lease up at once (a clean stop), so another replica need not wait for the TTL. */
  async release(name: string, holder: string): Promise<void> {
    await this.db.delete(leases).where(and(eq(leases.name, name), eq(leases.holder, holder)));
  }

  async state(name: string): Promise<LeaseState | null> {
    return (await this.db.query.leases.findFirst({ where: eq(leases.name, name) })) ?? null;
  }
}

// Deleted rows linger in SQLite's free pages and in the write-ahead log until the file is rewritten:
// release keys (keys/key-service.ts) wipe them after deleting a retired key's private part.
import { sql } from 'drizzle-orm';
import type { Db } from './client.ts';

/**
 * Rewrites the database file so deleted or replaced key material does not linger in free pages or the
 * write-ahead log. Best effort: a busy database is logged by the caller's next start, not fatal.
 */
export async function wipeFreedPages(db: Db): Promise<void> {
  try {
    await db.run(sql`VACUUM`);
    // TRUNCATE answers busy (it does not throw) while another connection reads or the checkpoint worker
    // (wal-checkpointer.ts) checkpoints; the old pages stay in the file until one completes, so retry a while.
    for (let attempt = 0; attempt < WIPE_CHECKPOINT_ATTEMPTS; attempt++) {
      const [r] = await db.all<{ busy: number }>(sql`PRAGMA wal_checkpoint(TRUNCATE)`);
      if (!r || Number(r.busy) === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } catch {
    // Remote libsql servers may refuse VACUUM; the key material is gone from every live row anyway.
  }
}

/** 100 × 50 ms: a checkpoint busy for 5 s is a stuck reader, not a passing one. */
const WIPE_CHECKPOINT_ATTEMPTS = 100;

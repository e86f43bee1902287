// A job's log: trainer stdout/stderr and the runner's own steps, written to job_logs in small batches
// (a chatty trainer must not cost one write per line) and capped per job: after each batch only the
// newest `maxLines` lines stay, so a runaway program cannot fill the database.
import { and, eq, lt, sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Db } from '../db/client.ts';
import { jobLogs } from '../db/schema.ts';

export type LogStream = 'stdout' | 'stderr' | 'runner';

const MAX_LINE_CHARS = 2000;

export class JobLog {
  private pending: Array<{ jobId: string; stream: LogStream; line: string; at: string }> = [];
  private timer?: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    readonly jobId: string,
    private readonly logger: Logger,
    private readonly maxLines = 5000,
    private readonly flushMs = 200,
  ) {}

  write(stream: LogStream, line: string): void {
    const text = line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}… (${line.length} chars)` : line;
    this.pending.push({ jobId: this.jobId, stream, line: text, at: new Date().toISOString() });
    if (stream === 'runner') this.logger.info({ job: this.jobId }, text);
    this.timer ??= setTimeout(() => void this.flush(), this.flushMs);
  }

  /** Writes what is buffered; resolves when every line written so far is stored. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    this.flushing = this.flushing.then(async () => {
      if (!batch.length) return;
      try {
        await this.db.transaction(async (tx) => {
          for (let i = 0; i < batch.length; i += 200) await tx.insert(jobLogs).values(batch.slice(i, i + 200));
          const [cut] = await tx
            .select({ id: jobLogs.id })
            .from(jobLogs)
            .where(eq(jobLogs.jobId, this.jobId))
            .orderBy(sql`${jobLogs.id} desc`)
            .limit(1)
            .offset(this.maxLines - 1);
          if (cut) await tx.delete(jobLogs).where(and(eq(jobLogs.jobId, this.jobId), lt(jobLogs.id, cut.id)));
        });
      } catch (err) {
        this.logger.warn({ err, job: this.jobId, lines: batch.length }, 'job log lines lost');
      }
    });
    return this.flushing;
  }
}

/** Splits a byte stream into lines (a partial last line waits for the next chunk or `end`). */
export class LineSplitter {
  private rest = '';
  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer | string): void {
    const text = this.rest + chunk.toString();
    const lines = text.split(/\r?\n/);
    this.rest = lines.pop() ?? '';
    // Bound a line without a newline so it cannot grow without end.
    if (this.rest.length > 64 * 1024) {
      lines.push(this.rest);
      this.rest = '';
    }
    for (const l of lines) this.onLine(l);
  }

  end(): void {
    if (this.rest) this.onLine(this.rest);
    this.rest = '';
  }
}

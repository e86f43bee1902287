// Job state events: `job.<status>` with the job id and its model's name, written with the change.
import { eq, sql } from 'drizzle-orm';
import type { Tx } from '../db/client.ts';
import { jobs, models } from '../db/schema.ts';
import { insertEventsFrom } from './event-log.ts';

export type JobStatus = (typeof jobs.$inferSelect)['status'];

/** One INSERT … SELECT: the model's name comes from the job row, so callers need not load it. */
export async function recordJobEvent(tx: Tx, jobId: string, status: JobStatus, extra: Record<string, unknown> = {}): Promise<void> {
  await insertEventsFrom(
    tx,
    sql`SELECT 'job', ${`job.${status}`}, ${jobs.id}, json_patch(json_object('jobId', ${jobs.id}, 'model', ${models.name}), ${JSON.stringify(extra)})
        FROM ${jobs} JOIN ${models} ON ${models.id} = ${jobs.modelId} WHERE ${eq(jobs.id, jobId)}`,
  );
}

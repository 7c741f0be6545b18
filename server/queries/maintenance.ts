import type { Db } from '../db/pool.js';

/** A job the rescuer moved. */
export interface RescuedRow {
  id: string;
  queue: string;
  status: 'pending' | 'failed';
}

/**
 * jobRescueExpired: jobs whose lease ran out (the worker died, froze, lost its
 * connection, or ran past the job's timeout) fail through the one fail move
 * (skipq_rescue -> skipq_fail), due at once: back to pending while retries are
 * left, else failed; code TIMEOUT when the lease ran out at the attempt's
 * deadline, else LEASE_EXPIRED. SKIP LOCKED and the re-check on the locked row
 * mean a completion that commits first wins and stays completed.
 */
export async function jobRescueExpired(db: Db, params: { limit: number; now: Date | null }): Promise<RescuedRow[]> {
  const { rows } = await db.query<RescuedRow>({
    name: 'jobRescueExpired',
    text: `
SELECT r.id, r.queue, r.status
FROM skipq_rescue($1::int, $2::timestamptz) AS r`,
    values: [params.limit, params.now],
  });
  return rows;
}

/** A queue that holds finished jobs, with its retention settings (null: the server's default). */
export interface RetentionQueueRow {
  queue: string;
  retention_days: number | null;
  failed_retention_days: number | null;
}

/** retentionQueues: every queue holding finished jobs, by one descent of each retention index per queue (skipq_retention_queues). */
export async function retentionQueues(db: Db): Promise<RetentionQueueRow[]> {
  const { rows } = await db.query<RetentionQueueRow>({
    name: 'retentionQueues',
    text: `
SELECT r.queue, r.retention_days, r.failed_retention_days
FROM skipq_retention_queues() AS r`,
  });
  return rows;
}

/** What one retention batch did: rows deleted, and the finish time of the newest of them (null: none). */
export interface RetentionBatchRow {
  deleted: number;
  reached: Date | null;
}

/**
 * jobRetentionBatch: deletes at most `limit` jobs of `queue` that finished
 * more than `days` days before `now` (null: skipq_now(), the database's
 * clock) and not before `from` (the batch before's `reached`), oldest first:
 * failed ones with `failed`, else completed and cancelled ones
 * (skipq_retention_batch). Only finished jobs; rows another statement holds
 * are skipped, never waited for.
 */
export async function jobRetentionBatch(
  db: Db,
  params: { queue: string; failed: boolean; days: number; now: Date | null; from: Date | null; limit: number },
): Promise<RetentionBatchRow> {
  const { rows } = await db.query<RetentionBatchRow>({
    name: 'jobRetentionBatch',
    text: `
SELECT b.deleted, b.reached
FROM skipq_retention_batch($1::text, $2::boolean, coalesce($3::timestamptz, skipq_now()) - $4::int * interval '1 day', $5::int, $6::timestamptz) AS b`,
    values: [params.queue, params.failed, params.now, params.days, params.limit, params.from],
  });
  return rows[0] ?? { deleted: 0, reached: null };
}

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

/** jobCleanup: deletes completed and cancelled jobs finished more than `days` ago, in bounded batches. Returns rows deleted. */
export async function jobCleanup(db: Db, days: number, limit: number): Promise<number> {
  const { rowCount } = await db.query({
    name: 'jobCleanup',
    text: `
DELETE FROM task_queue
WHERE id IN (
  SELECT id
  FROM task_queue
  WHERE status IN ('completed', 'cancelled')
    AND coalesce(completed_at, updated_at) < now() - $1::int * interval '1 day'
  LIMIT $2::int
)`,
    values: [days, limit],
  });
  return rowCount ?? 0;
}

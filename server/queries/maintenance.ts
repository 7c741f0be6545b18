import type { Db } from '../db/pool.js';

/** A job the rescuer moved. */
export interface RescuedRow {
  id: string;
  queue: string;
  status: 'pending' | 'failed';
}

/**
 * jobRescueExpired: jobs whose lease ran out (the worker died, froze or lost
 * its connection) go back to pending, due at once, with the attempt counted as
 * a failure; when no retries are left they fail. The WHERE re-checks the lease
 * on the locked row, so a completion that commits first wins and stays completed.
 */
export async function jobRescueExpired(db: Db, limit: number): Promise<RescuedRow[]> {
  const { rows } = await db.query<RescuedRow>({
    name: 'jobRescueExpired',
    text: `
WITH expired AS (
  SELECT id
  FROM task_queue
  WHERE status IN ('claimed', 'processing')
    AND lease_expires_at < now()
  ORDER BY lease_expires_at
  LIMIT $1::int
  FOR UPDATE SKIP LOCKED
)
UPDATE task_queue AS t
SET status = CASE WHEN t.retry_count < t.max_retries THEN 'pending' ELSE 'failed' END,
    retry_count = CASE WHEN t.retry_count < t.max_retries THEN t.retry_count + 1 ELSE t.retry_count END,
    scheduled_for = CASE WHEN t.retry_count < t.max_retries THEN now() ELSE t.scheduled_for END,
    failed_at = CASE WHEN t.retry_count < t.max_retries THEN NULL ELSE now() END,
    error_message = 'lease expired: worker ' || coalesce(t.worker_id, '?') || ' stopped heartbeating during attempt ' || t.attempt,
    lease_expires_at = NULL,
    updated_at = now()
FROM expired
WHERE t.id = expired.id
  AND t.status IN ('claimed', 'processing')
  AND t.lease_expires_at < now()
RETURNING t.id, t.queue, t.status`,
    values: [limit],
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

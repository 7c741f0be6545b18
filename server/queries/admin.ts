import type { Db } from '../db/pool.js';
import type { TaskRow } from './row.js';

/** jobGet: one job by id. */
export async function jobGet(db: Db, id: string): Promise<TaskRow | undefined> {
  const { rows } = await db.query<TaskRow>({
    name: 'jobGet',
    text: 'SELECT * FROM task_queue WHERE id = $1::text',
    values: [id],
  });
  return rows[0];
}

/**
 * jobCancel: pending, claimed or processing -> cancelled. A held job keeps its
 * worker_id and attempt, so the holder's next heartbeat or completion learns
 * of the cancel (and its handler's AbortSignal fires).
 */
export async function jobCancel(db: Db, id: string): Promise<TaskRow | undefined> {
  const { rows } = await db.query<TaskRow>({
    name: 'jobCancel',
    text: `
UPDATE task_queue
SET status = 'cancelled',
    cancel_requested_at = now(),
    lease_expires_at = NULL,
    updated_at = now()
WHERE id = $1::text
  AND status IN ('pending', 'claimed', 'processing')
RETURNING *`,
    values: [id],
  });
  return rows[0];
}

/**
 * jobRetry: failed or cancelled -> pending, due now, with a fresh retry budget.
 * The attempt counter keeps counting, so fences from earlier holders stay stale.
 */
export async function jobRetry(db: Db, id: string): Promise<TaskRow | undefined> {
  const { rows } = await db.query<TaskRow>({
    name: 'jobRetry',
    text: `
UPDATE task_queue
SET status = 'pending',
    scheduled_for = now(),
    retry_count = 0,
    failed_at = NULL,
    cancel_requested_at = NULL,
    lease_expires_at = NULL,
    updated_at = now()
WHERE id = $1::text
  AND status IN ('failed', 'cancelled')
RETURNING *`,
    values: [id],
  });
  return rows[0];
}

/** One line of {@link queueStats}. */
export interface StatsRow {
  queue: string;
  task_type: string;
  status: string;
  count: number;
  oldest_scheduled_for: Date | null;
}

/** queueStats: job counts per queue, type and status. Scans the table: an admin call, not a hot path. */
export async function queueStats(db: Db): Promise<StatsRow[]> {
  const { rows } = await db.query<StatsRow>(`
SELECT queue, task_type, status, count(*)::int AS count, min(scheduled_for) AS oldest_scheduled_for
FROM task_queue
GROUP BY queue, task_type, status
ORDER BY queue, task_type, status`);
  return rows;
}

import type { Db } from '../db/pool.js';

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

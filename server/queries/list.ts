import type { JobStatus } from '../../shared/index.js';
import type { Db } from '../db/pool.js';
import type { TaskRow } from './row.js';

/**
 * A job filter as the SQL predicate `skipq_job_matches` takes it (the
 * retention migration); null means no filter. The same for jobs.list,
 * jobs.retryMany and jobs.cancelMany.
 */
export interface FilterParams {
  statuses: readonly JobStatus[] | null;
  /** The queue asked for, or the queues the caller's key may use; null: every queue. */
  queues: readonly string[] | null;
  type: string | null;
  errorContains: string | null;
  createdAfter: Date | null;
  createdBefore: Date | null;
  finishedAfter: Date | null;
  finishedBefore: Date | null;
}

/** The filter's values in `skipq_job_matches`' argument order ($1..$8 of the statements that call it). */
export function filterValues(f: FilterParams): unknown[] {
  return [f.statuses, f.queues, f.type, f.errorContains, f.createdAfter, f.createdBefore, f.finishedAfter, f.finishedBefore];
}

/** Parameters of {@link jobList}. */
export interface ListParams extends FilterParams {
  /** Return jobs older than this id (ids are time-ordered UUIDv7). */
  cursor: string | null;
  limit: number;
}

/**
 * jobList: the jobs matching the filter, newest first, from the cursor on.
 * Unnamed (planned with its values each time): `skipq_job_matches` is inlined
 * and its unused arguments fold away, so a status or queue filter reaches the
 * indexes; a prepared generic plan would keep every `$n IS NULL OR` branch.
 */
export async function jobList(db: Db, params: ListParams): Promise<TaskRow[]> {
  const { rows } = await db.query<TaskRow>(
    `
SELECT t.*
FROM task_queue AS t
WHERE skipq_job_matches(t, $1::text[], $2::text[], $3::text, $4::text, $5::timestamptz, $6::timestamptz, $7::timestamptz, $8::timestamptz)
  AND ($9::text IS NULL OR t.id < $9::text)
ORDER BY t.id DESC
LIMIT $10::int`,
    [...filterValues(params), params.cursor, params.limit],
  );
  return rows;
}

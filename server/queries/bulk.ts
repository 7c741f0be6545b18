import type pg from 'pg';
import type { BulkMoveAnswer } from '../../shared/index.js';
import type { Db } from '../db/pool.js';
import { filterValues, type FilterParams } from './list.js';
import { jobCancelMany, jobRetryMany } from './operator.js';
import type { MoveRow } from './row.js';

// Bulk moves by filter (jobs.retryMany, jobs.cancelMany): which jobs match is
// decided by skipq_job_matches, as for jobs.list; how each job moves is decided
// by the move's own fenced function (skipq_retry, skipq_cancel), called here
// and never restated. Every statement is unnamed, for the reason given at jobList.

// Ids per transaction. Each batch locks its rows for the few milliseconds of
// one move call: 500 keeps that short while a 10,000-job call is 20 round trips.
const MOVE_BATCH = 500;

/** jobMatchCount: how many jobs match, counting no further than `cap` (a dry run's answer, bounded like the move). */
export async function jobMatchCount(db: Db, params: { filter: FilterParams; cap: number }): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `
SELECT count(*)::int AS n
FROM (
  SELECT 1
  FROM task_queue AS t
  WHERE skipq_job_matches(t, $1::text[], $2::text[], $3::text, $4::text, $5::timestamptz, $6::timestamptz, $7::timestamptz, $8::timestamptz)
  LIMIT $9::int
) AS m`,
    [...filterValues(params.filter), params.cap],
  );
  return rows[0]?.n ?? 0;
}

/** jobMatchIds: the ids of at most `limit` matching jobs, oldest first, read without locking. */
export async function jobMatchIds(db: Db, params: { filter: FilterParams; limit: number }): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `
SELECT t.id
FROM task_queue AS t
WHERE skipq_job_matches(t, $1::text[], $2::text[], $3::text, $4::text, $5::timestamptz, $6::timestamptz, $7::timestamptz, $8::timestamptz)
ORDER BY t.id
LIMIT $9::int`,
    [...filterValues(params.filter), params.limit],
  );
  return rows.map((r) => r.id);
}

/**
 * jobLockMatching: of `ids`, those that still match, locked until the
 * transaction ends. FOR UPDATE re-reads a row another transaction changed
 * since it was picked and drops it when it no longer matches (retried by
 * somebody else, failed again with another error), so the move that follows
 * takes exactly the jobs that match at that moment. Rows are locked in id
 * order, the order every move function locks in, so this cannot deadlock with them.
 */
export async function jobLockMatching(db: Db, params: { filter: FilterParams; ids: readonly string[] }): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `
SELECT t.id
FROM task_queue AS t
WHERE t.id = ANY ($9::text[])
  AND skipq_job_matches(t, $1::text[], $2::text[], $3::text, $4::text, $5::timestamptz, $6::timestamptz, $7::timestamptz, $8::timestamptz)
ORDER BY t.id
FOR UPDATE`,
    [...filterValues(params.filter), params.ids],
  );
  return rows.map((r) => r.id);
}

/** The moves a bulk call may make, by the functions of server/queries/operator.ts. */
const MOVE_FUNCTIONS = { retry: jobRetryMany, cancel: jobCancelMany } as const;

/** Parameters of {@link jobMoveMatching}. */
export interface MoveMatchingParams {
  move: keyof typeof MOVE_FUNCTIONS;
  filter: FilterParams;
  limit: number;
  dryRun: boolean;
  now: Date | null;
}

/** What {@link jobMoveMatching} did: the answer, and the rows it moved (for wake-ups). */
export interface MoveMatchingResult {
  answer: BulkMoveAnswer;
  moved: MoveRow[];
}

/**
 * jobMoveMatching: moves at most `limit` jobs matching the filter, in
 * transactions of {@link MOVE_BATCH}: each locks the batch's jobs that still
 * match (jobLockMatching) and moves them through the move's function. Not
 * atomic as a whole: a call that fails halfway has moved the batches before,
 * and the same call again moves the rest (moved jobs no longer match).
 */
export async function jobMoveMatching(pool: pg.Pool, params: MoveMatchingParams): Promise<MoveMatchingResult> {
  if (params.dryRun) {
    const n = await jobMatchCount(pool, { filter: params.filter, cap: params.limit + 1 });
    return { answer: { dryRun: true, matched: Math.min(n, params.limit), more: n > params.limit, moved: 0, skipped: 0 }, moved: [] };
  }
  const ids = await jobMatchIds(pool, { filter: params.filter, limit: params.limit + 1 });
  const chosen = ids.slice(0, params.limit);
  const moved: MoveRow[] = [];
  for (let i = 0; i < chosen.length; i += MOVE_BATCH) {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const locked = await jobLockMatching(client, { filter: params.filter, ids: chosen.slice(i, i + MOVE_BATCH) });
      const rows = locked.length > 0 ? await MOVE_FUNCTIONS[params.move](client, { ids: locked, now: params.now }) : [];
      await client.query('COMMIT');
      moved.push(...rows.filter((r) => r.moved));
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }
  return {
    answer: { dryRun: false, matched: chosen.length, more: ids.length > params.limit, moved: moved.length, skipped: chosen.length - moved.length },
    moved,
  };
}

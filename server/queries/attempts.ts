import type { AttemptOutcome, AttemptView, Ending } from '../../shared/index.js';
import type { Db } from '../db/pool.js';

// A job's attempt history (job_attempts). The rows are written by the move
// functions that end attempts (the flows_attempts migration); these only read.

/** A row of job_attempts as these statements read it. */
interface AttemptRow {
  attempt: number;
  worker_id: string | null;
  started_at: Date | null;
  finished_at: Date;
  outcome: AttemptOutcome;
  ended_by: Ending;
  error_code: string | null;
  error_message: string | null;
}

const toAttemptView = (r: AttemptRow): AttemptView => ({
  attempt: r.attempt,
  workerId: r.worker_id,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  outcome: r.outcome,
  endedBy: r.ended_by,
  errorCode: r.error_code,
  error: r.error_message,
});

/** attemptList: a job's attempts after attempt number `after`, oldest first, at most `limit`. */
export async function attemptList(db: Db, params: { jobId: string; after: number; limit: number }): Promise<AttemptView[]> {
  const { rows } = await db.query<AttemptRow>({
    name: 'attemptList',
    text: `
SELECT a.attempt, a.worker_id, a.started_at, a.finished_at, a.outcome, a.ended_by, a.error_code, a.error_message
FROM job_attempts AS a
WHERE a.job_id = $1::text
  AND a.attempt > $2::int
ORDER BY a.attempt
LIMIT $3::int`,
    values: [params.jobId, params.after, params.limit],
  });
  return rows.map(toAttemptView);
}

/** attemptLatest: a job's latest `limit` attempts, newest last. */
export async function attemptLatest(db: Db, params: { jobId: string; limit: number }): Promise<AttemptView[]> {
  const { rows } = await db.query<AttemptRow>({
    name: 'attemptLatest',
    text: `
SELECT l.attempt, l.worker_id, l.started_at, l.finished_at, l.outcome, l.ended_by, l.error_code, l.error_message
FROM (
  SELECT a.attempt, a.worker_id, a.started_at, a.finished_at, a.outcome, a.ended_by, a.error_code, a.error_message
  FROM job_attempts AS a
  WHERE a.job_id = $1::text
  ORDER BY a.attempt DESC
  LIMIT $2::int
) AS l
ORDER BY l.attempt`,
    values: [params.jobId, params.limit],
  });
  return rows.map(toAttemptView);
}

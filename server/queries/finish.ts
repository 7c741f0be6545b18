import { LIMITS, type BackoffPolicy } from '../../shared/index.js';
import type { Db } from '../db/pool.js';
import type { HeldRef } from './lease.js';

/** A completion: a held job and its result as JSON text (null for none). */
export interface CompletionRef extends HeldRef {
  resultJson: string | null;
}

/**
 * jobCompleteMany: completes a batch in one statement, fenced per row. A job
 * may complete from `claimed` too: fast handlers never pay a separate start.
 * Returns the ids that completed now.
 */
export async function jobCompleteMany(db: Db, workerId: string, jobs: readonly CompletionRef[]): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>({
    name: 'jobCompleteMany',
    text: `SELECT id FROM ${completeCall('$1', '$2', '$3', '$4')} AS id`,
    values: [workerId, ...completionArrays(jobs)],
  });
  return rows.map((r) => r.id);
}

/**
 * The fenced completion of a batch (skipq_complete in the init
 * migration), shared by jobCompleteMany and jobCompleteAndClaim. The arguments
 * name the parameters (constants only): the worker id and the arrays of ids,
 * attempts and results.
 */
export function completeCall(worker: string, ids: string, attempts: string, results: string): string {
  return `skipq_complete(${worker}::text, ${ids}::text[], ${attempts}::int[], ${results}::text[])`;
}

/** The three parameter arrays of a completion batch. */
export function completionArrays(jobs: readonly CompletionRef[]): [string[], number[], Array<string | null>] {
  return [jobs.map((j) => j.id), jobs.map((j) => j.attempt), jobs.map((j) => j.resultJson)];
}

/** Parameters of {@link jobFail}. */
export interface FailParams extends HeldRef {
  workerId: string;
  error: string;
  retry: boolean;
  backoff: BackoffPolicy;
}

/** What a failure led to. */
export interface FailedRow {
  id: string;
  queue: string;
  status: 'pending' | 'failed';
  scheduled_for: Date;
  retry_count: number;
}

/**
 * jobFail: one fenced statement. With `retry` and retries left the job goes
 * back to pending after the backoff (computed here from the row's own
 * retry_count, so there is no read-then-write); otherwise it is failed for good.
 */
export async function jobFail(db: Db, params: FailParams): Promise<FailedRow | undefined> {
  const b = params.backoff;
  const factor = b.kind === 'exponential' ? (b.factor ?? 2) : 1;
  const maxDelay = b.kind === 'fixed' ? null : (b.maxDelayMs ?? null);
  const { rows } = await db.query<FailedRow>({
    name: 'jobFail',
    text: `
UPDATE task_queue AS t
SET status = CASE WHEN $5::boolean AND t.retry_count < t.max_retries THEN 'pending' ELSE 'failed' END,
    retry_count = CASE WHEN $5::boolean AND t.retry_count < t.max_retries THEN t.retry_count + 1 ELSE t.retry_count END,
    scheduled_for = CASE WHEN $5::boolean AND t.retry_count < t.max_retries
      THEN now() + interval '1 millisecond' * (
        least(
          CASE $6::text
            WHEN 'fixed' THEN $7::float8
            WHEN 'linear' THEN $7::float8 * (t.retry_count + 1)
            ELSE $7::float8 * power($8::float8, t.retry_count)
          END,
          coalesce($9::float8, ${LIMITS.maxDelayMs}::float8)
        ) * (1 - $10::float8 + 2 * $10::float8 * random())
      )
      ELSE t.scheduled_for END,
    failed_at = CASE WHEN $5::boolean AND t.retry_count < t.max_retries THEN NULL ELSE now() END,
    error_message = $4::text,
    lease_expires_at = NULL,
    updated_at = now()
WHERE t.id = $1::text
  AND t.attempt = $2::int
  AND t.worker_id = $3::text
  AND t.status IN ('claimed', 'processing')
RETURNING t.id, t.queue, t.status, t.scheduled_for, t.retry_count`,
    values: [params.id, params.attempt, params.workerId, params.error, params.retry, b.kind, b.delayMs, factor, maxDelay, b.jitter ?? 0],
  });
  return rows[0];
}

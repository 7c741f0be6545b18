import type { Db } from '../db/pool.js';
import type { CompletionRef } from './finish.js';
import type { ClaimedRow, MoveRow } from './row.js';
import { numberArrayLiteral, textArrayLiteral } from '../pgArray.js';

/** Parameters of {@link jobClaim}. `null` types or queues mean any; `now` null is the database's clock. */
export interface ClaimParams {
  workerId: string;
  types: readonly string[] | null;
  queues: readonly string[] | null;
  limit: number;
  leaseMs: number;
  now: Date | null;
}

/**
 * jobClaim: takes up to `limit` due pending jobs in priority order (higher
 * first, then earliest scheduled, then oldest id) and hands them to one worker
 * under a lease (skipq_claim, shared with the SQL API's claim_tasks). SKIP
 * LOCKED means concurrent claims never wait for each other and never get the
 * same row; `attempt` goes up by one and is the fencing token every later call
 * of this holder must present. The scan walks the partial index
 * task_queue_claim_idx in order, so finished rows cost nothing however many the
 * table keeps. A queue with policies (pause, limits, keyConcurrency of the
 * queue or of a job type) is claimed under its own rules first: a keyed
 * queue's batch is shared among its keys and its jobs without a key in turn
 * (20261201001000_key_lanes), so priority order holds within each lane. Each
 * row carries its enqueue's trace context (NULL: none), for the worker's span.
 */
export async function jobClaim(db: Db, params: ClaimParams): Promise<ClaimedRow[]> {
  const { rows } = await db.query<ClaimedRow>({
    name: 'jobClaim',
    text: `
SELECT c.id, c.task_type, c.queue, c.payload::text AS payload, c.priority, c.attempt, c.retry_count, c.max_retries, c.timeout_ms, c.lease_expires_at, c.trace_context
FROM skipq_claim($1::text, $2::text[], $3::text[], $4::int, $5::int, $6::timestamptz) AS c`,
    values: [params.workerId, params.types, params.queues, params.limit, params.leaseMs, params.now],
  });
  return rows;
}

/** One row of {@link jobCompleteAndClaim}: a claimed job, or the answer for one completion. */
type CompleteAndClaimRow = (ClaimedRow & { kind: 'claimed' }) | (MoveRow & { kind: 'completion' });

/**
 * jobCompleteAndClaim: a worker's finished jobs and its next claim in one
 * statement, one round trip and one commit. The completions run first (the
 * first branch of the UNION ALL is read first), taking their locks in id
 * order; the claim comes after and never waits (SKIP LOCKED), so the
 * statement never waits for a lock while holding rows it just claimed. The
 * claim cannot pick the rows being completed: they are no longer pending.
 * Answers the claimed rows and a row per completion (skipq_complete; a moved
 * one with its queue and type, for the metrics, read as in jobCompleteMany).
 */
export async function jobCompleteAndClaim(
  db: Db,
  params: ClaimParams,
  completions: readonly CompletionRef[],
): Promise<{ claimed: ClaimedRow[]; completions: MoveRow[] }> {
  const { rows } = await db.query<CompleteAndClaimRow>({
    name: 'jobCompleteAndClaim',
    text: `
WITH done AS (
  SELECT d.id, d.moved, d.status, d.attempt, d.worker_id, d.ended_by, t.queue, t.task_type
  FROM skipq_complete($1::text, $7::text[], $8::int[], $9::text[], $6::timestamptz) AS d
  LEFT JOIN LATERAL (SELECT tq.queue, tq.task_type FROM task_queue AS tq WHERE tq.id = d.id LIMIT 1) AS t ON d.moved
),
claimed AS (
  SELECT c.id, c.task_type, c.queue, c.payload::text AS payload, c.priority, c.attempt, c.retry_count, c.max_retries, c.timeout_ms, c.lease_expires_at, c.trace_context
  FROM skipq_claim($1::text, $2::text[], $3::text[], $4::int, $5::int, $6::timestamptz) AS c
)
SELECT 'completion' AS kind,
       done.id, done.task_type, done.queue, NULL::text AS payload, NULL::int AS priority, done.attempt,
       NULL::int AS retry_count, NULL::int AS max_retries, NULL::int AS timeout_ms, NULL::timestamptz AS lease_expires_at, NULL::text AS trace_context,
       done.moved, done.status, done.worker_id, done.ended_by
FROM done
UNION ALL
SELECT 'claimed',
       claimed.id, claimed.task_type, claimed.queue, claimed.payload, claimed.priority, claimed.attempt,
       claimed.retry_count, claimed.max_retries, claimed.timeout_ms, claimed.lease_expires_at, claimed.trace_context,
       NULL, NULL, NULL, NULL
FROM claimed`,
    values: [
      params.workerId,
      params.types,
      params.queues,
      params.limit,
      params.leaseMs,
      params.now,
      textArrayLiteral(completions.map((j) => j.id)),
      numberArrayLiteral(completions.map((j) => j.attempt)),
      textArrayLiteral(completions.map((j) => j.resultJson)),
    ],
  });
  const claimed: ClaimedRow[] = [];
  const done: MoveRow[] = [];
  for (const row of rows) {
    if (row.kind === 'claimed') claimed.push(row);
    else done.push(row);
  }
  return { claimed, completions: done };
}

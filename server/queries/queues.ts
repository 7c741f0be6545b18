import type pg from 'pg';
import type { Db } from '../db/pool.js';
import { JOBS_CHANNEL } from '../channels.js';

// Queue settings and the rows the claim's policy reads (the queues migration).
// None of this is the hot path: the claim reads the queues table itself,
// inside skipq_claim.

/** One row of the queues table, as the router reads it. */
export interface QueueRow {
  name: string;
  paused: boolean;
  concurrency: number | null;
  rate_max: number | null;
  rate_period_ms: number | null;
  key_concurrency: number | null;
  retention_days: number | null;
  failed_retention_days: number | null;
}

/** queueSetPaused: pauses or resumes a queue, making its row when it has none. */
export async function queueSetPaused(db: Db, params: { queue: string; paused: boolean }): Promise<QueueRow> {
  const { rows } = await db.query<QueueRow>({
    name: 'queueSetPaused',
    text: `
INSERT INTO queues (name, paused)
VALUES ($1::text, $2::boolean)
ON CONFLICT (name) DO UPDATE
SET paused = EXCLUDED.paused,
    updated_at = now()
RETURNING name, paused, concurrency, rate_max, rate_period_ms, key_concurrency, retention_days, failed_retention_days`,
    values: [params.queue, params.paused],
  });
  return rows[0] as QueueRow;
}

/** Parameters of {@link queueConfigure}: `undefined` keeps a setting, `null` clears it. */
export interface ConfigureParams {
  queue: string;
  concurrency?: number | null | undefined;
  rateLimit?: { max: number; periodMs: number } | null | undefined;
  keyConcurrency?: number | null | undefined;
  retentionDays?: number | null | undefined;
  failedRetentionDays?: number | null | undefined;
}

/**
 * queueConfigure: sets a queue's limits and retention and, when a limit is
 * given, makes its counters true again (skipq_queue_recount), in one
 * transaction under the queue's row lock. A new rate limit starts a fresh
 * window. A call that sets only retention skips the recount: it scans the
 * queue's jobs, and retention is read by the sweep alone.
 */
export async function queueConfigure(pool: pg.Pool, params: ConfigureParams): Promise<QueueRow> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<QueueRow>({
      name: 'queueConfigure',
      text: `
INSERT INTO queues AS q (name, concurrency, rate_max, rate_period_ms, key_concurrency, retention_days, failed_retention_days)
VALUES ($1::text, $3::int, $5::int, $6::int, $8::int, $10::int, $12::int)
ON CONFLICT (name) DO UPDATE
SET concurrency = CASE WHEN $2::boolean THEN EXCLUDED.concurrency ELSE q.concurrency END,
    rate_max = CASE WHEN $4::boolean THEN EXCLUDED.rate_max ELSE q.rate_max END,
    rate_period_ms = CASE WHEN $4::boolean THEN EXCLUDED.rate_period_ms ELSE q.rate_period_ms END,
    rate_window_start = CASE WHEN $4::boolean THEN NULL ELSE q.rate_window_start END,
    rate_window_count = CASE WHEN $4::boolean THEN 0 ELSE q.rate_window_count END,
    key_concurrency = CASE WHEN $7::boolean THEN EXCLUDED.key_concurrency ELSE q.key_concurrency END,
    retention_days = CASE WHEN $9::boolean THEN EXCLUDED.retention_days ELSE q.retention_days END,
    failed_retention_days = CASE WHEN $11::boolean THEN EXCLUDED.failed_retention_days ELSE q.failed_retention_days END,
    updated_at = now()
RETURNING name, paused, concurrency, rate_max, rate_period_ms, key_concurrency, retention_days, failed_retention_days`,
      values: [
        params.queue,
        params.concurrency !== undefined,
        params.concurrency ?? null,
        params.rateLimit !== undefined,
        params.rateLimit?.max ?? null,
        params.rateLimit?.periodMs ?? null,
        params.keyConcurrency !== undefined,
        params.keyConcurrency ?? null,
        params.retentionDays !== undefined,
        params.retentionDays ?? null,
        params.failedRetentionDays !== undefined,
        params.failedRetentionDays ?? null,
      ],
    });
    const limits = params.concurrency !== undefined || params.rateLimit !== undefined || params.keyConcurrency !== undefined;
    if (limits) await client.query({ name: 'queueRecount', text: 'SELECT skipq_queue_recount($1::text)', values: [params.queue] });
    await client.query('COMMIT');
    return rows[0] as QueueRow;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

/**
 * queuesRecount: makes the counters of these queues true again
 * (skipq_queue_recount, one queue at a time in name order, each under its row
 * lock), for a registry whose types' keyConcurrency changed. Scans each
 * queue's held jobs: run at server start, only when a type's limit changed.
 */
export async function queuesRecount(db: Db, queues: readonly string[]): Promise<void> {
  await db.query({
    name: 'queuesRecount',
    text: `
SELECT skipq_queue_recount(u.queue)
FROM (SELECT DISTINCT x.queue FROM unnest($1::text[]) AS x(queue) ORDER BY x.queue) AS u`,
    values: [queues],
  });
}

/** One line of {@link queueList}: a queue's settings (NULL when it has no row) and its jobs of one status. */
export interface QueueListRow extends QueueRow {
  status: string | null;
  count: number;
}

/**
 * queueList: every queue that has a row or jobs, with its settings and its
 * job counts per status. Scans task_queue: an admin call, like queueStats.
 */
export async function queueList(db: Db): Promise<QueueListRow[]> {
  const { rows } = await db.query<QueueListRow>(`
WITH counts AS (
  SELECT t.queue, t.status, count(*)::int AS count
  FROM task_queue AS t
  GROUP BY t.queue, t.status
),
names AS (
  SELECT q.name FROM queues AS q
  UNION
  SELECT c.queue FROM counts AS c
)
SELECT n.name,
       coalesce(q.paused, false) AS paused,
       q.concurrency,
       q.rate_max,
       q.rate_period_ms,
       q.key_concurrency,
       q.retention_days,
       q.failed_retention_days,
       c.status,
       coalesce(c.count, 0) AS count
FROM names AS n
LEFT JOIN queues AS q ON q.name = n.name
LEFT JOIN counts AS c ON c.queue = n.name
ORDER BY n.name, c.status`);
  return rows;
}

/** What {@link jobExplainRead} answers: the job, its queue's settings, and the counters its claim would read. */
export interface ExplainRow {
  id: string;
  queue: string;
  status: string;
  scheduled_for: Date;
  worker_id: string | null;
  lease_expires_at: Date | null;
  concurrency_key: string | null;
  paused: boolean | null;
  concurrency: number | null;
  rate_max: number | null;
  rate_period_ms: number | null;
  key_concurrency: number | null;
  rate_window_start: Date | null;
  rate_window_count: number | null;
  /** Counted held jobs of the queue, the ledger's releases taken off. */
  queue_held: number | null;
  /** Counted held jobs of the job's key, the ledger's releases taken off. */
  key_held: number | null;
  /** The keyConcurrency of the job's type (job_types), if it sets one. */
  type_key_concurrency: number | null;
  /** The queue is keyed: a keyConcurrency of its own, or a live type of the queue sets one. */
  keyed: boolean;
}

/**
 * jobExplainRead: one job with what the claim would weigh for it (the
 * counters as a claim would fold them, and the type's keyConcurrency, which
 * the claim applies in a keyed queue: 20261201001000_key_lanes).
 */
export async function jobExplainRead(db: Db, id: string): Promise<ExplainRow | undefined> {
  const { rows } = await db.query<ExplainRow>({
    name: 'jobExplainRead',
    text: `
SELECT t.id, t.queue, t.status, t.scheduled_for, t.worker_id, t.lease_expires_at, t.concurrency_key,
       q.paused, q.concurrency, q.rate_max, q.rate_period_ms, q.key_concurrency, q.rate_window_start, q.rate_window_count,
       q.held - skipq_released(t.queue) AS queue_held,
       (SELECT k.held FROM queue_keys AS k WHERE k.queue = t.queue AND k.concurrency_key = t.concurrency_key)
         - skipq_released_key(t.queue, t.concurrency_key) AS key_held,
       jt.key_concurrency AS type_key_concurrency,
       q.key_concurrency IS NOT NULL OR skipq_queue_type_keyed(t.queue) AS keyed
FROM task_queue AS t
LEFT JOIN queues AS q ON q.name = t.queue
LEFT JOIN job_types AS jt ON jt.name = t.task_type AND jt.removed_at IS NULL
WHERE t.id = $1::text`,
    values: [id],
  });
  return rows[0];
}

/**
 * queueLimitedNames: the queues whose claims a finished job can unblock: a
 * concurrency limit or keyConcurrency of their own, or a job type with
 * keyConcurrency in them (server/limitedQueues.ts).
 */
export async function queueLimitedNames(db: Db): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>({
    name: 'queueLimitedNames',
    text: `
SELECT q.name
FROM queues AS q
WHERE q.concurrency IS NOT NULL
   OR q.key_concurrency IS NOT NULL
UNION
SELECT jt.queue
FROM job_types AS jt
WHERE jt.key_concurrency IS NOT NULL
  AND jt.removed_at IS NULL`,
  });
  return rows.map((r) => r.name);
}

/**
 * queueNotifyFreed: tells every server's claims waiting on these queues that
 * a held job of theirs finished (the skipq_jobs channel, as an enqueue does).
 */
export async function queueNotifyFreed(db: Db, queues: readonly string[]): Promise<void> {
  await db.query({
    name: 'queueNotifyFreed',
    text: `SELECT pg_notify('${JOBS_CHANNEL}', q.name) FROM unnest($1::text[]) AS q(name)`,
    values: [queues],
  });
}

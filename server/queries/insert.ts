import { JOBS_CHANNEL } from '../channels.js';
import type { Db } from '../db/pool.js';

/** One job to insert; JSON already serialised and validated. */
export interface InsertJob {
  id: string;
  queue: string;
  type: string;
  payloadJson: string;
  priority: number;
  runAt: Date | null;
  delayMs: number | null;
  maxRetries: number;
  uniqueKey: string | null;
  timeoutMs: number | null;
}

/** A row the insert wrote. */
export interface InsertedRow {
  id: string;
  task_type: string;
  queue: string;
  status: 'pending';
  priority: number;
  scheduled_for: Date;
}

/** The NOTIFY channel; its payload is a queue name, never a job. */
export { JOBS_CHANNEL } from '../channels.js';

/**
 * jobInsertMany: inserts a batch in one statement and one commit, notifying once
 * per distinct queue. A job whose uniqueKey already has a live job is skipped
 * (the partial unique index decides, not a prior read); the caller looks those up.
 * Scheduling uses the database clock, so app servers with skewed clocks agree.
 */
export async function jobInsertMany(db: Db, jobs: readonly InsertJob[]): Promise<InsertedRow[]> {
  const { rows } = await db.query<InsertedRow>({
    name: 'jobInsertMany',
    text: `
WITH inserted AS (
  INSERT INTO task_queue (id, queue, task_type, payload, priority, scheduled_for, max_retries, unique_key, timeout_ms)
  SELECT i.id, i.queue, i.task_type, i.payload::jsonb, i.priority,
         coalesce(i.run_at, now() + coalesce(i.delay_ms, 0) * interval '1 millisecond'),
         i.max_retries, i.unique_key, i.timeout_ms
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[], $7::bigint[], $8::int[], $9::text[], $10::int[])
    AS i(id, queue, task_type, payload, priority, run_at, delay_ms, max_retries, unique_key, timeout_ms)
  ON CONFLICT (task_type, unique_key) WHERE unique_key IS NOT NULL AND status IN ('pending', 'claimed', 'processing')
  DO NOTHING
  RETURNING id, task_type, queue, status, priority, scheduled_for
),
woken AS (
  SELECT count(pg_notify('${JOBS_CHANNEL}', q.queue)) AS n
  FROM (SELECT DISTINCT queue FROM inserted) AS q
)
SELECT inserted.*
FROM inserted, woken`,
    values: [
      jobs.map((j) => j.id),
      jobs.map((j) => j.queue),
      jobs.map((j) => j.type),
      jobs.map((j) => j.payloadJson),
      jobs.map((j) => j.priority),
      jobs.map((j) => j.runAt),
      jobs.map((j) => j.delayMs),
      jobs.map((j) => j.maxRetries),
      jobs.map((j) => j.uniqueKey),
      jobs.map((j) => j.timeoutMs),
    ],
  });
  return rows;
}

/** A live job holding a unique key. */
export interface LiveKeyRow {
  id: string;
  task_type: string;
  unique_key: string;
  queue: string;
  status: 'pending' | 'claimed' | 'processing';
  priority: number;
  scheduled_for: Date;
}

/** jobFindLiveByKey: the live jobs holding the given (type, uniqueKey) pairs. */
export async function jobFindLiveByKey(db: Db, keys: ReadonlyArray<{ type: string; uniqueKey: string }>): Promise<LiveKeyRow[]> {
  const { rows } = await db.query<LiveKeyRow>({
    name: 'jobFindLiveByKey',
    text: `
SELECT t.id, t.task_type, t.unique_key, t.queue, t.status, t.priority, t.scheduled_for
FROM task_queue AS t
JOIN unnest($1::text[], $2::text[]) AS k(task_type, unique_key)
  ON t.task_type = k.task_type AND t.unique_key = k.unique_key
WHERE t.status IN ('pending', 'claimed', 'processing')`,
    values: [keys.map((k) => k.type), keys.map((k) => k.uniqueKey)],
  });
  return rows;
}

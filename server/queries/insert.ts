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
export const JOBS_CHANNEL = 'skipq_jobs';

/**
 * A job's id is already used by a job of another type or queue. Carries the
 * caller's own id and nothing about the job that holds it; when the database
 * raised it, nothing of the batch was stored.
 */
export class JobIdTakenError extends Error {
  override readonly name = 'JobIdTakenError';
  constructor(readonly jobId: string) {
    super(`job id ${jobId} is already used by another job`);
  }
}

/**
 * jobInsertMany: inserts a batch in one statement and one commit (skipq_enqueue,
 * in the migration 20261201000100_enqueue_integrity), notifying once per
 * distinct queue. A job whose id is taken, or whose uniqueKey has a live job in
 * its queue, is skipped (the unique indexes decide, not a prior read); the
 * caller looks those up with {@link jobFindExisting}. Throws
 * {@link JobIdTakenError} when an id belongs to a job of another type or queue.
 * The ids of one call must be distinct.
 */
export async function jobInsertMany(db: Db, jobs: readonly InsertJob[]): Promise<InsertedRow[]> {
  try {
    const { rows } = await db.query<InsertedRow>({
      name: 'jobInsertMany',
      text: `
SELECT e.id, e.task_type, e.queue, e.status, e.priority, e.scheduled_for
FROM skipq_enqueue($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[], $7::bigint[], $8::int[], $9::text[], $10::int[]) AS e`,
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
  } catch (error) {
    const e = error as { code?: unknown; constraint?: unknown; detail?: unknown };
    // skipq_enqueue's refusal; its DETAIL is the caller's id.
    if (e.code === '23505' && e.constraint === 'task_queue_pkey' && typeof e.detail === 'string') throw new JobIdTakenError(e.detail);
    throw error;
  }
}

/** A job that answers a skipped insert: the one with the same id, or the live one holding the uniqueKey. */
export interface ExistingRow {
  id: string;
  task_type: string;
  queue: string;
  unique_key: string | null;
  status: 'pending' | 'claimed' | 'processing' | 'completed' | 'failed' | 'cancelled';
  priority: number;
  scheduled_for: Date;
  /** True: found by the skipped job's id; false: it holds the skipped job's uniqueKey. */
  by_id: boolean;
}

/**
 * jobFindExisting: what answers skipped jobs. By id, only a job of the same type
 * and queue (a repeat of the same enqueue, whatever its status since); by
 * uniqueKey, the live job holding (queue, type, key). Both are in the caller's
 * queue, so nothing comes back that the caller may not see.
 */
export async function jobFindExisting(db: Db, jobs: readonly InsertJob[]): Promise<ExistingRow[]> {
  const keyed = jobs.filter((j) => j.uniqueKey !== null);
  const { rows } = await db.query<ExistingRow>({
    name: 'jobFindExisting',
    text: `
SELECT t.id, t.task_type, t.queue, t.unique_key, t.status, t.priority, t.scheduled_for, true AS by_id
FROM task_queue AS t
JOIN unnest($1::text[], $2::text[], $3::text[]) AS j(id, queue, task_type)
  ON t.id = j.id AND t.queue = j.queue AND t.task_type = j.task_type
UNION ALL
SELECT t.id, t.task_type, t.queue, t.unique_key, t.status, t.priority, t.scheduled_for, false AS by_id
FROM task_queue AS t
JOIN unnest($4::text[], $5::text[], $6::text[]) AS k(queue, task_type, unique_key)
  ON t.queue = k.queue AND t.task_type = k.task_type AND t.unique_key = k.unique_key
WHERE t.status IN ('pending', 'claimed', 'processing')`,
    values: [
      jobs.map((j) => j.id),
      jobs.map((j) => j.queue),
      jobs.map((j) => j.type),
      keyed.map((j) => j.queue),
      keyed.map((j) => j.type),
      keyed.map((j) => j.uniqueKey),
    ],
  });
  return rows;
}

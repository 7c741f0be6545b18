import { JOBS_CHANNEL } from '../channels.js';
import type { Db } from '../db/pool.js';
import { jsonArrayText } from '../json.js';
import { numberArrayLiteral, textArrayLiteral, timestampArrayLiteral } from '../pgArray.js';
import type { ClaimParams } from './claim.js';
import type { ClaimedRow } from './row.js';

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
  /** With uniqueKey: debounce (a pending holder takes the payload, due now + this); null on the plain path. */
  debounceMs: number | null;
  /** With uniqueKey: one job per key per window of this many ms; null on the plain path. */
  throttleMs: number | null;
  /** The job's lane within its queue, for per-key concurrency; null: none. */
  concurrencyKey: string | null;
  /** W3C trace context of the enqueue (traceparent[ tracestate]); null: none. */
  traceContext: string | null;
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
 * An id of the batch is already in use (a repeat of an enqueue, or the id of
 * another job): the database refused the whole batch, nothing was stored.
 * Which ids, and by which jobs, {@link jobFindExisting} tells.
 */
export class JobIdInUseError extends Error {
  override readonly name = 'JobIdInUseError';
  constructor() {
    super('a job id of the batch is already in use');
  }
}

/**
 * The error an insert's failure means: {@link JobIdInUseError} when the
 * primary key refused an id (skipq_enqueue names the constraint), else the
 * error itself.
 */
export function idInUseOr(error: unknown): unknown {
  const e = error as { code?: unknown; constraint?: unknown } | null;
  return e?.code === '23505' && e.constraint === 'task_queue_pkey' ? new JobIdInUseError() : error;
}

/**
 * jobInsertMany: inserts a batch in one statement and one commit (skipq_enqueue,
 * in the migration 20261201000450_job_context), notifying once per
 * distinct queue. A job whose uniqueKey has a live job in its queue and type is
 * skipped (the partial unique index decides, not a prior read); the caller
 * looks those up with {@link jobFindExisting}. Throws {@link JobIdInUseError},
 * having stored nothing, when an id is already in use, except that a job
 * skipped for its uniqueKey may reuse the id of a job of its own type and queue.
 * The ids of one call must be distinct.
 */
export async function jobInsertMany(db: Db, jobs: readonly InsertJob[]): Promise<InsertedRow[]> {
  try {
    const { rows } = await db.query<InsertedRow>({
      name: 'jobInsertMany',
      text: `
SELECT e.id, e.task_type, e.queue, e.status, e.priority, e.scheduled_for
FROM skipq_enqueue(
  $1::text[], $2::text[], $3::text[],
  ARRAY(SELECT p.value::text FROM json_array_elements($4::json) WITH ORDINALITY AS p(value, n) ORDER BY p.n),
  $5::int[], $6::timestamptz[], $7::bigint[], $8::int[], $9::text[], $10::int[], $11::text[], $12::text[]
) AS e`,
      values: enqueueValues(jobs),
    });
    return rows;
  } catch (error) {
    throw idInUseOr(error);
  }
}

/**
 * jobInsertManyIds: {@link jobInsertMany}, answering the ids of the rows it
 * inserted and nothing else (jobs.enqueueMany answers `{ id, created }`; the
 * caller knows each job's type and queue). Measured on this machine (W2, calls
 * of 500 `{ n }` jobs): reading the five other columns back, scheduled_for's
 * date parsing most of all, was 8% of the server's busy time.
 */
export async function jobInsertManyIds(db: Db, jobs: readonly InsertJob[]): Promise<Array<{ id: string }>> {
  try {
    const { rows } = await db.query<{ id: string }>({
      name: 'jobInsertManyIds',
      text: `
SELECT e.id
FROM skipq_enqueue(
  $1::text[], $2::text[], $3::text[],
  ARRAY(SELECT p.value::text FROM json_array_elements($4::json) WITH ORDINALITY AS p(value, n) ORDER BY p.n),
  $5::int[], $6::timestamptz[], $7::bigint[], $8::int[], $9::text[], $10::int[], $11::text[], $12::text[]
) AS e`,
      values: enqueueValues(jobs),
    });
    return rows;
  } catch (error) {
    throw idInUseOr(error);
  }
}

/** One row of {@link jobInsertManyAndClaim}: a job it inserted, or one it claimed. */
type InsertAndClaimRow = (InsertedRow & { kind: 'inserted' }) | (ClaimedRow & { kind: 'claimed' });

/**
 * jobInsertManyAndClaim: {@link jobInsertMany}, and in the same statement and
 * commit the claim of a long-poll waiting on this server (skipq_claim with
 * its parameters, so every claim policy, priority order and SKIP LOCKED hold
 * as for its own statement). The insert runs first (the first branch of the
 * UNION ALL is read first), so the claim sees the rows it made and may take
 * them; it takes whatever the waiting claim would have taken. Saves that
 * claim's own statement, commit and two hops between processes after the
 * wake-up: measured on this machine (W4, one job every 10 ms to an idle
 * worker) the claim was 0.7-1.3 ms of the ~2.4 ms from enqueue to handler.
 * Throws {@link JobIdInUseError} as jobInsertMany does, having stored and
 * claimed nothing.
 */
export async function jobInsertManyAndClaim(db: Db, jobs: readonly InsertJob[], claim: ClaimParams): Promise<{ inserted: InsertedRow[]; claimed: ClaimedRow[] }> {
  let rows: InsertAndClaimRow[];
  try {
    ({ rows } = await db.query<InsertAndClaimRow>({
      name: 'jobInsertManyAndClaim',
      text: `
WITH inserted AS (
  SELECT e.id, e.task_type, e.queue, e.status, e.priority, e.scheduled_for
  FROM skipq_enqueue(
    $1::text[], $2::text[], $3::text[],
    ARRAY(SELECT p.value::text FROM json_array_elements($4::json) WITH ORDINALITY AS p(value, n) ORDER BY p.n),
    $5::int[], $6::timestamptz[], $7::bigint[], $8::int[], $9::text[], $10::int[], $11::text[], $12::text[]
  ) AS e
),
claimed AS (
  SELECT c.id, c.task_type, c.queue, c.payload::text AS payload, c.priority, c.attempt, c.retry_count, c.max_retries, c.timeout_ms, c.lease_expires_at, c.trace_context
  FROM skipq_claim($13::text, $14::text[], $15::text[], $16::int, $17::int, $18::timestamptz) AS c
)
SELECT 'inserted' AS kind,
       inserted.id, inserted.task_type, inserted.queue, inserted.status, inserted.priority, inserted.scheduled_for,
       NULL::text AS payload, NULL::int AS attempt, NULL::int AS retry_count, NULL::int AS max_retries,
       NULL::int AS timeout_ms, NULL::timestamptz AS lease_expires_at, NULL::text AS trace_context
FROM inserted
UNION ALL
SELECT 'claimed',
       claimed.id, claimed.task_type, claimed.queue, NULL, claimed.priority, NULL,
       claimed.payload, claimed.attempt, claimed.retry_count, claimed.max_retries,
       claimed.timeout_ms, claimed.lease_expires_at, claimed.trace_context
FROM claimed`,
      values: [...enqueueValues(jobs), claim.workerId, claim.types, claim.queues, claim.limit, claim.leaseMs, claim.now],
    }));
  } catch (error) {
    throw idInUseOr(error);
  }
  const inserted: InsertedRow[] = [];
  const claimed: ClaimedRow[] = [];
  for (const row of rows) {
    if (row.kind === 'claimed') claimed.push(row);
    else inserted.push(row);
  }
  return { inserted, claimed };
}

/**
 * The parameters of skipq_enqueue's statements, one array per column, each
 * written as its array literal here (server/pgArray.ts says why).
 */
function enqueueValues(jobs: readonly InsertJob[]): unknown[] {
  return [
    textArrayLiteral(jobs.map((j) => j.id)),
    textArrayLiteral(jobs.map((j) => j.queue)),
    textArrayLiteral(jobs.map((j) => j.type)),
    // The payloads as one JSON array, not a text[]: node-postgres escapes
    // every quote and backslash of every element of a text[] (escapeElement:
    // 8% of the server's busy time enqueueing 4 KiB payloads in calls of
    // 500), and PostgreSQL unescapes them again; json_array_elements hands
    // each element back as the text it was.
    jsonArrayText(jobs.map((j) => j.payloadJson)),
    numberArrayLiteral(jobs.map((j) => j.priority)),
    timestampArrayLiteral(jobs.map((j) => j.runAt)),
    numberArrayLiteral(jobs.map((j) => j.delayMs)),
    numberArrayLiteral(jobs.map((j) => j.maxRetries)),
    textArrayLiteral(jobs.map((j) => j.uniqueKey)),
    numberArrayLiteral(jobs.map((j) => j.timeoutMs)),
    textArrayLiteral(jobs.map((j) => j.concurrencyKey)),
    textArrayLiteral(jobs.map((j) => j.traceContext)),
  ];
}

/** A job found for a job that was not inserted: by its id, or as the live holder of its uniqueKey. */
export interface ExistingRow {
  id: string;
  task_type: string;
  queue: string;
  unique_key: string | null;
  status: 'pending' | 'claimed' | 'processing' | 'completed' | 'failed' | 'cancelled';
  priority: number;
  scheduled_for: Date;
  /** True: it has the id of a job looked up; false: it holds the uniqueKey of one. */
  by_id: boolean;
  /** Found by id: whether it has that job's type and queue (a repeat of the same enqueue). Always true by key. */
  same: boolean;
}

/**
 * jobFindExisting: what answers jobs that were not inserted. By id, the job with
 * that id, `same` when it has the looked-up job's type and queue; by uniqueKey,
 * the live job holding (queue, type, key). A job by key, or by id and `same`, is
 * in the queue the caller was allowed; one that is not `same` is the caller's
 * only to refuse, never to return.
 */
export async function jobFindExisting(db: Db, jobs: readonly InsertJob[]): Promise<ExistingRow[]> {
  const keyed = jobs.filter((j) => j.uniqueKey !== null);
  const { rows } = await db.query<ExistingRow>({
    name: 'jobFindExisting',
    text: `
SELECT t.id, t.task_type, t.queue, t.unique_key, t.status, t.priority, t.scheduled_for,
       true AS by_id,
       t.task_type = j.task_type AND t.queue = j.queue AS same
FROM task_queue AS t
JOIN unnest($1::text[], $2::text[], $3::text[]) AS j(id, queue, task_type)
  ON t.id = j.id
UNION ALL
SELECT t.id, t.task_type, t.queue, t.unique_key, t.status, t.priority, t.scheduled_for,
       false AS by_id,
       true AS same
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

/** A debounced or throttled enqueue's answer: the job, and whether this call made it. */
export interface KeyedRow extends Omit<InsertedRow, 'status'> {
  status: ExistingRow['status'];
  created: boolean;
}

/**
 * jobEnqueueDebounced: one job with uniqueKey and debounceMs
 * (skipq_enqueue_debounced, migration 20261201000400_schedules): a pending
 * holder of the key takes the payload and is due at now + debounceMs, else a
 * new job is inserted due then. Only enqueues with debounceMs take this path,
 * so the plain enqueue pays nothing for it. Throws {@link JobIdInUseError} when
 * the id belongs to another job.
 */
export async function jobEnqueueDebounced(db: Db, job: InsertJob, now: Date | null): Promise<KeyedRow> {
  return keyed(db, {
    name: 'jobEnqueueDebounced',
    text: `
SELECT e.id, e.task_type, e.queue, e.status, e.priority, e.scheduled_for, e.created
FROM skipq_enqueue_debounced($1::text, $2::text, $3::text, $4::text, $5::int, $6::int, $7::text, $8::int, $9::bigint, $10::text, $11::text, $12::timestamptz) AS e`,
    values: [job.id, job.queue, job.type, job.payloadJson, job.priority, job.maxRetries, job.uniqueKey, job.timeoutMs, job.debounceMs, job.concurrencyKey, job.traceContext, now],
  });
}

/**
 * jobEnqueueThrottled: one job with uniqueKey and throttleMs
 * (skipq_enqueue_throttled): the first call of a window makes the job; every
 * call until the window (from that job's creation) is over gets it, whatever
 * its status. Only enqueues with throttleMs take this path.
 */
export async function jobEnqueueThrottled(db: Db, job: InsertJob, now: Date | null): Promise<KeyedRow> {
  return keyed(db, {
    name: 'jobEnqueueThrottled',
    text: `
SELECT e.id, e.task_type, e.queue, e.status, e.priority, e.scheduled_for, e.created
FROM skipq_enqueue_throttled($1::text, $2::text, $3::text, $4::text, $5::int, $6::timestamptz, $7::bigint, $8::int, $9::text, $10::int, $11::bigint, $12::text, $13::text, $14::timestamptz) AS e`,
    values: [job.id, job.queue, job.type, job.payloadJson, job.priority, job.runAt, job.delayMs, job.maxRetries, job.uniqueKey, job.timeoutMs, job.throttleMs, job.concurrencyKey, job.traceContext, now],
  });
}

async function keyed(db: Db, query: { name: string; text: string; values: unknown[] }): Promise<KeyedRow> {
  try {
    const { rows } = await db.query<KeyedRow>(query);
    const row = rows[0];
    if (!row) throw new Error(query.name + ' answered no job');
    return row;
  } catch (error) {
    throw idInUseOr(error);
  }
}

import type { JobStatus } from '../../shared/index.js';
import type { Db } from '../db/pool.js';
import { idInUseOr } from './insert.js';

// Flows (jobs.enqueueFlow): a parent and its children, inserted in one
// statement. What happens to them afterwards is the move functions' business
// (skipq_flow_settle and the finishing moves in the flows_attempts migration).

/** One job of a flow to insert; JSON already serialised and validated. */
export interface FlowRow {
  id: string;
  queue: string;
  type: string;
  payloadJson: string;
  priority: number;
  runAt: Date | null;
  delayMs: number | null;
  maxRetries: number;
  timeoutMs: number | null;
  /** The job's parent in the flow; null for the root. */
  parentId: string | null;
  /** A parent's number of children (it waits for all of them); null for a job without children. */
  childrenLeft: number | null;
  /** A parent's rule when a child fails; null for a job without children. */
  onChildFailure: 'fail' | 'continue' | null;
  /** The job's lane within its queue, for per-key concurrency; null: none. */
  concurrencyKey: string | null;
  /** W3C trace context of the enqueue (traceparent[ tracestate]); null: none. */
  traceContext: string | null;
}

/**
 * flowInsert: every job of a flow in one statement and one commit. A parent
 * is pending at skipq_flow_hold(), which no claim takes, until its last child
 * finishes; a child is `awaited` by its parent. Jobs without children are due
 * as `runAt` / `delayMs` say, and their queues get one NOTIFY each. Throws
 * {@link JobIdInUseError}, having stored nothing, when an id is already used
 * (a repeat of the same flow, or another job's id).
 */
export async function flowInsert(db: Db, rows: readonly FlowRow[]): Promise<void> {
  try {
    await db.query({
      name: 'flowInsert',
      text: `
WITH inserted AS (
  INSERT INTO task_queue AS t (id, queue, task_type, payload, priority, scheduled_for, max_retries, timeout_ms, parent_id, children_left, on_child_failure, awaited, concurrency_key, trace_context)
  SELECT i.id, i.queue, i.task_type, i.payload::jsonb, i.priority,
         CASE
           WHEN i.children_left IS NOT NULL THEN skipq_flow_hold()
           ELSE coalesce(i.run_at, now() + coalesce(i.delay_ms, 0) * interval '1 millisecond')
         END,
         i.max_retries, i.timeout_ms, i.parent_id, i.children_left, i.on_child_failure, i.parent_id IS NOT NULL, i.concurrency_key, i.trace_context
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[], $7::bigint[], $8::int[], $9::int[], $10::text[], $11::int[], $12::text[], $13::text[], $14::text[])
    AS i(id, queue, task_type, payload, priority, run_at, delay_ms, max_retries, timeout_ms, parent_id, children_left, on_child_failure, concurrency_key, trace_context)
  RETURNING t.queue, t.children_left
),
woken AS (
  SELECT count(pg_notify('skipq_jobs', q.queue)) AS n
  FROM (SELECT DISTINCT inserted.queue FROM inserted WHERE inserted.children_left IS NULL) AS q
)
SELECT woken.n FROM woken`,
      values: [
        rows.map((r) => r.id),
        rows.map((r) => r.queue),
        rows.map((r) => r.type),
        rows.map((r) => r.payloadJson),
        rows.map((r) => r.priority),
        rows.map((r) => r.runAt),
        rows.map((r) => r.delayMs),
        rows.map((r) => r.maxRetries),
        rows.map((r) => r.timeoutMs),
        rows.map((r) => r.parentId),
        rows.map((r) => r.childrenLeft),
        rows.map((r) => r.onChildFailure),
        rows.map((r) => r.concurrencyKey),
        rows.map((r) => r.traceContext),
      ],
    });
  } catch (error) {
    throw idInUseOr(error);
  }
}

/** A job found by id after a flow's insert was refused. */
export interface FlowExistingRow {
  id: string;
  task_type: string;
  queue: string;
  parent_id: string | null;
}

/** flowFindExisting: the jobs holding some of these ids, to tell a repeated flow from a reused id. */
export async function flowFindExisting(db: Db, ids: readonly string[]): Promise<FlowExistingRow[]> {
  const { rows } = await db.query<FlowExistingRow>({
    name: 'flowFindExisting',
    text: `
SELECT t.id, t.task_type, t.queue, t.parent_id
FROM task_queue AS t
WHERE t.id = ANY ($1::text[])`,
    values: [ids],
  });
  return rows;
}

/** The parent as {@link flowChildren} read it, and one of its children per row (child columns null when it has none on this page). */
export interface ChildRow {
  parent_queue: string;
  parent_status: JobStatus;
  parent_worker_id: string | null;
  parent_attempt: number;
  parent_ended_by: string | null;
  id: string | null;
  task_type: string | null;
  queue: string | null;
  status: JobStatus | null;
  result: unknown;
  error_message: string | null;
  error_code: string | null;
  attempt: number | null;
  completed_at: Date | null;
  failed_at: Date | null;
}

/**
 * flowChildren: a page of a parent's children in id order (through
 * task_queue_parent_idx), with the parent's state on every row (one row with
 * null child columns when the page is empty; no row: no such job). With
 * `holder`, only the worker holding that attempt of the parent gets children:
 * a caller that no longer holds it gets the parent's state alone, to judge why.
 */
export async function flowChildren(
  db: Db,
  params: { parentId: string; cursor: string | null; limit: number; holder: { workerId: string; attempt: number } | null },
): Promise<ChildRow[]> {
  const { rows } = await db.query<ChildRow>({
    name: 'flowChildren',
    text: `
SELECT p.queue AS parent_queue, p.status AS parent_status, p.worker_id AS parent_worker_id, p.attempt AS parent_attempt, p.ended_by AS parent_ended_by,
       c.id, c.task_type, c.queue, c.status, c.result, c.error_message, c.error_code, c.attempt, c.completed_at, c.failed_at
FROM task_queue AS p
LEFT JOIN LATERAL (
  SELECT k.id, k.task_type, k.queue, k.status, k.result, k.error_message, k.error_code, k.attempt, k.completed_at, k.failed_at
  FROM task_queue AS k
  WHERE k.parent_id = p.id
    AND ($2::text IS NULL OR k.id > $2::text)
    AND ($4::text IS NULL OR (p.worker_id = $4::text AND p.attempt = $5::int AND p.status IN ('claimed', 'processing')))
  ORDER BY k.id
  LIMIT $3::int
) AS c ON true
WHERE p.id = $1::text`,
    values: [params.parentId, params.cursor, params.limit, params.holder?.workerId ?? null, params.holder?.attempt ?? null],
  });
  return rows;
}

/** A parent's children counted: how many it still waits for, and how many are in each status. */
export interface ChildCountRow {
  children_left: number | null;
  status: JobStatus | null;
  n: number | null;
}

/** flowChildCounts: a parent's `children_left` and its children per status (a row per status; one row with nulls when it has none). */
export async function flowChildCounts(db: Db, parentId: string): Promise<ChildCountRow[]> {
  const { rows } = await db.query<ChildCountRow>({
    name: 'flowChildCounts',
    text: `
SELECT p.children_left, s.status, s.n
FROM task_queue AS p
LEFT JOIN LATERAL (
  SELECT k.status, count(*)::int AS n
  FROM task_queue AS k
  WHERE k.parent_id = p.id
  GROUP BY k.status
) AS s ON true
WHERE p.id = $1::text`,
    values: [parentId],
  });
  return rows;
}

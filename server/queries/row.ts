import type { ClaimedJob, JobStatus, JobView } from '../../shared/index.js';
import { RawJson } from '../json.js';

/** A task_queue row as `SELECT *` returns it. */
export interface TaskRow {
  id: string;
  queue: string;
  task_type: string;
  payload: unknown;
  priority: number;
  status: JobStatus;
  scheduled_for: Date;
  started_at: Date | null;
  completed_at: Date | null;
  failed_at: Date | null;
  worker_id: string | null;
  retry_count: number;
  max_retries: number;
  error_message: string | null;
  attempt: number;
  lease_expires_at: Date | null;
  result: unknown;
  unique_key: string | null;
  progress: unknown;
  cancel_requested_at: Date | null;
  timeout_ms: number | null;
  error_code: string | null;
  /** What ended the latest attempt (shared/lifecycle.ts ENDINGS); null while one runs. */
  ended_by: string | null;
  /** The enqueue's W3C trace context (traceparent[ tracestate]); null: none. */
  trace_context: string | null;
  /** The flow's parent of this job (jobs.enqueueFlow); null outside a flow and for a root. */
  parent_id: string | null;
  /** A parent's children whose first finish is not counted yet; null for a job without children. */
  children_left: number | null;
  /** A parent's rule when a child fails: 'fail' or 'continue'; null for a job without children. */
  on_child_failure: string | null;
  /** A child whose parent still waits for its first finish. */
  awaited: boolean;
  created_at: Date;
  updated_at: Date;
}

/**
 * The columns of a claimed row that {@link toClaimedJob} reads, and the lease;
 * the payload as the text of its JSON (`payload::text`: see RawJson).
 */
export type ClaimedRow = Pick<
  TaskRow,
  'id' | 'task_type' | 'queue' | 'priority' | 'attempt' | 'retry_count' | 'max_retries' | 'timeout_ms' | 'lease_expires_at' | 'trace_context'
> & { payload: string };

/**
 * What every move function answers per input id (the SQL type
 * skipq_move_result). `moved`: this call made the move. Otherwise the row as it
 * is now, for judging why (shared/lifecycle.ts judge). A moved row carries only
 * what its move's caller needs; the other columns are null.
 */
export interface MoveRow {
  id: string;
  moved: boolean;
  status: JobStatus | null;
  attempt: number | null;
  worker_id: string | null;
  ended_by: string | null;
  queue: string | null;
  scheduled_for: Date | null;
  retry_count: number | null;
  lease_expires_at: Date | null;
  /** The job's type, where the statement reads it for the metrics' labels (completions and failures that moved). */
  task_type?: string | null;
}

/** Maps a claimed row to the API shape. */
export function toClaimedJob(row: ClaimedRow): ClaimedJob {
  return {
    id: row.id,
    type: row.task_type,
    queue: row.queue,
    payload: new RawJson(row.payload),
    priority: row.priority,
    attempt: row.attempt,
    retryCount: row.retry_count,
    maxRetries: row.max_retries,
    timeoutMs: row.timeout_ms,
    traceContext: row.trace_context,
  };
}

/** Maps a full row to the API's job view. */
export function toJobView(row: TaskRow): JobView {
  return {
    id: row.id,
    type: row.task_type,
    queue: row.queue,
    status: row.status,
    payload: row.payload,
    priority: row.priority,
    attempt: row.attempt,
    retryCount: row.retry_count,
    maxRetries: row.max_retries,
    scheduledFor: row.scheduled_for,
    startedAt: row.started_at,
    completedAt: row.completed_at,
    failedAt: row.failed_at,
    workerId: row.worker_id,
    leaseExpiresAt: row.lease_expires_at,
    error: row.error_message,
    errorCode: row.error_code,
    timeoutMs: row.timeout_ms,
    result: row.result ?? null,
    progress: row.progress ?? null,
    uniqueKey: row.unique_key,
    cancelRequestedAt: row.cancel_requested_at,
    parentId: row.parent_id,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

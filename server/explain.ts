import { EXPLAIN_CODES, isWaitingParent, type ChildCounts, type ExplainReason, type JobExplanation, type JobStatus } from '../shared/index.js';
import type { ExplainRow } from './queries/queues.js';

/**
 * Why a job is or is not being claimed, by the same rules skipq_claim follows
 * (the queues migration): a pending job is runnable when it is due, its queue
 * is not paused, and neither its queue's concurrency, its key's concurrency
 * (the stricter of the queue's and the type's keyConcurrency) nor its
 * queue's rate window is used up. Every reason that holds is named.
 * A flow's parent waiting for its children (`children`: their counts) is
 * WAITING_FOR_CHILDREN rather than SCHEDULED: the finishing move of its last
 * child makes it due, not a time.
 */
export function explainJob(row: ExplainRow, now: Date, children: ChildCounts | null = null): JobExplanation {
  const status = row.status as JobStatus;
  const reasons: ExplainReason[] = [];
  if (status === 'completed' || status === 'failed' || status === 'cancelled') {
    reasons.push({ code: EXPLAIN_CODES.FINISHED, message: `the job is ${status}; it runs again only if retried` });
    return { id: row.id, status, runnable: false, reasons };
  }
  if (status === 'claimed' || status === 'processing') {
    reasons.push({
      code: EXPLAIN_CODES.HELD,
      message: `worker ${row.worker_id ?? '?'} holds the job (${status})${row.lease_expires_at ? `, its lease runs until ${row.lease_expires_at.toISOString()}` : ''}`,
      ...(row.lease_expires_at ? { until: row.lease_expires_at } : {}),
    });
    return { id: row.id, status, runnable: false, reasons };
  }
  if (isWaitingParent({ status, scheduledFor: row.scheduled_for })) {
    reasons.push(waitingForChildren(children));
  } else if (row.scheduled_for > now) {
    reasons.push({ code: EXPLAIN_CODES.SCHEDULED, message: `the job is due at ${row.scheduled_for.toISOString()}`, until: row.scheduled_for });
  }
  if (row.paused) {
    reasons.push({ code: EXPLAIN_CODES.QUEUE_PAUSED, message: `queue "${row.queue}" is paused` });
  }
  if (row.concurrency !== null && (row.queue_held ?? 0) >= row.concurrency) {
    reasons.push({
      code: EXPLAIN_CODES.QUEUE_CONCURRENCY_FULL,
      message: `queue "${row.queue}" holds ${row.queue_held} jobs, its concurrency limit is ${row.concurrency}`,
    });
  }
  const keyLimit = laneLimit(row);
  if (keyLimit !== null && row.concurrency_key !== null && (row.key_held ?? 0) >= keyLimit.limit) {
    reasons.push({
      code: EXPLAIN_CODES.KEY_CONCURRENCY_FULL,
      message: `concurrency key "${row.concurrency_key}" of queue "${row.queue}" holds ${row.key_held} jobs, its limit is ${keyLimit.limit}${keyLimit.byType ? ' (its type\'s keyConcurrency)' : ''}`,
    });
  }
  if (row.rate_max !== null && row.rate_period_ms !== null && row.rate_window_start !== null) {
    const opens = new Date(row.rate_window_start.getTime() + row.rate_period_ms);
    if (now < opens && (row.rate_window_count ?? 0) >= row.rate_max) {
      reasons.push({
        code: EXPLAIN_CODES.RATE_LIMITED,
        message: `queue "${row.queue}" made its ${row.rate_max} claims of this ${row.rate_period_ms} ms window; the next window opens at ${opens.toISOString()}`,
        until: opens,
      });
    }
  }
  const runnable = reasons.length === 0;
  if (runnable) reasons.push({ code: EXPLAIN_CODES.READY, message: 'the job is due and nothing holds it back; the next claim of its queue may take it' });
  return { id: row.id, status, runnable, reasons };
}

/**
 * The key limit the claim applies to this job: in a keyed queue, the
 * stricter of the queue's and the type's keyConcurrency (`byType`: the
 * type's is the one that holds); outside a keyed queue, none.
 */
function laneLimit(row: ExplainRow): { limit: number; byType: boolean } | null {
  if (!row.keyed) return null;
  const queue = row.key_concurrency;
  const type = row.type_key_concurrency;
  if (type !== null && (queue === null || type < queue)) return { limit: type, byType: true };
  return queue === null ? null : { limit: queue, byType: false };
}

/** The reason of a parent that waits: how many children are left, and where the others stand. */
function waitingForChildren(children: ChildCounts | null): ExplainReason {
  if (!children) return { code: EXPLAIN_CODES.WAITING_FOR_CHILDREN, message: 'the job waits for its children; it runs once the last one finishes' };
  const finished = (['completed', 'failed', 'cancelled'] as const).filter((s) => children.byStatus[s] > 0).map((s) => `${children.byStatus[s]} ${s}`);
  const running = children.byStatus.claimed + children.byStatus.processing;
  return {
    code: EXPLAIN_CODES.WAITING_FOR_CHILDREN,
    message:
      `the job waits for ${children.left} of its ${children.total} children (${running} running, ${children.byStatus.pending} pending` +
      `${finished.length > 0 ? `; ${finished.join(', ')}` : ''}); it runs once the last one finishes`,
    children,
  };
}

import {
  cancelManyInputSchema,
  explainInputSchema,
  enqueueInputSchema,
  enqueueManyInputSchema,
  ERROR_CODES,
  jobRefInputSchema,
  judge,
  listInputSchema,
  MOVES,
  retryManyInputSchema,
  waitForInputSchema,
  type BulkMoveAnswer,
  type EnqueuedRef,
  type JobFilter,
  type JobState,
  type JobExplanation,
  type JobView,
} from '../../shared/index.js';
import { explainJob } from '../explain.js';
import { jobExplainRead } from '../queries/queues.js';
import { withoutPayloads } from '../dashboard.js';
import { clockOf } from '../clock.js';
import { QueueError } from '../errors.js';
import { queueOf } from '../registryCheck.js';
import { jobGet } from '../queries/get.js';
import { jobMoveMatching } from '../queries/bulk.js';
import { jobList, type FilterParams } from '../queries/list.js';
import { jobCancelMany, jobRetryMany } from '../queries/operator.js';
import { toJobView, type MoveRow } from '../queries/row.js';
import { waitForJob } from '../waitFor.js';
import { adminProcedure, assertQueueAllowed, producerProcedure, router } from '../trpc.js';
import type { Principal, QueueContext } from '../context.js';

async function getOrThrow(ctx: QueueContext & { principal: Principal }, id: string): Promise<JobView> {
  const row = await jobGet(ctx.deps.db, id);
  // A job in a queue the key may not use is answered like no job at all: a 403
  // would tell the key which ids exist.
  const allowed = ctx.principal.queues;
  if (!row || (allowed && !allowed.includes(row.queue))) throw new QueueError(ERROR_CODES.JOB_NOT_FOUND, `no job with id ${id}`);
  return toJobView(row);
}

/**
 * A filter as the SQL predicate takes it, limited to the queues the caller's
 * key may use: a queue asked for must be one of them (FORBIDDEN otherwise),
 * and no queue asked for means all of them.
 */
function filterFor(ctx: { principal: Principal }, filter: JobFilter): FilterParams {
  if (filter.queue) assertQueueAllowed(ctx, filter.queue);
  const status = filter.status;
  return {
    statuses: status === undefined ? null : Array.isArray(status) ? status : [status],
    queues: filter.queue ? [filter.queue] : ctx.principal.queues,
    type: filter.type ?? null,
    errorContains: filter.errorContains ?? null,
    createdAfter: filter.createdAfter ?? null,
    createdBefore: filter.createdBefore ?? null,
    finishedAfter: filter.finishedAfter ?? null,
    finishedBefore: filter.finishedBefore ?? null,
  };
}

/** The view as this caller may see it: browsers get no payloads when the dashboard hides them. */
const shown = (ctx: QueueContext, view: JobView): JobView => (ctx.hidePayloads ? withoutPayloads(view) : view);
/** Why a cancel or retry did not move the job, by the table of moves. */
function refusal(move: 'cancel' | 'retry', id: string, row: MoveRow | undefined): QueueError {
  if (!row) return new QueueError(ERROR_CODES.JOB_NOT_FOUND, `no job with id ${id}`);
  return new QueueError(ERROR_CODES.WRONG_STATE, `job ${id} is ${row.status}; only ${MOVES[move].from.join(', ')} jobs can be ${move === 'cancel' ? 'cancelled' : 'retried'}`);
}

/** Producer-side procedures: enqueue, inspect, cancel, retry. */
export const jobsRouter = router({
  /**
   * Enqueue one job. Answered with an existing job (`created: false`) instead of
   * a new one: the job with the same id, type and queue (a repeat whose reply was
   * lost), else the live job holding the uniqueKey in the same queue and type.
   * Both are in the queue the caller was just allowed; an id used by any other
   * job is JOB_ID_CONFLICT, which says nothing about that job.
   */
  enqueue: producerProcedure.input(enqueueInputSchema).mutation(({ ctx, input }) => {
    assertQueueAllowed(ctx, queueOf(ctx.deps.registry, input));
    return ctx.deps.enqueuer.enqueue(input);
  }),

  /** Enqueue many jobs atomically (an id conflict stores none of them); answers `{ id, created }` per job, in input order. */
  enqueueMany: producerProcedure.input(enqueueManyInputSchema).mutation(async ({ ctx, input }) => {
    for (const job of input.jobs) assertQueueAllowed(ctx, queueOf(ctx.deps.registry, job));
    const jobs = await ctx.deps.enqueuer.enqueueMany(input.jobs);
    return { jobs: jobs.map(({ id, created }): EnqueuedRef => ({ id, created })) };
  }),

  /** One job with its result, error and attempts. */
  get: producerProcedure.input(jobRefInputSchema).query(async ({ ctx, input }) => shown(ctx, await getOrThrow(ctx, input.id))),

  /**
   * Waits until the job is finished (completed, failed or cancelled) and
   * answers `{ finished: true, job }`, or `{ finished: false, job }` once
   * `timeoutMs` passed. Woken by the same wake-ups as claims, not by polling.
   */
  waitFor: producerProcedure.input(waitForInputSchema).query(async ({ ctx, input, signal }) => {
    const answer = await waitForJob(ctx.deps, input.id, input.timeoutMs, () => getOrThrow(ctx, input.id), signal);
    return { finished: answer.finished, job: shown(ctx, answer.job) };
  }),

  /**
   * Whether the next claim could take the job, and every reason why not
   * (SCHEDULED, QUEUE_PAUSED, QUEUE_CONCURRENCY_FULL, KEY_CONCURRENCY_FULL,
   * RATE_LIMITED, HELD, FINISHED), by the rules the claim follows.
   */
  explain: producerProcedure.input(explainInputSchema).query(async ({ ctx, input }): Promise<JobExplanation> => {
    const row = await jobExplainRead(ctx.deps.db, input.id);
    const allowed = ctx.principal.queues;
    if (!row || (allowed && !allowed.includes(row.queue))) throw new QueueError(ERROR_CODES.JOB_NOT_FOUND, `no job with id ${input.id}`);
    return explainJob(row, clockOf(ctx.deps) ?? new Date());
  }),

  /**
   * Jobs newest first, with a keyset cursor, filtered by queue, type, status
   * (`failed`: the dead letters), error text and time ranges.
   */
  list: producerProcedure.input(listInputSchema).query(async ({ ctx, input }) => {
    const { limit, cursor, ...filter } = input;
    const rows = await jobList(ctx.deps.db, { ...filterFor(ctx, filter), cursor: cursor ?? null, limit: limit + 1 });
    const page = rows.slice(0, limit).map(toJobView);
    return { jobs: page.map((view) => shown(ctx, view)), nextCursor: rows.length > limit ? (page.at(-1)?.id ?? null) : null };
  }),

  /**
   * Re-queues the failed (default) or cancelled jobs matching `filter`, at most
   * `limit`, each through the retry move (as `jobs.retry`); `dryRun` counts
   * them and moves none. Admin, like `jobs.retry`; a key limited to some
   * queues reaches only those.
   */
  retryMany: adminProcedure.input(retryManyInputSchema).mutation(async ({ ctx, input }): Promise<BulkMoveAnswer> => {
    const { answer, moved } = await jobMoveMatching(ctx.deps.pool, { move: 'retry', filter: filterFor(ctx, input.filter), limit: input.limit, dryRun: input.dryRun, now: clockOf(ctx.deps) });
    if (moved.length > 0) ctx.deps.hub.wake(new Set(moved.map((r) => r.queue as string)));
    return answer;
  }),

  /**
   * Cancels the pending, claimed or processing jobs matching `filter`, at most
   * `limit`, each through the cancel move (as `jobs.cancel`: a running
   * handler's AbortSignal fires at its next heartbeat); `dryRun` counts them
   * and moves none. Admin: one call reaches thousands of other producers' jobs.
   */
  cancelMany: adminProcedure.input(cancelManyInputSchema).mutation(async ({ ctx, input }): Promise<BulkMoveAnswer> => {
    const { answer, moved } = await jobMoveMatching(ctx.deps.pool, { move: 'cancel', filter: filterFor(ctx, input.filter), limit: input.limit, dryRun: input.dryRun, now: clockOf(ctx.deps) });
    if (moved.length > 0) ctx.deps.waiters?.finished(moved.map((r) => r.id));
    return answer;
  }),

  /**
   * Cancel a pending or running job; a running handler's AbortSignal fires at
   * its next heartbeat. Cancelling a cancelled job again is a harmless repeat.
   */
  cancel: producerProcedure.input(jobRefInputSchema).mutation(async ({ ctx, input }) => {
    await getOrThrow(ctx, input.id);
    const [row] = await jobCancelMany(ctx.deps.db, { ids: [input.id], now: clockOf(ctx.deps) });
    if (row?.moved) ctx.deps.waiters?.finished([row.id]);
    const verdict = row?.moved ? 'move' : judge('cancel', row as JobState | undefined);
    if (verdict !== 'move' && verdict !== 'repeat') throw refusal('cancel', input.id, row);
    return shown(ctx, await getOrThrow(ctx, input.id));
  }),

  /** Re-queue a failed or cancelled job with a fresh retry budget. */
  retry: adminProcedure.input(jobRefInputSchema).mutation(async ({ ctx, input }) => {
    await getOrThrow(ctx, input.id);
    const [row] = await jobRetryMany(ctx.deps.db, { ids: [input.id], now: clockOf(ctx.deps) });
    if (!row?.moved) throw refusal('retry', input.id, row);
    ctx.deps.hub.wake([row.queue as string]);
    return shown(ctx, await getOrThrow(ctx, input.id));
  }),
});

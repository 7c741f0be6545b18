import {
  attemptsInputSchema,
  childrenInputSchema,
  flowInputSchema,
  isWaitingParent,
  LIMITS,
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
  enqueuedJobSchema,
  enqueueManyOutputSchema,
  jobViewSchema,
  jobListOutputSchema,
  waitForOutputSchema,
  jobExplanationSchema,
  attemptsOutputSchema,
  childrenOutputSchema,
  enqueuedFlowSchema,
  jobDetailSchema,
  type BulkMoveAnswer,
  type EnqueuedRef,
  type JobFilter,
  type JobState,
  type JobExplanation,
  type JobView,
  type AttemptsAnswer,
  type JobDetail,
} from '../../shared/index.js';
import { childCountsOf, childrenOf, enqueueFlow } from '../flows.js';
import { attemptLatest, attemptList } from '../queries/attempts.js';
import { explainJob } from '../explain.js';
import { jobExplainRead } from '../queries/queues.js';
import { withoutPayloads } from '../dashboard.js';
import { clockOf } from '../clock.js';
import { wakeFreed } from '../leases.js';
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
  enqueue: producerProcedure
    .meta({ openapi: { method: 'POST', path: '/api/jobs', summary: 'Enqueue one job' } })
    .output(enqueuedJobSchema)
    .input(enqueueInputSchema).mutation(({ ctx, input }) => {
    assertQueueAllowed(ctx, queueOf(ctx.deps.registry, input));
    return ctx.deps.enqueuer.enqueue(input);
  }),

  /** Enqueue many jobs atomically (an id conflict stores none of them); answers `{ id, created }` per job, in input order. */
  enqueueMany: producerProcedure
    .meta({ openapi: { method: 'POST', path: '/api/jobs/batch', summary: 'Enqueue many jobs atomically' } })
    .output(enqueueManyOutputSchema)
    .input(enqueueManyInputSchema).mutation(async ({ ctx, input }) => {
    for (const job of input.jobs) assertQueueAllowed(ctx, queueOf(ctx.deps.registry, job));
    const jobs = await ctx.deps.enqueuer.enqueueMany(input.jobs);
    return { jobs: jobs.map(({ id, created }): EnqueuedRef => ({ id, created })) };
  }),

  /**
   * Creates a flow: a parent and its children (each a job or a flow of its
   * own), all or none, each job validated like `enqueue`. A parent runs once
   * every child of it is finished; under `onChildFailure: 'fail'` (the
   * default) a child that fails or is cancelled fails it at once instead.
   * Answers the ids in the input's shape.
   */
  enqueueFlow: producerProcedure
    .meta({ openapi: { method: 'POST', path: '/api/flows', summary: 'Enqueue a parent job and its children, all or none' } })
    .output(enqueuedFlowSchema)
    .input(flowInputSchema)
    .mutation(({ ctx, input }) => enqueueFlow(ctx.deps, input, (queue) => assertQueueAllowed(ctx, queue))),

  /** One job with its result, error and its latest attempts (at most LIMITS.attemptsShown, newest last). */
  get: producerProcedure
    .meta({ openapi: { method: 'GET', path: '/api/jobs/{id}', summary: 'One job with its result, error and latest attempts' } })
    .output(jobDetailSchema)
    .input(jobRefInputSchema)
    .query(async ({ ctx, input }): Promise<JobDetail> => {
      const view = shown(ctx, await getOrThrow(ctx, input.id));
      return { ...view, attempts: await attemptLatest(ctx.deps.db, { jobId: input.id, limit: LIMITS.attemptsShown }) };
    }),

  /** A job's attempts, oldest first: worker, claim and finish times, outcome, error (its first LIMITS.attemptErrorChars characters). */
  attempts: producerProcedure
    .meta({ openapi: { method: 'GET', path: '/api/jobs/{id}/attempts', summary: "A job's attempts, oldest first" } })
    .output(attemptsOutputSchema)
    .input(attemptsInputSchema)
    .query(async ({ ctx, input }): Promise<AttemptsAnswer> => {
      await getOrThrow(ctx, input.id);
      const attempts = await attemptList(ctx.deps.db, { jobId: input.id, after: input.after ?? 0, limit: input.limit });
      return { attempts, nextAfter: attempts.length === input.limit ? (attempts.at(-1)?.attempt ?? null) : null };
    }),

  /**
   * A flow parent's children in the order they were enqueued, with their
   * status, result and error. A key limited to some queues sees only the
   * children in those (the page may then hold fewer than `limit`).
   */
  children: producerProcedure
    .meta({ openapi: { method: 'GET', path: '/api/jobs/{id}/children', summary: "A flow parent's children, in the order they were enqueued" } })
    .output(childrenOutputSchema)
    .input(childrenInputSchema)
    .query(async ({ ctx, input }) => {
      const allowed = ctx.principal.queues;
      const visible = (queue: string): boolean => !allowed || allowed.includes(queue);
      const page = await childrenOf(ctx.deps, { id: input.id, cursor: input.cursor ?? null, limit: input.limit }, visible);
      const children = page.children.filter((c) => visible(c.queue)).map((c) => (ctx.hidePayloads ? { ...c, result: null } : c));
      return { ...page, children };
    }),

  /**
   * Waits until the job is finished (completed, failed or cancelled) and
   * answers `{ finished: true, job }`, or `{ finished: false, job }` once
   * `timeoutMs` passed. Woken by the same wake-ups as claims, not by polling.
   */
  waitFor: producerProcedure
    .meta({ openapi: { method: 'GET', path: '/api/jobs/{id}/wait', summary: 'Wait until the job is finished, up to timeoutMs' } })
    .output(waitForOutputSchema)
    .input(waitForInputSchema).query(async ({ ctx, input, signal }) => {
    const answer = await waitForJob(ctx.deps, input.id, input.timeoutMs, () => getOrThrow(ctx, input.id), signal);
    return { finished: answer.finished, job: shown(ctx, answer.job) };
  }),

  /**
   * Whether the next claim could take the job, and every reason why not
   * (SCHEDULED, WAITING_FOR_CHILDREN, QUEUE_PAUSED, QUEUE_CONCURRENCY_FULL,
   * KEY_CONCURRENCY_FULL, RATE_LIMITED, HELD, FINISHED), by the rules the claim follows.
   */
  explain: producerProcedure
    .meta({ openapi: { method: 'GET', path: '/api/jobs/{id}/explain', summary: 'Whether the next claim could take the job, and why not' } })
    .output(jobExplanationSchema)
    .input(explainInputSchema).query(async ({ ctx, input }): Promise<JobExplanation> => {
    const row = await jobExplainRead(ctx.deps.db, input.id);
    const allowed = ctx.principal.queues;
    if (!row || (allowed && !allowed.includes(row.queue))) throw new QueueError(ERROR_CODES.JOB_NOT_FOUND, `no job with id ${input.id}`);
    const children = isWaitingParent({ status: row.status as JobView['status'], scheduledFor: row.scheduled_for }) ? await childCountsOf(ctx.deps, row.id) : null;
    return explainJob(row, clockOf(ctx.deps) ?? new Date(), children);
  }),

  /**
   * Jobs newest first, with a keyset cursor, filtered by queue, type, status
   * (`failed`: the dead letters), error text and time ranges.
   */
  list: producerProcedure
    .meta({ openapi: { method: 'GET', path: '/api/jobs', summary: 'Jobs newest first, filtered, with a keyset cursor' } })
    .output(jobListOutputSchema)
    .input(listInputSchema).query(async ({ ctx, input }) => {
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
    if (moved.length > 0) {
      ctx.deps.waiters?.finished(moved.map((r) => r.id));
      // Cancelled held jobs make room in limited queues, as jobs.cancel's do.
      wakeFreed(ctx.deps, moved);
    }
    return answer;
  }),

  /**
   * Cancel a pending or running job; a running handler's AbortSignal fires at
   * its next heartbeat. Cancelling a cancelled job again is a harmless repeat.
   */
  cancel: producerProcedure
    .meta({ openapi: { method: 'POST', path: '/api/jobs/{id}/cancel', summary: 'Cancel a pending or running job' } })
    .output(jobViewSchema)
    .input(jobRefInputSchema).mutation(async ({ ctx, input }) => {
    await getOrThrow(ctx, input.id);
    const [row] = await jobCancelMany(ctx.deps.db, { ids: [input.id], now: clockOf(ctx.deps) });
    if (row?.moved) {
      ctx.deps.waiters?.finished([row.id]);
      // A cancelled held job makes room in a limited queue.
      wakeFreed(ctx.deps, [row]);
    }
    const verdict = row?.moved ? 'move' : judge('cancel', row as JobState | undefined);
    if (verdict !== 'move' && verdict !== 'repeat') throw refusal('cancel', input.id, row);
    return shown(ctx, await getOrThrow(ctx, input.id));
  }),

  /** Re-queue a failed or cancelled job with a fresh retry budget. */
  retry: adminProcedure
    .meta({ openapi: { method: 'POST', path: '/api/jobs/{id}/retry', summary: 'Re-queue a failed or cancelled job (admin)' } })
    .output(jobViewSchema)
    .input(jobRefInputSchema).mutation(async ({ ctx, input }) => {
    await getOrThrow(ctx, input.id);
    const [row] = await jobRetryMany(ctx.deps.db, { ids: [input.id], now: clockOf(ctx.deps) });
    if (!row?.moved) throw refusal('retry', input.id, row);
    ctx.deps.hub.wake([row.queue as string]);
    return shown(ctx, await getOrThrow(ctx, input.id));
  }),
});

import {
  claimInputSchema,
  completeInputSchema,
  completeManyInputSchema,
  failInputSchema,
  failManyInputSchema,
  heartbeatInputSchema,
  heldJobsInputSchema,
  workerChildrenInputSchema,
  childrenOutputSchema,
  workerIdSchema,
  claimOutputSchema,
  startOutputSchema,
  heartbeatOutputSchema,
  completeOutputSchema,
  completeManyOutputSchema,
  failOutputSchema,
  failManyOutputSchema,
  releaseOutputSchema,
} from '../../shared/index.js';
import { heldChildrenOf } from '../flows.js';
import { z } from 'zod';
import { claimJobs, completeJob, completeJobs, failJob, failJobs, heartbeatJobs, releaseJobs, startJobs } from '../leases.js';
import { storedWorkerId } from '../principal.js';
import { assertQueueAllowed, router, workerProcedure } from '../trpc.js';

/** Worker-side procedures. Every call after claim is fenced by (id, attempt, workerId); each job of a batch is answered on its own. */
export const workerRouter = router({
  /**
   * Claim up to `limit` jobs under a lease, waiting up to `waitMs` for work.
   * Completions carried in `complete` are answered in `completed` (and, for
   * results the server refused, `rejected`).
   */
  claim: workerProcedure
    .meta({ openapi: { method: 'POST', path: '/api/worker/claim', summary: 'Claim jobs under a lease, waiting up to waitMs for work' } })
    .output(claimOutputSchema)
    .input(claimInputSchema).mutation(async ({ ctx, input, signal }) => {
    for (const q of input.queues ?? []) assertQueueAllowed(ctx, q);
    const queues = input.queues ?? (ctx.principal.queues ? [...ctx.principal.queues] : null);
    const workerId = storedWorkerId(ctx.principal, input.workerId);
    return claimJobs(ctx.deps, { ...input, workerId, types: input.types ?? null, queues }, signal, input.complete);
  }),

  /** claimed -> processing for handlers that began. */
  start: workerProcedure
    .meta({ openapi: { method: 'POST', path: '/api/worker/start', summary: 'Mark claimed jobs as processing' } })
    .output(startOutputSchema)
    .input(heldJobsInputSchema)
    .mutation(({ ctx, input }) => startJobs(ctx.deps, storedWorkerId(ctx.principal, input.workerId), input.jobs)),

  /** Extend leases (never past a job's timeout); answers which jobs were lost or cancelled, and refused progress values. */
  heartbeat: workerProcedure
    .meta({ openapi: { method: 'POST', path: '/api/worker/heartbeat', summary: 'Extend leases and store progress' } })
    .output(heartbeatOutputSchema)
    .input(heartbeatInputSchema)
    .mutation(({ ctx, input }) => heartbeatJobs(ctx.deps, storedWorkerId(ctx.principal, input.workerId), input.leaseMs, input.jobs)),

  /**
   * Complete one job. A result the server refuses fails the job (INVALID_RESULT,
   * no retry) and answers `status: 'failed'`; CONFLICT (LEASE_LOST or
   * JOB_CANCELLED) when this worker no longer holds it.
   */
  complete: workerProcedure
    .meta({ openapi: { method: 'POST', path: '/api/worker/complete', summary: 'Complete one held job' } })
    .output(completeOutputSchema)
    .input(completeInputSchema)
    .mutation(({ ctx, input }) => completeJob(ctx.deps, storedWorkerId(ctx.principal, input.workerId), input)),

  /** Complete many jobs in one statement; an answer per job. */
  completeMany: workerProcedure
    .meta({ openapi: { method: 'POST', path: '/api/worker/complete/batch', summary: 'Complete many held jobs, each answered on its own' } })
    .output(completeManyOutputSchema)
    .input(completeManyInputSchema)
    .mutation(async ({ ctx, input }) => ({ results: await completeJobs(ctx.deps, storedWorkerId(ctx.principal, input.workerId), input.jobs) })),

  /** Fail one job: retried after its backoff, or failed when retries are spent or `retry` is false. */
  fail: workerProcedure
    .meta({ openapi: { method: 'POST', path: '/api/worker/fail', summary: 'Fail one held job (retried after its backoff unless retry is false)' } })
    .output(failOutputSchema)
    .input(failInputSchema)
    .mutation(({ ctx, input }) => failJob(ctx.deps, { ...input, workerId: storedWorkerId(ctx.principal, input.workerId) })),

  /** Fail many jobs in one statement; an answer per job. */
  failMany: workerProcedure
    .meta({ openapi: { method: 'POST', path: '/api/worker/fail/batch', summary: 'Fail many held jobs, each answered on its own' } })
    .output(failManyOutputSchema)
    .input(failManyInputSchema)
    .mutation(async ({ ctx, input }) => ({ results: await failJobs(ctx.deps, storedWorkerId(ctx.principal, input.workerId), input.jobs) })),

  /** Ends this worker's waiting claims at once, on every server: a stopping worker calls it instead of dropping a claim in flight. */
  interrupt: workerProcedure
    .input(z.object({ workerId: workerIdSchema }).strict())
    .mutation(async ({ ctx, input }) => {
      await ctx.deps.hub.interrupt(storedWorkerId(ctx.principal, input.workerId));
      return { interrupted: true };
    }),

  /**
   * The children of a flow parent this worker holds (its handler's
   * `ctx.children()`), with their status, result and error; LEASE_LOST or
   * JOB_CANCELLED once the attempt is no longer this worker's.
   */
  children: workerProcedure
    .meta({ openapi: { method: 'GET', path: '/api/worker/children', summary: 'The children of a flow parent this worker holds' } })
    .output(childrenOutputSchema)
    .input(workerChildrenInputSchema)
    .query(({ ctx, input }) => heldChildrenOf(ctx.deps, { ...input, workerId: storedWorkerId(ctx.principal, input.workerId), cursor: input.cursor ?? null })),

  /** Hand unfinished jobs back to pending without using a retry (graceful worker stop). */
  release: workerProcedure
    .meta({ openapi: { method: 'POST', path: '/api/worker/release', summary: 'Hand held jobs back to pending without using a retry' } })
    .output(releaseOutputSchema)
    .input(heldJobsInputSchema)
    .mutation(({ ctx, input }) => releaseJobs(ctx.deps, storedWorkerId(ctx.principal, input.workerId), input.jobs)),
});

import {
  claimInputSchema,
  completeInputSchema,
  completeManyInputSchema,
  failInputSchema,
  heartbeatInputSchema,
  heldJobsInputSchema,
  workerIdSchema,
} from '../../shared/index.js';
import { z } from 'zod';
import { claimJobs, completeJob, completeJobs, failJob, heartbeatJobs, releaseJobs, startJobs } from '../leases.js';
import { storedWorkerId } from '../context.js';
import { assertQueueAllowed, router, workerProcedure } from '../trpc.js';

/** Worker-side procedures. Every call after claim is fenced by (id, attempt, workerId). */
export const workerRouter = router({
  /** Claim up to `limit` jobs under a lease, waiting up to `waitMs` for work. */
  claim: workerProcedure.input(claimInputSchema).mutation(async ({ ctx, input, signal }) => {
    for (const q of input.queues ?? []) assertQueueAllowed(ctx, q);
    const queues = input.queues ?? (ctx.principal.queues ? [...ctx.principal.queues] : null);
    const workerId = storedWorkerId(ctx.principal, input.workerId);
    const { jobs, leaseExpiresAt, completed } = await claimJobs(ctx.deps, { ...input, workerId, types: input.types ?? null, queues }, signal, input.complete);
    return { jobs, leaseExpiresAt, ...(completed ? { completed } : {}) };
  }),

  /** claimed -> processing for handlers that began. */
  start: workerProcedure
    .input(heldJobsInputSchema)
    .mutation(({ ctx, input }) => startJobs(ctx.deps, storedWorkerId(ctx.principal, input.workerId), input.jobs)),

  /** Extend leases; answers which jobs were lost or cancelled. */
  heartbeat: workerProcedure
    .input(heartbeatInputSchema)
    .mutation(({ ctx, input }) => heartbeatJobs(ctx.deps, storedWorkerId(ctx.principal, input.workerId), input.leaseMs, input.jobs)),

  /** Complete one job; CONFLICT (LEASE_LOST or JOB_CANCELLED) when this worker no longer holds it. */
  complete: workerProcedure
    .input(completeInputSchema)
    .mutation(({ ctx, input }) => completeJob(ctx.deps, storedWorkerId(ctx.principal, input.workerId), input)),

  /** Complete many jobs in one statement; an outcome per job. */
  completeMany: workerProcedure
    .input(completeManyInputSchema)
    .mutation(async ({ ctx, input }) => ({ results: await completeJobs(ctx.deps, storedWorkerId(ctx.principal, input.workerId), input.jobs) })),

  /** Fail one job: retried after its backoff, or failed when retries are spent or `retry` is false. */
  fail: workerProcedure
    .input(failInputSchema)
    .mutation(({ ctx, input }) => failJob(ctx.deps, { ...input, workerId: storedWorkerId(ctx.principal, input.workerId) })),

  /** Ends this worker's waiting claims at once, on every server: a stopping worker calls it instead of dropping a claim in flight. */
  interrupt: workerProcedure
    .input(z.object({ workerId: workerIdSchema }).strict())
    .mutation(async ({ ctx, input }) => {
      await ctx.deps.hub.interrupt(storedWorkerId(ctx.principal, input.workerId));
      return { interrupted: true };
    }),

  /** Hand unfinished jobs back to pending without using a retry (graceful worker stop). */
  release: workerProcedure
    .input(heldJobsInputSchema)
    .mutation(({ ctx, input }) => releaseJobs(ctx.deps, storedWorkerId(ctx.principal, input.workerId), input.jobs)),
});

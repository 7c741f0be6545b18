import { z } from 'zod';

/**
 * Every status a job can have. The database enforces the same set with a CHECK.
 * How a job moves between them is the table of moves in `lifecycle.ts`.
 *
 * - `pending`: waiting to be claimed once `scheduled_for` has passed (new, or back for a retry).
 * - `claimed`: handed to one worker; it holds a lease until `lease_expires_at`.
 * - `processing`: the worker's handler has started; the lease still applies.
 * - `completed`: the handler finished; `result` holds what it returned. Final.
 * - `failed`: the last attempt failed and no retries were left (or the error was permanent). `jobs.retry` re-queues it.
 * - `cancelled`: stopped by `jobs.cancel`; a running handler sees its AbortSignal fire. `jobs.retry` re-queues it.
 */
export const JOB_STATUSES = ['pending', 'claimed', 'processing', 'completed', 'failed', 'cancelled'] as const;

/** One of {@link JOB_STATUSES}. */
export type JobStatus = (typeof JOB_STATUSES)[number];

/** Zod schema of a job status. */
export const jobStatusSchema = z.enum(JOB_STATUSES);

/** Statuses in which a worker holds the job under a lease. */
export const HELD_STATUSES = ['claimed', 'processing'] as const satisfies readonly JobStatus[];

/** Statuses a job can never leave on its own. */
export const FINAL_STATUSES = ['completed', 'failed', 'cancelled'] as const satisfies readonly JobStatus[];

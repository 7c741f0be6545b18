import { z } from 'zod';
import { LIMITS } from './limits.js';
import { nameSchema } from './names.js';
import { jobIdSchema } from './api.js';
import type { JobStatus } from './statuses.js';

/** Input of `queues.pause` and `queues.resume`. */
export const queueRefInputSchema = z.object({ queue: nameSchema }).strict();

const limitSchema = z.number().int().min(1).max(1_000_000);
/** Days a queue keeps finished jobs; 0 keeps them forever. */
const retentionSchema = z.number().int().min(0).max(36_500);

/**
 * Input of `queues.configure`. A field left out keeps its setting; `null` clears it.
 * `rateLimit`: at most `max` claims start in each window of `periodMs`.
 * `retentionDays` / `failedRetentionDays`: days the queue keeps completed and
 * cancelled / failed jobs (0: forever; `null`: the server's default).
 */
export const queueConfigureInputSchema = z
  .object({
    queue: nameSchema,
    concurrency: limitSchema.nullable().optional(),
    rateLimit: z
      .object({ max: limitSchema, periodMs: z.number().int().min(1).max(86_400_000) })
      .strict()
      .nullable()
      .optional(),
    /** At most this many held jobs per concurrency key (1..10,000); keys take turns. */
    keyConcurrency: z.number().int().min(1).max(LIMITS.keyConcurrency).nullable().optional(),
    retentionDays: retentionSchema.nullable().optional(),
    failedRetentionDays: retentionSchema.nullable().optional(),
  })
  .strict();

/** Input of `queues.configure`, as a caller writes it. */
export type QueueConfigureInput = z.input<typeof queueConfigureInputSchema>;

/** Input of `queues.list`. */
export const queueListInputSchema = z.object({}).strict().optional();

/** A queue's settings (`null`: no limit). */
export interface QueueSettings {
  paused: boolean;
  /** At most this many jobs of the queue held (claimed or processing) at once. */
  concurrency: number | null;
  /** At most `max` claims per `periodMs`. */
  rateLimit: { max: number; periodMs: number } | null;
  /** At most this many held jobs per concurrency key. */
  keyConcurrency: number | null;
  /** Days completed and cancelled jobs are kept (0: forever); null: the server's `retentionDays` (SKIPQ_RETENTION_DAYS). */
  retentionDays: number | null;
  /** Days failed jobs are kept (0: forever); null: the server's `failedRetentionDays` (SKIPQ_FAILED_RETENTION_DAYS). */
  failedRetentionDays: number | null;
}

/** One queue as `queues.list` answers it: its settings and its jobs per status. */
export interface QueueView extends QueueSettings {
  name: string;
  counts: Record<JobStatus, number>;
}

/** Why a job is or is not being claimed, as `jobs.explain` names it. */
export const EXPLAIN_CODES = {
  /** Pending, due, and no policy holds it back. */
  READY: 'READY',
  /** Due later (a delay, a backoff, a schedule); `until` says when. */
  SCHEDULED: 'SCHEDULED',
  /** Its queue is paused. */
  QUEUE_PAUSED: 'QUEUE_PAUSED',
  /** Its queue holds as many jobs as its concurrency allows. */
  QUEUE_CONCURRENCY_FULL: 'QUEUE_CONCURRENCY_FULL',
  /** Its concurrency key holds as many jobs as keyConcurrency allows. */
  KEY_CONCURRENCY_FULL: 'KEY_CONCURRENCY_FULL',
  /** Its queue used up the claims of the current rate window; `until` is when the next one opens. */
  RATE_LIMITED: 'RATE_LIMITED',
  /** A worker holds it; `until` is when its lease runs out. */
  HELD: 'HELD',
  /** Completed, failed or cancelled. */
  FINISHED: 'FINISHED',
  /** A flow's parent: it runs once every child of it is finished; `children` has the counts. */
  WAITING_FOR_CHILDREN: 'WAITING_FOR_CHILDREN',
} as const;

/** One of {@link EXPLAIN_CODES}. */
export type ExplainCode = (typeof EXPLAIN_CODES)[keyof typeof EXPLAIN_CODES];

/** One reason of `jobs.explain`. */
export interface ExplainReason {
  code: ExplainCode;
  message: string;
  until?: Date;
  /** With WAITING_FOR_CHILDREN: the parent's children, how many it still waits for, and how many are in each status. */
  children?: ChildCounts;
}

/** A flow parent's children: `total`, how many it still waits for (`left`), and how many are in each status. */
export interface ChildCounts {
  total: number;
  left: number;
  byStatus: Record<JobStatus, number>;
}

/** What `jobs.explain` answers: whether the next claim could take the job, and every reason why not. */
export interface JobExplanation {
  id: string;
  status: JobStatus;
  /** Pending, due, and nothing in its queue's policy holds it back. */
  runnable: boolean;
  reasons: ExplainReason[];
}

/** Input of `jobs.explain`. */
export const explainInputSchema = z.object({ id: jobIdSchema }).strict();

import { z } from 'zod';
import { LIMITS } from './limits.js';
import { nameSchema, textSchema } from './names.js';
import { FAILURE_CODES } from './errors.js';
import { jobStatusSchema, type JobStatus } from './statuses.js';

/** Zod schema of a {@link FAILURE_CODES} value. */
export const failureCodeSchema = z.enum(FAILURE_CODES);

/** A job id: the text form of a UUID. */
export const jobIdSchema = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'must be a job id (a UUID such as 01931a3c-5c1e-7d2a-9f00-1b2c3d4e5f60)');

/** The attempt a worker got at claim (the fencing token); `attempt` is an int4 column. */
const attemptSchema = z.number().int().min(1).max(2_147_483_647);

/** A worker's name; appears in `worker_id`. */
export const workerIdSchema = textSchema(LIMITS.workerId).min(1);

/** Input of `jobs.enqueue`. */
export const enqueueInputSchema = z
  .object({
    type: nameSchema,
    payload: z.unknown(),
    queue: nameSchema.optional(),
    priority: z.number().int().min(0).max(10).optional(),
    runAt: z
      .date()
      .refine((d) => d.getTime() >= 0 && d.getTime() <= Date.now() + LIMITS.maxDelayMs, 'must be between 1970 and 10 years from now')
      .optional(),
    delayMs: z.number().int().min(0).max(LIMITS.maxDelayMs).optional(),
    maxRetries: z.number().int().min(0).max(LIMITS.maxRetries).optional(),
    uniqueKey: textSchema(LIMITS.uniqueKey).min(1).optional(),
    /** Per-attempt time limit in ms; overrides the type's `timeoutMs`. */
    timeoutMs: z.number().int().min(1).max(LIMITS.maxTimeoutMs).optional(),
    /**
     * The job's id, chosen by the caller (the clients generate a UUIDv7), so a
     * retried enqueue whose reply was lost returns the job it already made.
     */
    id: jobIdSchema.optional(),
    /**
     * With `uniqueKey`: a pending job holding the key takes this payload and is
     * due at now + debounceMs (else a new job is, due then); one job runs after a burst.
     */
    debounceMs: z.number().int().min(1).max(LIMITS.maxDelayMs).optional(),
    /**
     * With `uniqueKey`: at most one job per key per window of throttleMs from its
     * creation, completed or not; calls in the window get that job (`created: false`).
     */
    throttleMs: z.number().int().min(1).max(LIMITS.maxDelayMs).optional(),
  })
  .strict()
  .refine((v) => v.runAt === undefined || v.delayMs === undefined, { message: 'give runAt or delayMs, not both', path: ['runAt'] })
  .refine((v) => (v.debounceMs === undefined && v.throttleMs === undefined) || v.uniqueKey !== undefined, {
    message: 'debounceMs and throttleMs need a uniqueKey (the key calls are grouped by)',
    path: ['uniqueKey'],
  })
  .refine((v) => v.debounceMs === undefined || v.throttleMs === undefined, { message: 'give debounceMs or throttleMs, not both', path: ['debounceMs'] })
  .refine((v) => v.debounceMs === undefined || (v.runAt === undefined && v.delayMs === undefined), {
    message: 'debounceMs decides when the job runs; give no runAt or delayMs with it',
    path: ['debounceMs'],
  });

/** One job of `jobs.enqueueMany` (same fields as `jobs.enqueue`). */
export type EnqueueInput = z.input<typeof enqueueInputSchema>;

/** Input of `jobs.enqueueMany`: all are validated before any is inserted. */
export const enqueueManyInputSchema = z.object({ jobs: z.array(enqueueInputSchema).min(1).max(LIMITS.enqueueBatch) }).strict();

/**
 * What `jobs.enqueueMany` (and the producer client) answer per job: its id, and
 * `created: false` when an existing job was returned instead (the one with the
 * same id, type and queue, else the live one of that queue and type holding the uniqueKey).
 * Kept to two fields: a batch of 500 answers is serialised on every call.
 */
export interface EnqueuedRef {
  id: string;
  created: boolean;
}

/** What `jobs.enqueue` answers: the job summary. */
export interface EnqueuedJob extends EnqueuedRef {
  type: string;
  queue: string;
  status: z.infer<typeof jobStatusSchema>;
  priority: number;
  scheduledFor: Date;
}

/** Input of `jobs.get`, `jobs.cancel`, `jobs.retry`. */
export const jobRefInputSchema = z.object({ id: jobIdSchema }).strict();

/**
 * Input of `jobs.waitFor`: answers once the job is finished (completed, failed
 * or cancelled) or after `timeoutMs` (bounded like a claim's long-poll by
 * LIMITS.maxWaitMs; the producer client loops for longer waits).
 */
export const waitForInputSchema = z
  .object({ id: jobIdSchema, timeoutMs: z.number().int().min(0).max(LIMITS.maxWaitMs).default(LIMITS.maxWaitMs) })
  .strict();

/** What `jobs.waitFor` answers: the job as it is, and whether it is finished (false: the timeout passed first). */
export interface WaitForAnswer {
  finished: boolean;
  job: JobView;
}

/**
 * Which jobs a call is about: the filter of `jobs.list`, `jobs.retryMany` and
 * `jobs.cancelMany`, read by the one SQL predicate `skipq_job_matches`, so a
 * bulk move takes exactly what a list with the same filter shows. Every field
 * narrows; none given matches every job. Time ranges are [after, before).
 */
const jobFilterFields = {
  queue: nameSchema.optional(),
  type: nameSchema.optional(),
  /** `failed` is the dead-letter set. */
  status: z.union([jobStatusSchema, z.array(jobStatusSchema).min(1)]).optional(),
  /** The last error contains this text, case-insensitively; `%` and `_` are matched as themselves. */
  errorContains: z.string().min(1).max(LIMITS.errorFilter).optional(),
  createdAfter: z.date().optional(),
  createdBefore: z.date().optional(),
  /** Finished (completed, failed or cancelled) at or after this time; live jobs never match a finished range. */
  finishedAfter: z.date().optional(),
  finishedBefore: z.date().optional(),
};

/** A filter of jobs, as {@link jobFilterFields} describes. */
export const jobFilterSchema = z.object(jobFilterFields).strict();

/** A filter of jobs, as a caller writes it. */
export type JobFilter = z.input<typeof jobFilterSchema>;

/** Input of `jobs.list`: a {@link JobFilter}, newest first, keyset cursor. */
export const listInputSchema = z
  .object({
    ...jobFilterFields,
    limit: z.number().int().min(1).max(LIMITS.listLimit).default(50),
    cursor: jobIdSchema.optional(),
  })
  .strict();

/** A bulk move's input: the filter with `status` limited to `statuses` (default `defaults`), a required `limit`, and `dryRun`. */
function bulkMoveInputSchema<S extends readonly [JobStatus, ...JobStatus[]]>(statuses: S, defaults: readonly S[number][]) {
  const status = z.enum(statuses);
  return z
    .object({
      filter: z
        .object({ ...jobFilterFields, status: z.union([status, z.array(status).min(1)]).default([...defaults]) })
        .strict(),
      /** At most this many jobs are moved (or counted); required, so no call moves an unbounded set by accident. */
      limit: z.number().int().min(1).max(LIMITS.bulkLimit),
      /** Count the jobs the call would move, and move none. */
      dryRun: z.boolean().default(false),
    })
    .strict();
}

/**
 * Input of `jobs.retryMany`: re-queues the failed (the default) or cancelled
 * jobs matching `filter`, at most `limit` of them.
 * @example { filter: { queue: 'ingestion', errorContains: 'ECONNRESET' }, limit: 1000, dryRun: true }
 */
export const retryManyInputSchema = bulkMoveInputSchema(['failed', 'cancelled'], ['failed']);

/**
 * Input of `jobs.cancelMany`: cancels the pending, claimed or processing
 * (default: all three) jobs matching `filter`, at most `limit` of them.
 * @example { filter: { queue: 'ingestion', type: 'reindex', status: 'pending' }, limit: 500 }
 */
export const cancelManyInputSchema = bulkMoveInputSchema(['pending', 'claimed', 'processing'], ['pending', 'claimed', 'processing']);

/**
 * What `jobs.retryMany` and `jobs.cancelMany` answer. `matched`: jobs that
 * matched the filter when the call looked, at most `limit`; `more`: further
 * jobs match beyond `limit` (call again). `moved`: jobs this call moved;
 * `skipped`: matched, but changed meanwhile (moved by someone else, or no
 * longer matching) and left as they are. A dry run moves and skips nothing.
 */
export interface BulkMoveAnswer {
  dryRun: boolean;
  matched: number;
  more: boolean;
  moved: number;
  skipped: number;
}

/** A completion: a held job and what its handler returned. */
export const completionSchema = z.object({ id: jobIdSchema, attempt: attemptSchema, result: z.unknown().optional() }).strict();

/**
 * Input of `worker.claim`. `complete` carries finished jobs of the same worker,
 * completed before the claim runs: one round trip per batch instead of two.
 */
export const claimInputSchema = z
  .object({
    workerId: workerIdSchema,
    complete: z.array(completionSchema).max(LIMITS.workerBatch).optional(),
    types: z.array(nameSchema).min(1).max(100).optional(),
    queues: z.array(nameSchema).min(1).max(100).optional(),
    limit: z.number().int().min(1).max(LIMITS.claimLimit).default(1),
    leaseMs: z.number().int().min(LIMITS.minLeaseMs).max(LIMITS.maxLeaseMs).default(LIMITS.defaultLeaseMs),
    waitMs: z.number().int().min(0).max(LIMITS.maxWaitMs).default(0),
  })
  .strict();

/**
 * A job as the worker receives it. `payload` is unvalidated here: the worker
 * parses it with the registry. Every job of one claim shares the claim's
 * `leaseExpiresAt` (sent once per claim, not per job).
 */
export interface ClaimedJob {
  id: string;
  type: string;
  queue: string;
  payload: unknown;
  priority: number;
  attempt: number;
  retryCount: number;
  maxRetries: number;
  /** This attempt's time limit in ms (null: none), counted from the claim. */
  timeoutMs: number | null;
}

/** What `worker.claim` answers. `completed` and `rejected` only when the claim carried completions. */
export interface ClaimAnswer {
  jobs: ClaimedJob[];
  /**
   * The claim's lease; a job with a timeout shorter than the lease holds its
   * lease only until claim + timeoutMs.
   */
  leaseExpiresAt: Date | null;
  completed?: CompleteOutcome[];
  /** Completions whose result the server refused (outcome `failed`), with the reason. */
  rejected?: Array<{ id: string; error: string }>;
}

/** A held job: its id and the attempt (fencing token) the worker got at claim. */
export const heldJobSchema = z.object({ id: jobIdSchema, attempt: attemptSchema }).strict();

/** Input of `worker.start`, `worker.release`. */
export const heldJobsInputSchema = z
  .object({ workerId: workerIdSchema, jobs: z.array(heldJobSchema).min(1).max(LIMITS.workerBatch) })
  .strict();

/** Input of `worker.heartbeat`: extends leases (by `leaseMs`, default the claim's default) and stores progress. */
export const heartbeatInputSchema = z
  .object({
    workerId: workerIdSchema,
    leaseMs: z.number().int().min(LIMITS.minLeaseMs).max(LIMITS.maxLeaseMs).default(LIMITS.defaultLeaseMs),
    jobs: z
      .array(heldJobSchema.extend({ progress: z.unknown().optional() }).strict())
      .min(1)
      .max(LIMITS.workerBatch),
  })
  .strict();

/** Input of `worker.complete`. */
export const completeInputSchema = z
  .object({ workerId: workerIdSchema, id: jobIdSchema, attempt: attemptSchema, result: z.unknown().optional() })
  .strict();

/** Input of `worker.completeMany`. */
export const completeManyInputSchema = z
  .object({
    workerId: workerIdSchema,
    jobs: z.array(completionSchema).min(1).max(LIMITS.workerBatch),
  })
  .strict();

/**
 * Per-job outcome of a completion (`worker.completeMany`, and `completed` of a
 * claim that carried completions): `completed` (also for a repeated call of
 * the same attempt), `failed` (the server refused this result, e.g. over the
 * size limit or not JSON, and failed the job with code INVALID_RESULT, no
 * retry), or why this worker's attempt no longer counts. Each item stands on
 * its own: one bad result never affects the others in its batch.
 */
export type CompleteOutcome = 'completed' | 'failed' | 'lease_lost' | 'cancelled' | 'not_found';

/** One answer of `worker.completeMany`; `error` says why when the outcome is `failed`. */
export interface CompleteAnswer {
  id: string;
  outcome: CompleteOutcome;
  error?: string;
}

/**
 * What `worker.heartbeat` answers. `extended` leases carry their new expiry
 * (never past the attempt's timeout). A progress value the server refuses is
 * named in `rejected` with the reason; that job's lease is still extended and
 * no other job is affected.
 */
export interface HeartbeatAnswer {
  extended: Array<{ id: string; leaseExpiresAt: Date }>;
  lost: string[];
  cancelled: string[];
  rejected: Array<{ id: string; error: string }>;
}

/** What one failure says: which attempt, why, and whether it may run again. */
const failFields = {
  id: jobIdSchema,
  attempt: attemptSchema,
  error: z.string().transform((s) => s.replaceAll('\u0000', '').slice(0, LIMITS.errorMessage)),
  /** Why, as a code programs can branch on; stored in `error_code`. Default HANDLER_ERROR. */
  code: failureCodeSchema.optional(),
  retry: z.boolean().default(true),
  retryDelayMs: z.number().int().min(0).max(LIMITS.maxDelayMs).optional(),
};

/** Input of `worker.fail`. `retry: false` fails for good; `retryDelayMs` overrides the backoff. */
export const failInputSchema = z.object({ workerId: workerIdSchema, ...failFields }).strict();

/** Input of `worker.failMany`: many failures of one worker in one statement, each answered on its own. */
export const failManyInputSchema = z
  .object({ workerId: workerIdSchema, jobs: z.array(z.object(failFields).strict()).min(1).max(LIMITS.workerBatch) })
  .strict();

/**
 * Per-job outcome of `worker.failMany`: `pending` (it runs again at
 * `scheduledFor`), `failed` (for good), or why this worker's attempt no longer
 * counts. A repeated call for the same attempt answers the job's state again.
 */
export type FailOutcome = 'pending' | 'failed' | 'lease_lost' | 'cancelled' | 'not_found';

/** One answer of `worker.failMany`; `scheduledFor` and `retryCount` come with `pending` and `failed`. */
export interface FailAnswer {
  id: string;
  outcome: FailOutcome;
  scheduledFor?: Date;
  retryCount?: number;
}

/** Input of `queues.stats`. */
export const statsInputSchema = z.object({}).strict().optional();

/** Everything about one job, as `jobs.get`, `jobs.list`, `jobs.cancel` and `jobs.retry` return it. */
export interface JobView {
  id: string;
  type: string;
  queue: string;
  status: z.infer<typeof jobStatusSchema>;
  payload: unknown;
  priority: number;
  /** Claims so far; the fencing token of the current holder. */
  attempt: number;
  retryCount: number;
  maxRetries: number;
  scheduledFor: Date;
  startedAt: Date | null;
  completedAt: Date | null;
  failedAt: Date | null;
  workerId: string | null;
  leaseExpiresAt: Date | null;
  error: string | null;
  /** Why the last attempt failed, as a code ({@link FAILURE_CODES}); null when it did not or nobody said. */
  errorCode: string | null;
  /** Per-attempt time limit in ms (null: none). */
  timeoutMs: number | null;
  result: unknown;
  progress: unknown;
  uniqueKey: string | null;
  cancelRequestedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** Input of `schedules.upsert`: a schedule created or replaced by name. */
export const scheduleUpsertInputSchema = z
  .object({
    name: nameSchema,
    type: nameSchema,
    /** 5 fields (minute precision) or 6 (seconds first). */
    cron: z.string().min(1).max(200),
    /** IANA time zone; default UTC. */
    timezone: z.string().min(1).max(100).optional(),
    payload: z.unknown(),
    queue: nameSchema.optional(),
    priority: z.number().int().min(0).max(10).optional(),
    maxRetries: z.number().int().min(0).max(LIMITS.maxRetries).optional(),
    timeoutMs: z.number().int().min(1).max(LIMITS.maxTimeoutMs).optional(),
    catchUp: z.enum(['skip', 'latest', 'all']).default('latest'),
    allowOverlap: z.boolean().default(true),
  })
  .strict();

/** Input of `schedules.remove`, `schedules.pause`, `schedules.resume`. */
export const scheduleRefInputSchema = z.object({ name: nameSchema }).strict();

/** A schedule as `schedules.*` answer it. `nextRuns` is empty while paused. */
export interface ScheduleView {
  name: string;
  type: string;
  cron: string;
  timezone: string | null;
  payload: unknown;
  queue: string | null;
  priority: number | null;
  maxRetries: number | null;
  timeoutMs: number | null;
  catchUp: 'skip' | 'latest' | 'all';
  allowOverlap: boolean;
  paused: boolean;
  source: 'registry' | 'api';
  /** The next 3 ticks not yet produced (the first may be due now). */
  nextRuns: Date[];
  lastRunAt: Date | null;
  lastJobId: string | null;
}

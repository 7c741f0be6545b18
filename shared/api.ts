import { z } from 'zod';
import { LIMITS } from './limits.js';
import { nameSchema, textSchema } from './names.js';
import { FAILURE_CODES } from './errors.js';
import { jobStatusSchema, type JobStatus } from './statuses.js';
import type { AttemptOutcome, Ending } from './lifecycle.js';

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

/** A concurrency key: a job's lane within its queue (see `keyConcurrency`). */
export const concurrencyKeySchema = textSchema(LIMITS.concurrencyKey).min(1);

/** The longest trace context a job stores (the column's CHECK): a traceparent, a space and a tracestate. */
export const TRACE_CONTEXT_MAX_CHARS = 1024;

// W3C Trace Context: version (not ff), 32-hex trace id and 16-hex span id (neither all
// zeros), 2-hex flags; then, after one space, the tracestate as printable ASCII.
const TRACE_CONTEXT_PATTERN = /^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}(?: [\x20-\x7e]+)?$/;

/**
 * A job's trace context: a W3C `traceparent` (lowercase hex), optionally a
 * space and the `tracestate`, at most 1024 characters. The producer client
 * fills it from the active span; a worker's span for the job continues it.
 */
export const traceContextSchema = z
  .string()
  .max(TRACE_CONTEXT_MAX_CHARS, `must be at most ${TRACE_CONTEXT_MAX_CHARS} characters (traceparent, a space, tracestate)`)
  .regex(
    TRACE_CONTEXT_PATTERN,
    'must be a W3C traceparent such as 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 (lowercase hex, ids not all zeros), optionally followed by a space and a tracestate',
  );

/** The fields of one job that `jobs.enqueue` and every job of a flow (`jobs.enqueueFlow`) take. */
const jobFields = {
  type: nameSchema,
  payload: z.unknown(),
  queue: nameSchema.optional(),
  priority: z.number().int().min(0).max(10).optional(),
  runAt: z
    .date()
    .meta({ format: 'date-time' })
    .refine((d) => d.getTime() >= 0 && d.getTime() <= Date.now() + LIMITS.maxDelayMs, 'must be between 1970 and 10 years from now')
    .optional(),
  delayMs: z.number().int().min(0).max(LIMITS.maxDelayMs).optional(),
  maxRetries: z.number().int().min(0).max(LIMITS.maxRetries).optional(),
  /**
   * The job's lane within its queue (a tenant, a store): with the queue's
   * `keyConcurrency`, at most that many jobs of one key are held at once, and
   * keys take turns. Overrides the type's `concurrencyKey(payload)`.
   */
  concurrencyKey: concurrencyKeySchema.optional(),
  /** Per-attempt time limit in ms; overrides the type's `timeoutMs`. */
  timeoutMs: z.number().int().min(1).max(LIMITS.maxTimeoutMs).optional(),
  /**
   * The job's id, chosen by the caller (the clients generate a UUIDv7), so a
   * retried enqueue whose reply was lost returns the job it already made.
   */
  id: jobIdSchema.optional(),
  /**
   * The W3C trace context of the enqueue (see {@link traceContextSchema}); the
   * worker's span for each attempt continues it. The producer client sets it
   * from the active span; SQL and plain-HTTP callers may give their own.
   */
  traceContext: traceContextSchema.optional(),
};

/** A job is due at `runAt` or after `delayMs`, not both. */
const runAtOrDelay = (v: { runAt?: Date | undefined; delayMs?: number | undefined }): boolean => v.runAt === undefined || v.delayMs === undefined;

/** Input of `jobs.enqueue`. */
export const enqueueInputSchema = z
  .object({
    ...jobFields,
    uniqueKey: textSchema(LIMITS.uniqueKey).min(1).optional(),
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
  .refine(runAtOrDelay, { message: 'give runAt or delayMs, not both', path: ['runAt'] })
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

/** What a flow's parent does when one of its children ends failed or cancelled: `fail` at once (the default) or `continue` and run once every child is finished. */
export const ON_CHILD_FAILURE = ['fail', 'continue'] as const;

/** One of {@link ON_CHILD_FAILURE}. */
export type OnChildFailure = (typeof ON_CHILD_FAILURE)[number];

/** A job of a flow without children: the fields of `jobs.enqueue` but `uniqueKey`, `debounceMs` and `throttleMs`. */
export const flowJobSchema = z.object(jobFields).strict().refine(runAtOrDelay, { message: 'give runAt or delayMs, not both', path: ['runAt'] });

/** A flow's parent: a job that runs once every child of it is finished, so it takes no `runAt` or `delayMs`. */
export const flowParentSchema = z
  .object({ ...jobFields, onChildFailure: z.enum(ON_CHILD_FAILURE).default('fail') })
  .strict()
  .refine((v) => v.runAt === undefined && v.delayMs === undefined, {
    message: 'a parent runs when its last child finishes; give runAt or delayMs to its children instead',
    path: ['runAt'],
  });

/** A job of a flow without children, as a caller writes it. */
export type FlowJobInput = z.input<typeof flowJobSchema>;

/** A flow's parent, as a caller writes it. */
export type FlowParentInput = z.input<typeof flowParentSchema>;

/** A flow as a caller writes it: a parent and its children, each a job or a flow of its own. */
export interface FlowInput {
  parent: FlowParentInput;
  children: Array<FlowJobInput | FlowInput>;
}

/** A flow after validation (`onChildFailure` filled in). */
export interface FlowTree {
  parent: z.output<typeof flowParentSchema>;
  children: Array<z.output<typeof flowJobSchema> | FlowTree>;
}

/**
 * Input of `jobs.enqueueFlow`: a parent and its children, created together or
 * not at all. A child may be a flow itself (`{ parent, children }`); a flow
 * has at most LIMITS.flowJobs jobs and LIMITS.flowDepth levels (the server
 * counts them).
 */
export const flowInputSchema: z.ZodType<FlowTree, FlowInput> = z.lazy(() =>
  z
    .object({
      parent: flowParentSchema,
      children: z.array(z.union([flowInputSchema, flowJobSchema])).min(1).max(LIMITS.flowJobs),
    })
    .strict(),
);

/**
 * What `jobs.enqueueFlow` answers: the parent's id and, in the order given, a
 * reference per child (a sub-flow's is its parent's, with its own `children`;
 * a job's has none). `created: false` throughout when the same flow (same ids)
 * was enqueued before: a retry whose reply was lost.
 */
export interface EnqueuedFlow {
  id: string;
  type: string;
  queue: string;
  created: boolean;
  children: EnqueuedFlow[];
}

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

/** Input of `jobs.list`: a {@link JobFilter}, newest first, keyset cursor. Every field is optional, so is the input (no input: the newest 50). */
export const listInputSchema = z
  .object({
    ...jobFilterFields,
    limit: z.number().int().min(1).max(LIMITS.listLimit).default(50),
    cursor: jobIdSchema.optional(),
  })
  .strict()
  .prefault({});

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
  /** The enqueue's W3C trace context (traceparent, optionally a space and tracestate); null when it had none. */
  traceContext: string | null;
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
  /** The parent this job is a child of (jobs.enqueueFlow); null outside a flow and for a flow's root. */
  parentId: string | null;
  createdAt: Date;
  updatedAt: Date;
}

/** One ended attempt of a job, from its history (`jobs.attempts`, and the latest ones in `jobs.get`). */
export interface AttemptView {
  /** The attempt's number (the claim's fencing token). */
  attempt: number;
  workerId: string | null;
  /** When it was claimed. */
  startedAt: Date | null;
  finishedAt: Date;
  /** What became of the job ({@link ATTEMPT_OUTCOMES}). */
  outcome: AttemptOutcome;
  /** Who ended it ({@link ENDINGS}): the holder's complete, fail or release, the rescue, a cancel, the SQL API. */
  endedBy: Ending;
  errorCode: string | null;
  /** The error's first LIMITS.attemptErrorChars characters. */
  error: string | null;
}

/** What `jobs.get` answers: the job and its latest attempts (at most LIMITS.attemptsShown, newest last). */
export interface JobDetail extends JobView {
  attempts: AttemptView[];
}

/** Input of `jobs.attempts`: a job's attempts in order, `limit` at a time after attempt number `after`. */
export const attemptsInputSchema = z
  .object({ id: jobIdSchema, after: z.number().int().min(0).optional(), limit: z.number().int().min(1).max(LIMITS.pageLimit).default(100) })
  .strict();

/** What `jobs.attempts` answers; `nextAfter` continues the list (null: that was the last page). */
export interface AttemptsAnswer {
  attempts: AttemptView[];
  nextAfter: number | null;
}

/** One child of a flow's parent as `jobs.children` and a handler's `ctx.children()` see it. */
export interface ChildView {
  id: string;
  type: string;
  queue: string;
  status: z.infer<typeof jobStatusSchema>;
  /** What its handler returned, once completed (else null). */
  result: unknown;
  error: string | null;
  errorCode: string | null;
  attempt: number;
  completedAt: Date | null;
  failedAt: Date | null;
}

/** Input of `jobs.children`: a parent's children in id order (the order they were enqueued in), `limit` at a time after `cursor`. */
export const childrenInputSchema = z
  .object({ id: jobIdSchema, cursor: jobIdSchema.optional(), limit: z.number().int().min(1).max(LIMITS.pageLimit).default(LIMITS.pageLimit) })
  .strict();

/** Input of `worker.children`: the children of a job the caller holds (its handler's `ctx.children()`). */
export const workerChildrenInputSchema = z
  .object({
    workerId: workerIdSchema,
    id: jobIdSchema,
    attempt: attemptSchema,
    cursor: jobIdSchema.optional(),
    limit: z.number().int().min(1).max(LIMITS.pageLimit).default(LIMITS.pageLimit),
  })
  .strict();

/** What `jobs.children` and `worker.children` answer; `nextCursor` continues the list (null: that was the last page). */
export interface ChildrenAnswer {
  children: ChildView[];
  nextCursor: string | null;
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

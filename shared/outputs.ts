import { z } from 'zod';
import { ATTEMPT_OUTCOMES, ENDINGS } from './lifecycle.js';
import type {
  AttemptsAnswer,
  AttemptView,
  ChildrenAnswer,
  ChildView,
  EnqueuedFlow,
  JobDetail,
  ClaimAnswer,
  ClaimedJob,
  CompleteAnswer,
  EnqueuedJob,
  EnqueuedRef,
  FailAnswer,
  HeartbeatAnswer,
  JobView,
  WaitForAnswer,
} from './api.js';
import { EXPLAIN_CODES, type ChildCounts, type ExplainReason, type JobExplanation, type QueueView } from './queues.js';
import { jobStatusSchema } from './statuses.js';

// Output schemas of the procedures: tRPC checks every answer against them and
// the REST surface's OpenAPI document is made from them. They strip keys they
// do not name, so each is tied to the interface it describes: `exactly<T>()`
// compiles only while the schema's output has T's keys and types (a field
// added to JobView must be added here too, or the build fails).

/** True when A and B are mutually assignable and have the same keys. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? ([keyof A] extends [keyof B] ? ([keyof B] extends [keyof A] ? true : false) : false) : false) : false;

/** Types `schema` as exactly `T` (what tRPC clients see), refusing to compile when they differ. */
function exactly<T>() {
  return <S extends z.ZodType>(schema: S, ..._sameAsT: Same<z.output<S>, T> extends true ? [] : [mismatch: never]): z.ZodType<T> => schema as unknown as z.ZodType<T>;
}

// A Date in memory, an ISO 8601 string on the wire (superjson over tRPC, JSON over REST).
const date = z.date().meta({ format: 'date-time' });
const int = z.number().int();
const ids = z.array(z.string());

/** Output schema of `jobs.enqueue`: {@link EnqueuedJob}. */
export const enqueuedJobSchema = exactly<EnqueuedJob>()(
  z.object({ id: z.string(), created: z.boolean(), type: z.string(), queue: z.string(), status: jobStatusSchema, priority: int, scheduledFor: date }),
);

/** Output schema of `jobs.enqueueMany`: an {@link EnqueuedRef} per job, in input order. */
export const enqueueManyOutputSchema = z.object({ jobs: z.array(exactly<EnqueuedRef>()(z.object({ id: z.string(), created: z.boolean() }))) });

// One job's fields, shared by the view and by jobs.get's detail.
const jobViewObject = z.object({
  id: z.string(),
  type: z.string(),
  queue: z.string(),
  status: jobStatusSchema,
  payload: z.unknown(),
  priority: int,
  attempt: int,
  retryCount: int,
  maxRetries: int,
  scheduledFor: date,
  startedAt: date.nullable(),
  completedAt: date.nullable(),
  failedAt: date.nullable(),
  workerId: z.string().nullable(),
  leaseExpiresAt: date.nullable(),
  error: z.string().nullable(),
  errorCode: z.string().nullable(),
  timeoutMs: int.nullable(),
  result: z.unknown(),
  progress: z.unknown(),
  uniqueKey: z.string().nullable(),
  cancelRequestedAt: date.nullable(),
  parentId: z.string().nullable(),
  createdAt: date,
  updatedAt: date,
});

/** Output schema of `jobs.cancel`, `jobs.retry`, and of each job of `jobs.list` and `jobs.waitFor`: {@link JobView}. */
export const jobViewSchema = exactly<JobView>()(jobViewObject);

const attemptViewSchema = exactly<AttemptView>()(
  z.object({
    attempt: int,
    workerId: z.string().nullable(),
    startedAt: date.nullable(),
    finishedAt: date,
    outcome: z.enum(ATTEMPT_OUTCOMES),
    endedBy: z.enum(ENDINGS),
    errorCode: z.string().nullable(),
    error: z.string().nullable(),
  }),
);

/** Output schema of `jobs.get`: {@link JobDetail}, the job and its latest attempts. */
export const jobDetailSchema = exactly<JobDetail>()(jobViewObject.extend({ attempts: z.array(attemptViewSchema) }));

/** Output schema of `jobs.attempts`: {@link AttemptsAnswer}. */
export const attemptsOutputSchema = exactly<AttemptsAnswer>()(z.object({ attempts: z.array(attemptViewSchema), nextAfter: int.nullable() }));

/** Output schema of `jobs.children` and `worker.children`: {@link ChildrenAnswer}. */
export const childrenOutputSchema = exactly<ChildrenAnswer>()(
  z.object({
    children: z.array(
      exactly<ChildView>()(
        z.object({
          id: z.string(),
          type: z.string(),
          queue: z.string(),
          status: jobStatusSchema,
          result: z.unknown(),
          error: z.string().nullable(),
          errorCode: z.string().nullable(),
          attempt: int,
          completedAt: date.nullable(),
          failedAt: date.nullable(),
        }),
      ),
    ),
    nextCursor: z.string().nullable(),
  }),
);

/** Output schema of `jobs.enqueueFlow`: {@link EnqueuedFlow}, in the shape of the flow given. */
export const enqueuedFlowSchema: z.ZodType<EnqueuedFlow> = z.lazy(() =>
  z.object({ id: z.string(), type: z.string(), queue: z.string(), created: z.boolean(), children: z.array(enqueuedFlowSchema) }),
);

/** Output schema of `jobs.list`: a page, newest first; `nextCursor` is the `cursor` of the next page (null: last page). */
export const jobListOutputSchema = z.object({ jobs: z.array(jobViewSchema), nextCursor: z.string().nullable() });

/** Output schema of `jobs.waitFor`: {@link WaitForAnswer}. */
export const waitForOutputSchema = exactly<WaitForAnswer>()(z.object({ finished: z.boolean(), job: jobViewSchema }));

/** Output schema of `jobs.explain`: {@link JobExplanation}. */
export const jobExplanationSchema = exactly<JobExplanation>()(
  z.object({
    id: z.string(),
    status: jobStatusSchema,
    runnable: z.boolean(),
    reasons: z.array(
      exactly<ExplainReason>()(
        z.object({
          code: z.enum(EXPLAIN_CODES),
          message: z.string(),
          until: date.optional(),
          children: exactly<ChildCounts>()(z.object({ total: int, left: int, byStatus: z.record(jobStatusSchema, int) })).optional(),
        }),
      ),
    ),
  }),
);

const claimedJobSchema = exactly<ClaimedJob>()(
  z.object({
    id: z.string(),
    type: z.string(),
    queue: z.string(),
    payload: z.unknown(),
    priority: int,
    attempt: int,
    retryCount: int,
    maxRetries: int,
    timeoutMs: int.nullable(),
    traceContext: z.string().nullable(),
  }),
);

const completeOutcomeSchema = z.enum(['completed', 'failed', 'lease_lost', 'cancelled', 'not_found']);

/** Output schema of `worker.claim`: {@link ClaimAnswer}. */
export const claimOutputSchema = exactly<ClaimAnswer>()(
  z.object({
    jobs: z.array(claimedJobSchema),
    leaseExpiresAt: date.nullable(),
    completed: z.array(completeOutcomeSchema).optional(),
    rejected: z.array(z.object({ id: z.string(), error: z.string() })).optional(),
  }),
);

/** Output schema of `worker.start`: which jobs started, and which this worker no longer holds. */
export const startOutputSchema = z.object({ started: ids, lost: ids, cancelled: ids });

/** Output schema of `worker.release`: which jobs went back to pending, and which this worker no longer held. */
export const releaseOutputSchema = z.object({ released: ids, lost: ids, cancelled: ids });

/** Output schema of `worker.heartbeat`: {@link HeartbeatAnswer}. */
export const heartbeatOutputSchema = exactly<HeartbeatAnswer>()(
  z.object({
    extended: z.array(z.object({ id: z.string(), leaseExpiresAt: date })),
    lost: ids,
    cancelled: ids,
    rejected: z.array(z.object({ id: z.string(), error: z.string() })),
  }),
);

/** Output schema of `worker.complete`: `completed`, or `failed` with why the server refused the result. */
export const completeOutputSchema = z.discriminatedUnion('status', [
  z.object({ id: z.string(), status: z.literal('completed') }),
  z.object({ id: z.string(), status: z.literal('failed'), error: z.string() }),
]);

/** Output schema of `worker.completeMany`: a {@link CompleteAnswer} per job, in input order. */
export const completeManyOutputSchema = z.object({
  results: z.array(exactly<CompleteAnswer>()(z.object({ id: z.string(), outcome: completeOutcomeSchema, error: z.string().optional() }))),
});

/** Output schema of `worker.fail`: the job's next status and when it runs again. */
export const failOutputSchema = z.object({ id: z.string(), status: z.enum(['pending', 'failed']), scheduledFor: date, retryCount: int });

/** Output schema of `worker.failMany`: a {@link FailAnswer} per job, in input order. */
export const failManyOutputSchema = z.object({
  results: z.array(
    exactly<FailAnswer>()(
      z.object({
        id: z.string(),
        outcome: z.enum(['pending', 'failed', 'lease_lost', 'cancelled', 'not_found']),
        scheduledFor: date.optional(),
        retryCount: int.optional(),
      }),
    ),
  ),
});

/** Output schema of `queues.list`: {@link QueueView} per queue. */
export const queueListOutputSchema = z.object({
  queues: z.array(
    exactly<QueueView>()(
      z.object({
        name: z.string(),
        paused: z.boolean(),
        concurrency: int.nullable(),
        rateLimit: z.object({ max: int, periodMs: int }).nullable(),
        keyConcurrency: int.nullable(),
        retentionDays: int.nullable(),
        failedRetentionDays: int.nullable(),
        counts: z.record(jobStatusSchema, int),
      }),
    ),
  ),
});

/** Output schema of `queues.stats`: job counts per queue, type and status. */
export const statsOutputSchema = z.object({
  counts: z.array(z.object({ queue: z.string(), type: z.string(), status: z.string(), count: int, oldestScheduledFor: date.nullable() })),
});

/** Output schema of `health`. */
export const healthOutputSchema = z.object({ ok: z.boolean(), database: z.enum(['up', 'down']), listening: z.boolean(), version: z.string() });

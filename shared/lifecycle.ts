import { HELD_STATUSES, type JobStatus } from './statuses.js';

/**
 * How a job moves, in one table. For each move: who makes it, the statuses it
 * starts from, the status it ends in, and what counts as a harmless repeat.
 * The SQL move functions (prisma/migrations/*_lifecycle), the server's
 * classification of a move that did not happen ({@link judge}) and the tests
 * (test/lifecycle.test.ts walks every status x move through the tRPC API and
 * the SQL functions) all follow it.
 *
 * Read it top to bottom:
 * - a job is `pending` until a worker **claims** it (`claimed`, under a lease;
 *   `attempt` goes up by one and is the fencing token of that worker);
 * - its holder **starts** it (`processing`), **heartbeats** it (extends the
 *   lease, never past the attempt's timeout), and ends the attempt with
 *   **complete**, **fail** (back to `pending` after the backoff, or `failed`
 *   when no retries are left) or **release** (back to `pending`, no retry used);
 * - when nobody ends it, the **rescue** does once the lease has run out
 *   (a failure with code TIMEOUT or LEASE_EXPIRED);
 * - a producer may **cancel** it while it is not finished, and an admin may
 *   **retry** a failed or cancelled one.
 *
 * Every move that ends an attempt writes that attempt's row of the job's
 * history in the same statement (`attempt`), and the moves that finish a job
 * tell its flow's waiting parent (`flow`; a waiting parent is `pending` at
 * {@link FLOW_HOLD}, which no claim takes). Both are in the flows_attempts migration.
 */
export const MOVE_NAMES = ['claim', 'start', 'heartbeat', 'complete', 'fail', 'release', 'rescue', 'cancel', 'retry'] as const;

/** One of {@link MOVE_NAMES}. */
export type MoveName = (typeof MOVE_NAMES)[number];

/**
 * What ended a job's latest attempt, stored in its `ended_by`. The holder's own
 * moves write `complete`, `fail` or `release`; everyone else writes their own
 * name, so a holder can tell its own finished move (a repeat after a lost
 * reply) from somebody else's (its lease is lost).
 */
export const ENDINGS = ['complete', 'fail', 'release', 'rescue', 'cancel', 'complete_task', 'fail_task'] as const;

/** One of {@link ENDINGS}. */
export type Ending = (typeof ENDINGS)[number];

/**
 * What became of a job when one of its attempts ended, as its attempt history
 * (`job_attempts.outcome`, `jobs.attempts`) records it: `completed`;
 * `retry_scheduled` (it failed and runs again after its backoff); `failed`
 * (for good); `released` (handed back unfinished by a stopping worker, no
 * retry used); `cancelled` (while it ran). Who ended it is its {@link Ending}.
 */
export const ATTEMPT_OUTCOMES = ['completed', 'retry_scheduled', 'failed', 'released', 'cancelled'] as const;

/** One of {@link ATTEMPT_OUTCOMES}. */
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

/**
 * The `scheduled_for` of a flow's parent while it waits for its children
 * (SQL `skipq_flow_hold()`): no claim takes it, and the finishing move of its
 * last child sets it due at once. A far date rather than `infinity`, which
 * node-postgres reads back as a number and Prisma not at all.
 */
export const FLOW_HOLD: Date = new Date('9999-12-31T00:00:00.000Z');

/** True when a job with this status and `scheduledFor` is a parent waiting for its children. */
export function isWaitingParent(job: { status: JobStatus; scheduledFor: Date }): boolean {
  return job.status === 'pending' && job.scheduledFor.getTime() === FLOW_HOLD.getTime();
}

/** Who makes a move. `holder` moves are fenced: only the worker id and attempt the claim handed out may make them. */
export type MoveActor = 'worker' | 'holder' | 'maintenance' | 'producer' | 'admin';

/** One row of the table of moves. */
export interface Move {
  by: MoveActor;
  /** The statuses the move starts from. */
  from: readonly JobStatus[];
  /** The status it ends in; two when the job's retries decide. */
  to: readonly JobStatus[];
  /** What it writes in `ended_by` (null: it does not end an attempt). */
  ends: Ending | null;
  /**
   * A harmless repeat: the job already shows the move was made (for a holder
   * move, by this worker id and attempt), so the call answers as if it had
   * made it and writes nothing: a client that lost the reply can retry.
   * `statuses`: the job is in one of these; `endings`: its attempt was ended by one of these.
   */
  repeat: { statuses?: readonly JobStatus[]; endings?: readonly Ending[] } | null;
  /** Guards besides status and holder, written in the move's SQL function. */
  guard: string | null;
  /** The tRPC procedures that make it. */
  api: readonly string[];
  /** The SQL functions that make it (the fenced one first). */
  sql: readonly string[];
  /** What an attempt it ends is recorded as in the job's attempt history (empty: it ends none). */
  attempt: readonly AttemptOutcome[];
  /** What it does to a flow (jobs.enqueueFlow), in the same transaction; null: nothing. */
  flow: string | null;
}

const HELD: readonly JobStatus[] = HELD_STATUSES;

// What the finishing moves do to a flow (skipq_flow_settle in the flows_attempts migration).
const CHILD_DONE = "a child's first finish counts for its waiting parent, which is due at once when it was the last";
const CHILD_FAILED = `when failed for good: counts like a completion, except that under onChildFailure 'fail' the waiting parent fails at once (CHILD_FAILED, no retry)`;
const CANCEL = "a parent takes its live descendants with it; a cancelled child counts like a failed one";
const RETRY = 'a retried child does not make its parent wait again; a retried parent runs at once';

/** The table of moves. Frozen: it is the specification the SQL and the server follow. */
export const MOVES: Readonly<Record<MoveName, Move>> = Object.freeze({
  claim: {
    by: 'worker',
    from: ['pending'],
    to: ['claimed'],
    ends: null,
    repeat: null,
    guard: 'scheduled_for has come; in priority order; SKIP LOCKED; the lease is capped at claim + timeout_ms',
    api: ['worker.claim', 'jobs.enqueue / enqueueMany (for a worker.claim waiting on that server, in the insert statement)'],
    sql: ['skipq_claim', 'claim_tasks'],
    attempt: [],
    flow: null,
  },
  start: {
    by: 'holder',
    from: ['claimed'],
    to: ['processing'],
    ends: null,
    // Already started; or the attempt's completion or failure overtook its start report.
    repeat: { statuses: ['processing'], endings: ['complete', 'fail'] },
    guard: null,
    api: ['worker.start'],
    sql: ['skipq_start'],
    attempt: [],
    flow: null,
  },
  heartbeat: {
    by: 'holder',
    from: HELD,
    to: HELD,
    ends: null,
    repeat: null,
    guard: 'the attempt is within its timeout (claim + timeout_ms); the new lease never passes it',
    api: ['worker.heartbeat'],
    sql: ['skipq_heartbeat'],
    attempt: [],
    flow: null,
  },
  complete: {
    by: 'holder',
    from: HELD,
    to: ['completed'],
    ends: 'complete',
    repeat: { endings: ['complete'] },
    guard: null,
    api: ['worker.complete', 'worker.completeMany', 'worker.claim (complete)'],
    sql: ['skipq_complete', 'complete_task'],
    attempt: ['completed'],
    flow: CHILD_DONE,
  },
  fail: {
    by: 'holder',
    from: HELD,
    to: ['pending', 'failed'],
    ends: 'fail',
    repeat: { endings: ['fail'] },
    guard: 'pending (after the backoff) when retrying and retry_count < max_retries, else failed',
    api: ['worker.fail', 'worker.failMany'],
    sql: ['skipq_fail', 'fail_task'],
    attempt: ['retry_scheduled', 'failed'],
    flow: CHILD_FAILED,
  },
  release: {
    by: 'holder',
    from: HELD,
    to: ['pending'],
    ends: 'release',
    repeat: { endings: ['release'] },
    guard: 'due at once; no retry is used',
    api: ['worker.release'],
    sql: ['skipq_release'],
    attempt: ['released'],
    flow: null,
  },
  rescue: {
    by: 'maintenance',
    from: HELD,
    to: ['pending', 'failed'],
    ends: 'rescue',
    repeat: null,
    guard: 'the lease ran out; a failure (TIMEOUT when it ran out at the deadline, else LEASE_EXPIRED), due at once',
    api: [],
    sql: ['skipq_rescue'],
    attempt: ['retry_scheduled', 'failed'],
    flow: CHILD_FAILED,
  },
  cancel: {
    by: 'producer',
    from: ['pending', 'claimed', 'processing'],
    to: ['cancelled'],
    ends: 'cancel',
    repeat: { statuses: ['cancelled'] },
    guard: null,
    api: ['jobs.cancel', 'jobs.cancelMany (admin, by filter)'],
    sql: ['skipq_cancel'],
    attempt: ['cancelled'],
    flow: CANCEL,
  },
  retry: {
    by: 'admin',
    from: ['failed', 'cancelled'],
    to: ['pending'],
    ends: null,
    repeat: null,
    guard: 'due at once, retry_count back to 0; attempt keeps counting',
    api: ['jobs.retry', 'jobs.retryMany (by filter)'],
    sql: ['skipq_retry'],
    attempt: [],
    flow: RETRY,
  },
} satisfies Record<MoveName, Move>);

/** Where a job stands, as far as the table of moves is concerned. */
export interface JobState {
  status: JobStatus;
  worker_id: string | null;
  attempt: number;
  ended_by: string | null;
}

/** Who asks for a holder move: the worker id and attempt its claim handed out. */
export interface Holder {
  workerId: string;
  attempt: number;
}

/**
 * What a move does to a job in a given state:
 * - `move`: the move applies (its other guards permitting);
 * - `repeat`: the move was already made ({@link Move.repeat}): answer as done, write nothing;
 * - `lost`: a holder move by a worker that no longer holds this attempt (LEASE_LOST);
 * - `cancelled`: a holder move on the attempt a producer cancelled (JOB_CANCELLED);
 * - `wrong_state`: any other move from a status it does not start from (WRONG_STATE);
 * - `not_found`: there is no such job.
 */
export type Verdict = 'move' | 'repeat' | 'lost' | 'cancelled' | 'wrong_state' | 'not_found';

/**
 * Judges `move` on `job` by the table. For a holder move `holder` is the
 * caller's claim; the job must still carry that worker id and attempt.
 * @example judge('complete', { status: 'completed', worker_id: 'w1', attempt: 2, ended_by: 'complete' }, { workerId: 'w1', attempt: 2 }) // 'repeat'
 */
export function judge(move: MoveName, job: JobState | undefined, holder?: Holder): Verdict {
  if (!job) return 'not_found';
  const rule = MOVES[move];
  const mine = rule.by !== 'holder' || (holder !== undefined && job.worker_id === holder.workerId && job.attempt === holder.attempt);
  if (mine && rule.from.includes(job.status)) return 'move';
  const repeat = rule.repeat;
  if (mine && repeat) {
    if (repeat.statuses?.includes(job.status)) return 'repeat';
    if (job.ended_by !== null && (repeat.endings as readonly string[] | undefined)?.includes(job.ended_by)) return 'repeat';
  }
  if (rule.by !== 'holder') return 'wrong_state';
  return mine && job.status === 'cancelled' ? 'cancelled' : 'lost';
}

/** The table as Markdown, for the README and for people. */
export function movesTable(): string {
  const lines = [
    '| move | by | from | to | harmless repeat | other guards | API | SQL | attempt recorded as | in a flow |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const name of MOVE_NAMES) {
    const m = MOVES[name];
    const repeat = m.repeat
      ? [...(m.repeat.statuses ?? []).map((s) => `already ${s}`), ...(m.repeat.endings ?? []).map((e) => `ended by own ${e}`)].join(', ')
      : '-';
    lines.push(
      `| ${name} | ${m.by} | ${m.from.join(', ')} | ${m.to === m.from ? 'unchanged' : m.to.join(' / ')} | ${repeat} | ${m.guard ?? '-'} | ${m.api.map((a) => `\`${a}\``).join(', ') || '-'} | ${m.sql.map((s) => `\`${s}\``).join(', ')} | ${m.attempt.join(' / ') || '-'} | ${m.flow ?? '-'} |`,
    );
  }
  return lines.join('\n');
}

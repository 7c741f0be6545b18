import {
  ERROR_CODES,
  type ClaimAnswer,
  FAILURE_CODES,
  type ClaimedJob,
  type CompleteAnswer,
  type CompleteOutcome,
  type FailAnswer,
  type FailureCode,
  type HeartbeatAnswer,
  type JobRegistry,
  type Verdict,
} from '../shared/index.js';
import { clockOf } from './clock.js';
import type { Db } from './db/pool.js';
import { QueueError } from './errors.js';
import { toJsonText } from './json.js';
import type { JobWaiters } from './jobWaiters.js';
import type { LimitedQueues } from './limitedQueues.js';
import type { HandoverClaim, NotifyHub } from './notify.js';
import { jobClaim, jobCompleteAndClaim, type ClaimParams } from './queries/claim.js';
import { queueNotifyFreed } from './queries/queues.js';
import { jobCompleteMany, jobFailMany, type CompletionRef, type FailRef } from './queries/finish.js';
import { jobHeartbeatMany, jobReleaseMany, jobStartMany, type HeldRef, type HolderMove } from './queries/lease.js';
import { toClaimedJob, type ClaimedRow, type MoveRow } from './queries/row.js';
import { idsWith, lostOutcome, missError, verdictsOf } from './verdicts.js';
import type { ServerMetrics } from './metrics.js';

/**
 * Counts the rows a fenced statement moved, per queue and type (rows without
 * them are not counted), one counter call per run of rows with the same
 * labels: a batch is mostly one queue and type, and prom-client hashes the
 * labels on every inc (about 1 µs a call, 3-5% of the server's CPU in a
 * drain of claims of 100 when counted per row).
 */
function countMoved(rows: readonly MoveRow[], count: ((queue: string, type: string, n: number) => void) | undefined, status?: string): void {
  if (!count) return;
  countRuns(rows, (r) => r.moved && r.queue !== null && typeof r.task_type === 'string' && (status === undefined || r.status === status), count);
}

/** Calls `count` once per run of consecutive counted rows with the same queue and type, with the run's length. */
function countRuns<R extends { queue: string | null; task_type?: string | null }>(rows: readonly R[], counted: (row: R) => boolean, count: (queue: string, type: string, n: number) => void): void {
  let queue: string | null = null;
  let type: string | null = null;
  let n = 0;
  for (const r of rows) {
    if (!counted(r)) continue;
    if (n > 0 && r.queue === queue && r.task_type === type) {
      n++;
      continue;
    }
    if (n > 0) count(queue as string, type as string, n);
    queue = r.queue;
    type = r.task_type ?? null;
    n = 1;
  }
  if (n > 0) count(queue as string, type as string, n);
}

/** What the worker procedures need. */
export interface LeaseDeps {
  db: Db;
  hub: NotifyHub;
  /** Waiters for finished jobs (jobs.waitFor); every finishing move here tells it what it finished. */
  waiters?: JobWaiters;
  registry: JobRegistry | null;
  maxPayloadBytes: number;
  pollIntervalMs: number;
  isClosing(): boolean;
  /**
   * The clock every move reads (leases, backoff, schedules, timeouts). Absent:
   * the database's own (skipq_now()). Tests pass one to travel in time.
   */
  now?: () => Date;
  /** Set per request for a caller with an API key: why that key no longer holds, or null (a claim re-checks it before handing out jobs). */
  recheckKey?(): Promise<string | null>;
  /** Counters of the moves (absent in callers without a server, e.g. scripts). */
  metrics?: ServerMetrics;
  /** Queues whose waiting claims a finished job may unblock (absent: none are woken by finishing moves). */
  limited?: LimitedQueues;
}

/** A held job of a limited queue that finished made room: the claims waiting for it look again (limitedQueues.ts). */
export function wakeFreed(deps: LeaseDeps, ...batches: ReadonlyArray<readonly MoveRow[]>): void {
  const limited = deps.limited;
  if (!limited || limited.empty) return;
  const queues: string[] = [];
  for (const rows of batches) for (const r of rows) if (r.moved && r.queue !== null) queues.push(r.queue);
  const freed = limited.among(queues);
  if (freed.length === 0) return;
  deps.hub.wake(freed);
  // And on the other servers: a NOTIFY per freed queue, after the move
  // committed, not awaited (a lost one leaves their claims to their poll).
  queueNotifyFreed(deps.db, freed).catch(() => {});
}

/** Hands held jobs back to pending (skipq_release) and wakes this server's claims waiting on their queues. */
export async function releaseAndWake(deps: Pick<LeaseDeps, 'db' | 'hub'>, move: HolderMove): Promise<MoveRow[]> {
  const rows = await jobReleaseMany(deps.db, move);
  deps.hub.wake(rows.filter((r) => r.moved && r.queue !== null).map((r) => r.queue as string));
  return rows;
}

/** Parameters of {@link claimJobs}. */
export interface ClaimRequest {
  workerId: string;
  types: string[] | null;
  queues: string[] | null;
  limit: number;
  leaseMs: number;
  waitMs: number;
}


/**
 * Claims up to `limit` jobs, waiting up to `waitMs` for some to arrive. Woken by
 * this server's enqueues and by NOTIFY; polls every pollIntervalMs as well, for
 * delayed jobs coming due and for a lost LISTEN connection. If the caller went
 * away while the claim ran, the jobs are released at once instead of waiting
 * out their lease. Completions the worker carries are made first, each on its
 * own: a refused result fails its job and affects no other.
 */
export async function claimJobs(
  deps: LeaseDeps,
  req: ClaimRequest,
  signal?: AbortSignal,
  completions: ReadonlyArray<HeldRef & { result?: unknown }> = [],
): Promise<ClaimAnswer> {
  const deadline = Date.now() + req.waitMs;
  let carried: Pick<ClaimAnswer, 'completed' | 'rejected'> = {};
  let lookedAgain = false;
  // Handed: jobs an enqueue on this server claimed for this long-poll while it
  // waited, in the insert's own statement (enqueue.ts withHandover).
  let handed: readonly ClaimedRow[] | null = null;
  for (let first = true; ; first = false) {
    // Only a claim that waits may be claimed for: the enqueue takes it out of its wait.
    const ticket = deps.hub.ticket(req.queues, req.workerId, req.waitMs > 0 ? handoverOf(req) : undefined);
    const params: ClaimParams = { ...req, now: clockOf(deps) };
    let rows: ClaimedRow[] = [];
    const started = performance.now();
    const wasHanded = handed !== null;
    if (handed) {
      rows = [...handed];
      handed = null;
    } else if (first && completions.length > 0) {
      // The worker's finished jobs ride with its claim: one statement, one commit.
      let claimed = false;
      const answers = await completeEach(deps, req.workerId, completions, async (good) => {
        const both = await jobCompleteAndClaim(deps.db, params, good);
        claimed = true;
        rows = both.claimed;
        return both.completions;
      });
      // Every result was refused: nothing to complete, the claim goes alone.
      if (!claimed) rows = await jobClaim(deps.db, params);
      const rejected = answers.filter((a) => a.error !== undefined).map((a) => ({ id: a.id, error: a.error as string }));
      carried = { completed: answers.map((a) => a.outcome), ...(rejected.length > 0 ? { rejected } : {}) };
    } else {
      rows = await jobClaim(deps.db, params);
    }
    if (!wasHanded) deps.metrics?.claimSeconds((performance.now() - started) / 1000);
    if (rows.length > 0) {
      ticket.cancel();
      // A long-poll outlives its authentication: a key revoked meanwhile gets no jobs.
      const revoked = signal?.aborted ? null : ((await deps.recheckKey?.()) ?? null);
      if (signal?.aborted || revoked) {
        await releaseAndWake(deps, { workerId: req.workerId, jobs: rows, now: clockOf(deps) });
        if (revoked) throw new QueueError(ERROR_CODES.UNAUTHORIZED, revoked);
        return { jobs: [], leaseExpiresAt: null, ...carried };
      }
      const metrics = deps.metrics;
      if (metrics) countRuns(rows, () => true, (q, t, n) => metrics.claimed(q, t, n));
      const lease = Math.max(...rows.map((r) => r.lease_expires_at?.getTime() ?? 0));
      return { jobs: rows.map(toClaimedJob), leaseExpiresAt: new Date(lease), ...carried };
    }
    const remaining = deadline - Date.now();
    // A wake-up since the ticket was taken is a job committed while the statement
    // ran, maybe after its snapshot. A claim out of time (waitMs 0: a worker's
    // claim carrying completions, or one under a backlog) looks once more instead
    // of answering empty: otherwise the job waits for the worker's next round trip
    // and its first look. Measured in W4 (a job every 10 ms, idle worker) on this
    // machine under other load: 45 of 300 jobs landed while the worker's claim
    // carrying the last completion ran, and were claimed 4.7 ms later (median; p90
    // 15 ms) by its next claim; on a quieter machine 1 to 23 of 300. Once only, so wakes
    // for jobs this claim cannot take (other types) cost one statement, never a loop.
    if (remaining <= 0 && ticket.woken && !ticket.interrupted && !lookedAgain && !signal?.aborted && !deps.isClosing()) {
      lookedAgain = true;
      continue;
    }
    if (remaining <= 0 || signal?.aborted || deps.isClosing()) {
      ticket.cancel();
      return { jobs: [], leaseExpiresAt: null, ...carried };
    }
    await ticket.wait(Math.min(remaining, deps.pollIntervalMs), signal);
    handed = ticket.handed;
    // A stopping worker's claim answers at once, with the jobs an enqueue claimed for it
    // before the interrupt (the worker runs or hands back what arrives while it stops).
    if (ticket.interrupted && !handed) return { jobs: [], leaseExpiresAt: null, ...carried };
  }
}

/** What an enqueue needs to claim for a waiting long-poll: its own statement's parameters. */
const handoverOf = (req: ClaimRequest): HandoverClaim => ({
  workerId: req.workerId,
  types: req.types,
  queues: req.queues,
  limit: req.limit,
  leaseMs: req.leaseMs,
});

/**
 * Completes each job on its own. Every result is checked here (JSON, size,
 * depth, NUL): a refused one fails its job at once with code INVALID_RESULT and
 * no retry, in a statement of its own that only runs when some result was
 * refused; the rest complete through `complete` (one statement). Answers in
 * input order: `completed` (also for a repeat of this holder's own
 * completion), `failed` with the reason, or why the attempt no longer counts.
 */
async function completeEach(
  deps: LeaseDeps,
  workerId: string,
  jobs: ReadonlyArray<HeldRef & { result?: unknown }>,
  complete: (good: CompletionRef[]) => Promise<MoveRow[]>,
): Promise<CompleteAnswer[]> {
  const good: CompletionRef[] = [];
  const refused: FailRef[] = [];
  const reasons = new Map<number, string>();
  jobs.forEach((j, index) => {
    try {
      good.push({ id: j.id, attempt: j.attempt, resultJson: j.result === undefined ? null : toJsonText(j.result, deps.maxPayloadBytes, `result of job ${j.id}`) });
    } catch (error) {
      if (!(error instanceof QueueError)) throw error;
      const reason = `the server refused the result: ${error.message}`;
      reasons.set(index, reason);
      refused.push({ id: j.id, attempt: j.attempt, error: reason, code: FAILURE_CODES.INVALID_RESULT, retry: false, delayMs: null });
    }
  });
  const failedRows = refused.length > 0 ? await jobFailMany(deps.db, { workerId, jobs: refused, policiesJson: null, now: clockOf(deps) }) : [];
  const doneRows = good.length > 0 ? await complete(good) : [];
  deps.waiters?.finished(finishedIds(failedRows, doneRows));
  wakeFreed(deps, doneRows, failedRows);
  const metrics = deps.metrics;
  if (metrics) {
    countMoved(doneRows, (q, t, n) => metrics.completed(q, t, n));
    countMoved(failedRows, (q, t, n) => metrics.failed(q, t, n), 'failed');
  }
  const doneVerdicts = new Map<string, Verdict>();
  verdictsOf('complete', workerId, good, doneRows).forEach((v, i) => doneVerdicts.set(good[i]?.id as string, v));
  const failVerdicts = new Map<string, Verdict>();
  verdictsOf('fail', workerId, refused, failedRows).forEach((v, i) => failVerdicts.set(refused[i]?.id as string, v));
  return jobs.map((j, index): CompleteAnswer => {
    const reason = reasons.get(index);
    if (reason !== undefined) {
      const verdict = failVerdicts.get(j.id) as Verdict;
      return verdict === 'move' || verdict === 'repeat' ? { id: j.id, outcome: 'failed', error: reason } : { id: j.id, outcome: lostOutcome(verdict) };
    }
    const verdict = doneVerdicts.get(j.id) as Verdict;
    return { id: j.id, outcome: verdict === 'move' || verdict === 'repeat' ? 'completed' : lostOutcome(verdict) };
  });
}

/** Ids a move finished: moved into completed, failed (for good) or cancelled. */
function* finishedIds(...batches: ReadonlyArray<readonly MoveRow[]>): Generator<string> {
  for (const rows of batches) {
    for (const r of rows) if (r.moved && (r.status === 'completed' || r.status === 'failed' || r.status === 'cancelled')) yield r.id;
  }
}

/** claimed -> processing. Answers which jobs started and which this worker no longer holds. */
export async function startJobs(deps: LeaseDeps, workerId: string, jobs: readonly HeldRef[]) {
  const rows = await jobStartMany(deps.db, { workerId, jobs, now: clockOf(deps) });
  const verdicts = verdictsOf('start', workerId, jobs, rows);
  const pick = (...wanted: Verdict[]) => idsWith(jobs, verdicts, wanted);
  return { started: pick('move', 'repeat'), lost: pick('lost', 'not_found'), cancelled: pick('cancelled') };
}

/**
 * Extends leases (never past an attempt's timeout) and stores progress. Lost
 * and cancelled jobs are named so the worker can abort their handlers. A
 * progress value the server refuses is dropped and named in `rejected`; its
 * job's lease is still extended and no other job is affected.
 */
export async function heartbeatJobs(
  deps: LeaseDeps,
  workerId: string,
  leaseMs: number,
  jobs: ReadonlyArray<HeldRef & { progress?: unknown }>,
): Promise<HeartbeatAnswer> {
  const rejected: HeartbeatAnswer['rejected'] = [];
  const refs = jobs.map((j) => {
    let progressJson: string | null = null;
    if (j.progress !== undefined) {
      try {
        progressJson = toJsonText(j.progress, deps.maxPayloadBytes, `progress of job ${j.id}`);
      } catch (error) {
        if (!(error instanceof QueueError)) throw error;
        rejected.push({ id: j.id, error: error.message });
      }
    }
    return { id: j.id, attempt: j.attempt, progressJson };
  });
  const rows = await jobHeartbeatMany(deps.db, { workerId, leaseMs, jobs: refs, now: clockOf(deps) });
  const verdicts = verdictsOf('heartbeat', workerId, jobs, rows);
  const pick = (...wanted: Verdict[]) => idsWith(jobs, verdicts, wanted);
  return {
    extended: rows.filter((r) => r.moved).map((r) => ({ id: r.id, leaseExpiresAt: r.lease_expires_at as Date })),
    lost: pick('lost', 'not_found'),
    cancelled: pick('cancelled'),
    rejected,
  };
}

/**
 * Completes held jobs in one statement (a second one only when some result
 * was refused), each on its own (see completeEach). A repeated completion of the same (id, attempt) by the same worker answers
 * `completed` again without writing: a client that lost the reply can retry.
 */
export async function completeJobs(
  deps: LeaseDeps,
  workerId: string,
  jobs: ReadonlyArray<HeldRef & { result?: unknown }>,
): Promise<CompleteAnswer[]> {
  return completeEach(deps, workerId, jobs, (good) => jobCompleteMany(deps.db, { workerId, jobs: good, now: clockOf(deps) }));
}

/**
 * Completes one job: `completed`, or `failed` with the reason when the server
 * refused its result (the job failed with INVALID_RESULT, no retry); throws
 * the reason when this worker's attempt no longer counts.
 */
export async function completeJob(
  deps: LeaseDeps,
  workerId: string,
  job: HeldRef & { result?: unknown },
): Promise<{ id: string; status: 'completed' } | { id: string; status: 'failed'; error: string }> {
  const [answer] = await completeJobs(deps, workerId, [job]);
  if (answer?.outcome === 'completed') return { id: job.id, status: 'completed' };
  if (answer?.outcome === 'failed') return { id: job.id, status: 'failed', error: answer.error ?? 'the server refused the result' };
  throw missError(answer?.outcome === 'not_found' ? 'not_found' : answer?.outcome === 'cancelled' ? 'cancelled' : 'lost', job.id, job.attempt, workerId);
}

/** One failure, as `worker.fail` and `worker.failMany` take it. */
export interface FailItem extends HeldRef {
  error: string;
  code?: FailureCode | undefined;
  retry: boolean;
  retryDelayMs?: number | undefined;
}

// The registry's backoff policies as the JSON skipq_fail reads ({"<type>": BackoffPolicy}), made once per registry.
const policiesByRegistry = new WeakMap<JobRegistry, string | null>();

function policiesOf(registry: JobRegistry | null): string | null {
  if (!registry) return null;
  let json = policiesByRegistry.get(registry);
  if (json === undefined) {
    const entries = Object.entries(registry).filter(([, def]) => def.backoff !== undefined).map(([type, def]) => [type, def.backoff]);
    json = entries.length > 0 ? JSON.stringify(Object.fromEntries(entries)) : null;
    policiesByRegistry.set(registry, json);
  }
  return json;
}

/**
 * Fails held jobs in one statement, each on its own: back to pending after the
 * backoff (the worker's explicit delay, else the type's policy from the
 * registry, else linear 60 s), or failed for good. A repeated call for the
 * same attempt answers the job's state again; a fail of an attempt somebody
 * else ended (the rescuer, fail_task, a cancel) answers why not.
 */
export async function failJobs(deps: LeaseDeps, workerId: string, items: readonly FailItem[]): Promise<FailAnswer[]> {
  const refs: FailRef[] = items.map((i) => ({
    id: i.id,
    attempt: i.attempt,
    error: i.error,
    code: i.code ?? FAILURE_CODES.HANDLER_ERROR,
    retry: i.retry,
    delayMs: i.retryDelayMs ?? null,
  }));
  const rows = await jobFailMany(deps.db, { workerId, jobs: refs, policiesJson: policiesOf(deps.registry), now: clockOf(deps) });
  deps.waiters?.finished(finishedIds(rows));
  deps.hub.wake(rows.filter((r) => r.moved && r.status === 'pending').map((r) => r.queue as string));
  wakeFreed(deps, rows);
  const metrics = deps.metrics;
  if (metrics) {
    countMoved(rows, (q, t, n) => metrics.retried(q, t, n), 'pending');
    countMoved(rows, (q, t, n) => metrics.failed(q, t, n), 'failed');
  }
  const byId = new Map(rows.map((r) => [r.id, r]));
  return verdictsOf('fail', workerId, items, rows).map((verdict, i): FailAnswer => {
    const id = (items[i] as FailItem).id;
    const row = byId.get(id);
    if ((verdict === 'move' || verdict === 'repeat') && row && (row.status === 'pending' || row.status === 'failed')) {
      return { id, outcome: row.status, scheduledFor: row.scheduled_for as Date, retryCount: row.retry_count as number };
    }
    return { id, outcome: lostOutcome(verdict) };
  });
}

/** Fails one held job, answering its next status and schedule, or throws why this worker's attempt no longer counts. */
export async function failJob(deps: LeaseDeps, req: FailItem & { workerId: string }) {
  const [answer] = await failJobs(deps, req.workerId, [req]);
  if (answer && (answer.outcome === 'pending' || answer.outcome === 'failed')) {
    return { id: answer.id, status: answer.outcome, scheduledFor: answer.scheduledFor as Date, retryCount: answer.retryCount as number };
  }
  throw missError(answer?.outcome === 'not_found' ? 'not_found' : answer?.outcome === 'cancelled' ? 'cancelled' : 'lost', req.id, req.attempt, req.workerId);
}

/** Hands unfinished jobs back to pending without using a retry; a repeated release of the same attempt answers released again. */
export async function releaseJobs(deps: LeaseDeps, workerId: string, jobs: readonly HeldRef[]) {
  const rows = await releaseAndWake(deps, { workerId, jobs, now: clockOf(deps) });
  const verdicts = verdictsOf('release', workerId, jobs, rows);
  const pick = (...wanted: Verdict[]) => idsWith(jobs, verdicts, wanted);
  return { released: pick('move', 'repeat'), lost: pick('lost', 'not_found'), cancelled: pick('cancelled') };
}

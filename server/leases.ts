import {
  ERROR_CODES,
  type ClaimedJob,
  type CompleteOutcome,
  type JobRegistry,
} from '../shared/index.js';
import type { Db } from './db/pool.js';
import { QueueError } from './errors.js';
import { toJsonText } from './json.js';
import type { NotifyHub } from './notify.js';
import { jobClaim, jobCompleteAndClaim } from './queries/claim.js';
import { jobCompleteMany, jobFail, type FailedRow } from './queries/finish.js';
import { jobGet } from './queries/admin.js';
import { jobHeartbeat, jobHolders, jobReleaseMany, jobStartMany, type HeldRef, type HolderRow } from './queries/lease.js';
import { toClaimedJob } from './queries/row.js';
import { backoffOf } from './registryCheck.js';

/** What the worker procedures need. */
export interface LeaseDeps {
  db: Db;
  hub: NotifyHub;
  registry: JobRegistry | null;
  maxPayloadBytes: number;
  pollIntervalMs: number;
  isClosing(): boolean;
  /** Set per request for a caller with an API key: why that key no longer holds, or null (a claim re-checks it before handing out jobs). */
  recheckKey?(): Promise<string | null>;
}

/** Why a fenced write matched nothing. `repeat` means this holder already made the same move (a retried call). */
type Miss = 'not_found' | 'cancelled' | 'lease_lost' | 'repeat';

function classify(row: HolderRow | undefined, workerId: string, attempt: number, repeatStatuses: readonly string[]): Miss {
  if (!row) return 'not_found';
  if (row.attempt !== attempt) return 'lease_lost';
  if (row.status === 'cancelled') return 'cancelled';
  if (row.worker_id === workerId && repeatStatuses.includes(row.status)) return 'repeat';
  return 'lease_lost';
}

async function missesOf(db: Db, workerId: string, refs: readonly HeldRef[], repeatStatuses: readonly string[]): Promise<Map<string, Miss>> {
  const misses = new Map<string, Miss>();
  if (refs.length === 0) return misses;
  const holders = new Map((await jobHolders(db, refs.map((r) => r.id))).map((r) => [r.id, r]));
  for (const ref of refs) misses.set(ref.id, classify(holders.get(ref.id), workerId, ref.attempt, repeatStatuses));
  return misses;
}

function missError(miss: Miss, id: string, attempt: number, workerId: string): QueueError {
  if (miss === 'not_found') return new QueueError(ERROR_CODES.JOB_NOT_FOUND, `no job with id ${id}`);
  if (miss === 'cancelled') return new QueueError(ERROR_CODES.JOB_CANCELLED, `job ${id} was cancelled; stop working on it`);
  return new QueueError(
    ERROR_CODES.LEASE_LOST,
    `worker "${workerId}" no longer holds job ${id} (attempt ${attempt}): its lease expired or another attempt owns it`,
  );
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
 * out their lease.
 */
export async function claimJobs(
  deps: LeaseDeps,
  req: ClaimRequest,
  signal?: AbortSignal,
  completions: ReadonlyArray<HeldRef & { result?: unknown }> = [],
): Promise<{ jobs: ClaimedJob[]; leaseExpiresAt: Date | null; completed: CompleteOutcome[] | undefined }> {
  const deadline = Date.now() + req.waitMs;
  let completed: CompleteOutcome[] | undefined;
  for (let first = true; ; first = false) {
    const ticket = deps.hub.ticket(req.queues, req.workerId);
    let rows;
    if (first && completions.length > 0) {
      // The worker's finished jobs ride with its claim: one statement, one commit.
      const refs = toCompletionRefs(deps, completions);
      const both = await jobCompleteAndClaim(deps.db, req, refs);
      completed = await outcomesOf(deps, req.workerId, completions, new Set(both.completed));
      rows = both.claimed;
    } else {
      rows = await jobClaim(deps.db, req);
    }
    if (rows.length > 0) {
      ticket.cancel();
      // A long-poll outlives its authentication: a key revoked meanwhile gets no jobs.
      const revoked = signal?.aborted ? null : ((await deps.recheckKey?.()) ?? null);
      if (signal?.aborted || revoked) {
        const released = await jobReleaseMany(deps.db, req.workerId, rows.map((r) => ({ id: r.id, attempt: r.attempt })));
        deps.hub.wake(released.map((r) => r.queue));
        if (revoked) throw new QueueError(ERROR_CODES.UNAUTHORIZED, revoked);
        return { jobs: [], leaseExpiresAt: null, completed };
      }
      return { jobs: rows.map(toClaimedJob), leaseExpiresAt: rows[0]?.lease_expires_at ?? null, completed };
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0 || signal?.aborted || deps.isClosing()) {
      ticket.cancel();
      return { jobs: [], leaseExpiresAt: null, completed };
    }
    await ticket.wait(Math.min(remaining, deps.pollIntervalMs), signal);
    if (ticket.interrupted) return { jobs: [], leaseExpiresAt: null, completed };
  }
}

function toCompletionRefs(deps: LeaseDeps, jobs: ReadonlyArray<HeldRef & { result?: unknown }>) {
  return jobs.map((j) => ({
    id: j.id,
    attempt: j.attempt,
    resultJson: j.result === undefined ? null : toJsonText(j.result, deps.maxPayloadBytes, `result of job ${j.id}`),
  }));
}

/** Outcome per completion: done now, a repeat of this holder's own completion, or why not. */
async function outcomesOf(
  deps: LeaseDeps,
  workerId: string,
  jobs: readonly HeldRef[],
  done: ReadonlySet<string>,
): Promise<CompleteOutcome[]> {
  const misses = await missesOf(deps.db, workerId, jobs.filter((j) => !done.has(j.id)), ['completed']);
  return jobs.map((j) => {
    if (done.has(j.id)) return 'completed';
    const miss = misses.get(j.id) as Miss;
    return miss === 'repeat' ? 'completed' : miss;
  });
}

/** claimed -> processing. Answers which jobs started and which this worker no longer holds. */
export async function startJobs(deps: LeaseDeps, workerId: string, jobs: readonly HeldRef[]) {
  const started = new Set(await jobStartMany(deps.db, workerId, jobs));
  const misses = await missesOf(deps.db, workerId, jobs.filter((j) => !started.has(j.id)), ['processing', 'completed']);
  return {
    started: jobs.filter((j) => started.has(j.id) || misses.get(j.id) === 'repeat').map((j) => j.id),
    lost: jobs.filter((j) => { const m = misses.get(j.id); return m === 'lease_lost' || m === 'not_found'; }).map((j) => j.id),
    cancelled: jobs.filter((j) => misses.get(j.id) === 'cancelled').map((j) => j.id),
  };
}

/** Extends leases and stores progress. Lost and cancelled jobs are named so the worker can abort their handlers. */
export async function heartbeatJobs(
  deps: LeaseDeps,
  workerId: string,
  leaseMs: number,
  jobs: ReadonlyArray<HeldRef & { progress?: unknown }>,
) {
  const refs = jobs.map((j) => ({
    id: j.id,
    attempt: j.attempt,
    progressJson: j.progress === undefined ? null : toJsonText(j.progress, deps.maxPayloadBytes, `progress of job ${j.id}`),
  }));
  const extended = await jobHeartbeat(deps.db, workerId, leaseMs, refs);
  const held = new Set(extended.map((r) => r.id));
  const misses = await missesOf(deps.db, workerId, jobs.filter((j) => !held.has(j.id)), []);
  return {
    extended: extended.map((r) => ({ id: r.id, leaseExpiresAt: r.lease_expires_at })),
    lost: jobs.filter((j) => { const m = misses.get(j.id); return m === 'lease_lost' || m === 'not_found' || m === 'repeat'; }).map((j) => j.id),
    cancelled: jobs.filter((j) => misses.get(j.id) === 'cancelled').map((j) => j.id),
  };
}

/**
 * Completes held jobs in one statement. A repeated completion of the same
 * (id, attempt) by the same worker answers `completed` again without writing:
 * a client that lost the reply can safely retry.
 */
export async function completeJobs(
  deps: LeaseDeps,
  workerId: string,
  jobs: ReadonlyArray<HeldRef & { result?: unknown }>,
): Promise<Array<{ id: string; outcome: CompleteOutcome }>> {
  const done = new Set(await jobCompleteMany(deps.db, workerId, toCompletionRefs(deps, jobs)));
  const outcomes = await outcomesOf(deps, workerId, jobs, done);
  return jobs.map((j, i) => ({ id: j.id, outcome: outcomes[i] as CompleteOutcome }));
}

/** Completes one job or throws the reason it could not. */
export async function completeJob(deps: LeaseDeps, workerId: string, job: HeldRef & { result?: unknown }) {
  const [answer] = await completeJobs(deps, workerId, [job]);
  if (answer?.outcome !== 'completed') {
    const miss: Miss = answer?.outcome === 'not_found' ? 'not_found' : answer?.outcome === 'cancelled' ? 'cancelled' : 'lease_lost';
    throw missError(miss, job.id, job.attempt, workerId);
  }
  return { id: job.id, status: 'completed' as const };
}

/** Parameters of {@link failJob}. */
export interface FailRequest extends HeldRef {
  workerId: string;
  error: string;
  retry: boolean;
  retryDelayMs?: number;
  type?: string;
}

/**
 * Fails one held job: back to pending after the backoff (the worker's explicit
 * delay, else the type's policy from the registry, else linear 60 s), or failed
 * for good. A repeated call for the same attempt answers the job's state again.
 */
export async function failJob(deps: LeaseDeps, req: FailRequest) {
  // The type is read only to pick its backoff policy; the write below is fenced on its own.
  const type = deps.registry && req.retryDelayMs === undefined ? (await jobGet(deps.db, req.id))?.task_type : undefined;
  const backoff = req.retryDelayMs !== undefined
    ? ({ kind: 'fixed', delayMs: req.retryDelayMs } as const)
    : backoffOf(deps.registry, type ?? '');
  const failed: FailedRow | undefined = await jobFail(deps.db, { ...req, backoff });
  if (failed) {
    if (failed.status === 'pending') deps.hub.wake([failed.queue]);
    return { id: failed.id, status: failed.status, scheduledFor: failed.scheduled_for, retryCount: failed.retry_count };
  }
  const misses = await missesOf(deps.db, req.workerId, [req], ['pending', 'failed']);
  const miss = misses.get(req.id) as Miss;
  if (miss === 'repeat') {
    const current = await jobGet(deps.db, req.id);
    if (current) return { id: current.id, status: current.status as 'pending' | 'failed', scheduledFor: current.scheduled_for, retryCount: current.retry_count };
  }
  throw missError(miss === 'repeat' ? 'lease_lost' : miss, req.id, req.attempt, req.workerId);
}

/** Hands unfinished jobs back to pending without using a retry. */
export async function releaseJobs(deps: LeaseDeps, workerId: string, jobs: readonly HeldRef[]) {
  const released = await jobReleaseMany(deps.db, workerId, jobs);
  deps.hub.wake(released.map((r) => r.queue));
  return { released: released.map((r) => r.id) };
}

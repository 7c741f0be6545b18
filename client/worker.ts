import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import {
  backoffDelayMs,
  createBatcher,
  DEFAULT_BACKOFF,
  LIMITS,
  type ClaimedJob,
  type CompleteOutcome,
  type JobDefinitions,
  type JobRegistry,
  type JobType,
  type PayloadOf,
  type ResultOf,
} from '../shared/index.js';
import { PermanentError, errorCodeOf, isTransient } from './errors.js';
import { createTrpc, type ConnectionOptions } from './trpc.js';

/** What a handler gets besides its payload. */
export interface JobContext {
  id: string;
  type: string;
  queue: string;
  /** 1 on the first claim; the fencing token of this run. */
  attempt: number;
  retryCount: number;
  maxRetries: number;
  /** Aborted when the job is cancelled, its lease is lost, or the worker stops past its grace period. */
  signal: AbortSignal;
  /** Records progress (any JSON); sent with the next heartbeat. */
  progress(value: unknown): void;
}

/** A handler per job type; its payload and result types come from the registry. */
export type Handlers<R extends JobDefinitions> = {
  [K in JobType<R>]?: (payload: PayloadOf<R, K>, ctx: JobContext) => ResultOf<R, K> | Promise<ResultOf<R, K>>;
};

/** What the worker reports to `onEvent`. */
export type WorkerEvent =
  | { kind: 'completed'; id: string; type: string; attempt: number }
  | { kind: 'failed'; id: string; type: string; attempt: number; error: string; willRetry: boolean }
  | { kind: 'lost'; id: string; reason: 'lease_lost' | 'cancelled' | 'not_found' }
  | { kind: 'error'; error: unknown };

/** Options of {@link createWorker}. */
export interface WorkerOptions<R extends JobDefinitions> extends ConnectionOptions {
  jobs: JobRegistry<R>;
  handlers: Handlers<R>;
  /** Jobs run at once. Default 10. */
  concurrency?: number;
  /** This worker's name in `worker_id`. Default host-pid-random. */
  workerId?: string;
  /** Only claim from these queues. Default: any. */
  queues?: string[];
  /** Lease per claim; heartbeats every leaseMs/3 extend it. Default 30 000. */
  leaseMs?: number;
  /** Long-poll of each claim. Default 20 000. */
  waitMs?: number;
  /** How long `stop()` lets running handlers finish before aborting and releasing them. Default 30 000. */
  graceMs?: number;
  /** How long a started handler may run before its start is reported. Default 20 ms: fast jobs never pay one. */
  startReportDelayMs?: number;
  onEvent?: (event: WorkerEvent) => void;
}

/** A running worker. */
export interface Worker {
  readonly workerId: string;
  /** Starts claiming. */
  start(): void;
  /**
   * Stops claiming, lets running handlers finish (up to graceMs), then aborts
   * the rest and hands them back to pending without using a retry. Resolves
   * when nothing is in flight.
   */
  stop(): Promise<void>;
  /** Jobs running now. */
  readonly running: number;
}

interface Running {
  job: ClaimedJob;
  /** Made on first use of ctx.signal: most handlers never look, and one per job showed in profiles. */
  controller: AbortController | undefined;
  /** Why the job was abandoned; a signal made later starts out aborted with it. */
  abortReason: Error | undefined;
  progress: unknown;
  /** Set once the server said the job is no longer ours: its outcome is not reported. */
  abandoned: boolean;
  /** Settles when the handler has returned (its report may still be on its way). */
  done: Promise<void>;
}

type Outcome = { ok: true; result: unknown } | { ok: false; error: unknown };

function abortRun(run: Running, reason: Error): void {
  run.abortReason = reason;
  run.controller?.abort(reason);
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });

/** A deadline for a race: resolves after `ms` without keeping the process alive for it. */
const deadline = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
  });

/**
 * Creates the bundled worker: claims in batches with long-polling, validates
 * each payload with the registry before its handler runs, validates the result
 * after, completes in batches, heartbeats leases, and stops gracefully.
 * @example
 * const worker = createWorker({ url, jobs, concurrency: 4, handlers: {
 *   ingestion: async ({ chainId, targetDate }, ctx) => ({ rows: await ingest(chainId, targetDate, ctx.signal) }),
 * } });
 * worker.start();
 */
export function createWorker<R extends JobDefinitions>(options: WorkerOptions<R>): Worker {
  const { trpc, transport } = createTrpc(options, true);
  const registry = options.jobs as JobRegistry;
  const handlers = options.handlers as Record<string, ((payload: unknown, ctx: JobContext) => unknown) | undefined>;
  const types = Object.keys(handlers).filter((t) => handlers[t]);
  for (const t of types) if (!registry[t]) throw new TypeError(`handler for "${t}", which is not in the registry`);
  if (types.length === 0) throw new TypeError('createWorker needs at least one handler');
  const concurrency = options.concurrency ?? 10;
  const leaseMs = options.leaseMs ?? LIMITS.defaultLeaseMs;
  const waitMs = options.waitMs ?? 20_000;
  const graceMs = options.graceMs ?? 30_000;
  const startDelay = options.startReportDelayMs ?? 20;
  const claimThreshold = Math.max(1, Math.floor(concurrency / 4));
  const workerId = options.workerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const emit = options.onEvent ?? (() => {});

  const running = new Map<string, Running>();
  // Reports (completions, failures) still on their way; stop() waits for them.
  const reports = new Set<Promise<void>>();
  let started = false;
  let stopping = false;
  let loop: Promise<void> | undefined;
  // stopSignal ends sleeps; claimAbort drops a claim request, the last resort
  // when the server cannot be asked to end it (a dropped claim's jobs wait out their lease).
  const stopController = new AbortController();
  const claimAbort = new AbortController();
  let slotFreed: (() => void) | undefined;
  let heartbeatTimer: NodeJS.Timeout | undefined;

  // Starts are reported late and together: a handler that finishes within
  // startReportDelayMs goes from claimed straight to completed.
  const pendingStarts = new Map<string, number>();
  let startTimer: NodeJS.Timeout | undefined;
  const flushStarts = (): void => {
    startTimer = undefined;
    if (pendingStarts.size === 0) return;
    const jobs = [...pendingStarts].map(([id, attempt]) => ({ id, attempt }));
    pendingStarts.clear();
    trpc.worker.start.mutate({ workerId, jobs }).then(
      (answer) => { for (const id of [...answer.lost, ...answer.cancelled]) abandon(id, answer.cancelled.includes(id) ? 'cancelled' : 'lease_lost'); },
      (error: unknown) => emit({ kind: 'error', error }),
    );
  };

  const completer = createBatcher<{ id: string; attempt: number; result?: unknown }, CompleteOutcome>({
    maxBatch: LIMITS.workerBatch,
    maxInFlight: 2,
    // A millisecond's grace lets the claim loop, which runs on the next turn,
    // take these completions along with its claim instead of a request of their own.
    delayMs: 1,
    async send(items) {
      for (let tries = 0; ; tries++) {
        try {
          const { results } = await trpc.worker.completeMany.mutate({ workerId, jobs: items });
          return results.map((r) => r.outcome);
        } catch (error) {
          // A repeated completion of the same attempt is answered "completed"
          // without a second write, so retrying after a lost reply is safe.
          if (!isTransient(error) || tries >= 20) throw error;
          await sleep(Math.min(100 * 2 ** tries, 5000));
        }
      }
    },
  });

  function abandon(id: string, reason: 'lease_lost' | 'cancelled' | 'not_found'): void {
    const run = running.get(id);
    if (!run || run.abandoned) return;
    run.abandoned = true;
    abortRun(run, new Error(reason === 'cancelled' ? `job ${id} was cancelled` : `lease on job ${id} was lost`));
    emit({ kind: 'lost', id, reason });
  }

  const heartbeat = async (): Promise<void> => {
    const jobs = [...running.values()].filter((r) => !r.abandoned);
    if (jobs.length === 0) return;
    for (let i = 0; i < jobs.length; i += LIMITS.workerBatch) {
      const chunk = jobs.slice(i, i + LIMITS.workerBatch);
      const answer = await trpc.worker.heartbeat.mutate({
        workerId,
        leaseMs,
        jobs: chunk.map((r) => ({ id: r.job.id, attempt: r.job.attempt, ...(r.progress !== undefined ? { progress: r.progress } : {}) })),
      });
      for (const id of answer.lost) abandon(id, 'lease_lost');
      for (const id of answer.cancelled) abandon(id, 'cancelled');
    }
  };

  const report = async (run: Running, outcome: Outcome): Promise<void> => {
    const { job } = run;
    if (run.abandoned) return;
    if (outcome.ok) {
      const result = await completer.add({ id: job.id, attempt: job.attempt, ...(outcome.result !== undefined ? { result: outcome.result } : {}) });
      if (result === 'completed') emit({ kind: 'completed', id: job.id, type: job.type, attempt: job.attempt });
      else if (result === 'failed') emit({ kind: 'failed', id: job.id, type: job.type, attempt: job.attempt, error: 'the server refused the result', willRetry: false });
      else emit({ kind: 'lost', id: job.id, reason: result });
      return;
    }
    const error = outcome.error;
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    const permanent = error instanceof PermanentError;
    const policy = registry[job.type]?.backoff ?? DEFAULT_BACKOFF;
    try {
      const answer = await trpc.worker.fail.mutate({
        workerId,
        id: job.id,
        attempt: job.attempt,
        error: message,
        retry: !permanent,
        retryDelayMs: backoffDelayMs(policy, job.retryCount),
      });
      emit({ kind: 'failed', id: job.id, type: job.type, attempt: job.attempt, error: message, willRetry: answer.status === 'pending' });
    } catch (failError) {
      const code = errorCodeOf(failError);
      if (code === 'LEASE_LOST' || code === 'JOB_CANCELLED' || code === 'JOB_NOT_FOUND') emit({ kind: 'lost', id: job.id, reason: code === 'JOB_CANCELLED' ? 'cancelled' : code === 'LEASE_LOST' ? 'lease_lost' : 'not_found' });
      else throw failError;
    }
  };

  const execute = async (run: Running): Promise<Outcome> => {
    const { job } = run;
    const def = registry[job.type];
    const handler = handlers[job.type];
    let outcome: Outcome;
    // The payload came from the database: unknown until the registry's schema says otherwise.
    const parsed = def?.payload.safeParse(job.payload);
    if (!def || !handler || !parsed?.success) {
      const why = !def || !handler ? `this worker has no handler for "${job.type}"` : `payload failed validation: ${parsed?.error?.message}`;
      outcome = { ok: false, error: new PermanentError(why) };
    } else {
      pendingStarts.set(job.id, job.attempt);
      startTimer ??= setTimeout(flushStarts, startDelay);
      try {
        const ctx: JobContext = {
          id: job.id,
          type: job.type,
          queue: job.queue,
          attempt: job.attempt,
          retryCount: job.retryCount,
          maxRetries: job.maxRetries,
          get signal() {
            if (!run.controller) {
              run.controller = new AbortController();
              if (run.abortReason) run.controller.abort(run.abortReason);
            }
            return run.controller.signal;
          },
          progress(value) {
            run.progress = value;
          },
        };
        let result = await handler(parsed.data, ctx);
        if (def.result) {
          const checked = def.result.safeParse(result);
          if (!checked.success) throw new Error(`handler returned a result that fails the "${job.type}" result schema: ${checked.error.message}`);
          result = checked.data;
        }
        outcome = { ok: true, result };
      } catch (error) {
        outcome = { ok: false, error };
      }
      pendingStarts.delete(job.id);
    }
    return outcome;
  };

  const launch = (job: ClaimedJob): void => {
    const run: Running = { job, controller: undefined, abortReason: undefined, progress: undefined, abandoned: false, done: Promise.resolve() };
    running.set(job.id, run);
    run.done = execute(run).then((outcome) => {
      // The slot frees when the handler returns, not when the server has the
      // result: the next claim can leave (carrying this completion) at once.
      running.delete(job.id);
      slotFreed?.();
      const sent = report(run, outcome).catch((error: unknown) => emit({ kind: 'error', error }));
      reports.add(sent);
      void sent.finally(() => reports.delete(sent));
    });
  };

  // While there is a backlog, two claims may be in flight: one batch runs while
  // the next batch's round trip is on the wire. Without a backlog, one claim
  // long-polls. Completions waiting to be sent ride with the next claim.
  let claimsInFlight = 0;
  let requested = 0;
  let backlog = false;
  let failures = 0;
  const claimTasks = new Set<Promise<void>>();

  const claimOnce = async (limit: number): Promise<void> => {
    const folded = completer.takeQueued();
    try {
      const answer = await trpc.worker.claim.mutate(
        {
          workerId,
          types,
          ...(options.queues ? { queues: options.queues } : {}),
          ...(folded.items.length > 0 ? { complete: folded.items } : {}),
          limit,
          leaseMs,
          // Never long-poll while holding completions (their callers wait) or when work is queued.
          waitMs: folded.items.length > 0 || backlog ? 0 : waitMs,
        },
        { signal: claimAbort.signal },
      );
      folded.settle(answer.completed ?? []);
      failures = 0;
      backlog = answer.jobs.length > 0 && answer.jobs.length === limit;
      // Jobs that arrive while stopping still run: stop() waits for them.
      for (const job of answer.jobs) launch(job);
    } catch (error) {
      // The completions may or may not have been applied; resending them is
      // safe (a repeated completion answers "completed" without a second write).
      folded.requeue();
      backlog = false;
      if (stopping) return;
      emit({ kind: 'error', error });
      failures++;
      // Back off while the server or its database is down; resume by itself.
      await sleep(Math.min(100 * 2 ** Math.min(failures, 6), 5000), stopController.signal);
    }
  };

  const claimLoop = async (): Promise<void> => {
    while (!stopping) {
      const free = concurrency - running.size - requested;
      const busy = running.size + requested > 0;
      // Claim when a quarter of the slots are free (or all are): a claim per
      // finished job would cost a round trip per job.
      if (claimsInFlight >= (backlog ? 2 : 1) || free <= 0 || (free < claimThreshold && busy)) {
        await new Promise<void>((resolve) => { slotFreed = resolve; });
        slotFreed = undefined;
        // Let handlers finishing in this same turn free their slots too.
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      // Under a backlog, half the slots per claim, so two claims overlap.
      const limit = Math.min(free, LIMITS.claimLimit, backlog ? Math.ceil(concurrency / 2) : concurrency);
      requested += limit;
      claimsInFlight++;
      const task: Promise<void> = claimOnce(limit).finally(() => {
        requested -= limit;
        claimsInFlight--;
        claimTasks.delete(task);
        slotFreed?.();
      });
      claimTasks.add(task);
    }
    await Promise.all([...claimTasks]);
  };

  return {
    workerId,
    get running() {
      return running.size;
    },
    start() {
      if (started) return;
      started = true;
      heartbeatTimer = setInterval(() => {
        heartbeat().catch((error: unknown) => emit({ kind: 'error', error }));
      }, Math.max(50, Math.floor(leaseMs / 3)));
      loop = claimLoop();
    },
    async stop() {
      if (stopping) return;
      stopping = true;
      stopController.abort();
      slotFreed?.();
      if (claimsInFlight > 0) {
        // Ask the server to end the long-poll, so jobs it claims are delivered, not dropped.
        const interrupted = await trpc.worker.interrupt.mutate({ workerId }).then(() => true, () => false);
        const ended = interrupted && (await Promise.race([loop?.then(() => true), deadline(5000).then(() => false)]));
        if (!ended) claimAbort.abort();
      }
      await loop;
      const settled = Promise.all([...running.values()].map((r) => r.done)).then(() => Promise.all([...reports]));
      const graceOver = await Promise.race([settled.then(() => false), deadline(graceMs).then(() => true)]);
      if (graceOver && running.size > 0) {
        const left = [...running.values()].filter((r) => !r.abandoned);
        for (const r of left) {
          r.abandoned = true;
          abortRun(r, new Error('worker is stopping'));
        }
        if (left.length > 0) {
          await trpc.worker.release.mutate({ workerId, jobs: left.map((r) => ({ id: r.job.id, attempt: r.job.attempt })) }).catch((error: unknown) => emit({ kind: 'error', error }));
        }
      }
      clearInterval(heartbeatTimer);
      clearTimeout(startTimer);
      await Promise.all([...reports]);
      await completer.drain();
      await transport.close();
    },
  };
}

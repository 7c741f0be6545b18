import { LIMITS } from '../../shared/limits.js';
import type { ClaimedJob } from '../../shared/index.js';
import { plainJson, type SkipqTrpc } from '../trpc.js';
import type { WorkerConfig } from './config.js';
import { createLocalQueue } from './localQueue.js';
import type { Reporter } from './reporting.js';
import type { Runner } from './runner.js';
import type { WorkerEvent } from './types.js';

/**
 * Fetches jobs ahead of the runner: claims in batches, long-polls when idle,
 * and keeps up to `prefetch` claimed jobs buffered (localQueue.ts) so that a
 * freed slot starts the next job without a round trip.
 */
export interface ClaimLoop {
  /** Runs until stop(); resolves when no claim is in flight any more. */
  run(): Promise<void>;
  /** A slot was freed (by a handler that ran `ranMs`, if one did), or the loop should look again. */
  wake(ranMs?: number): void;
  /** Hands back the buffered jobs that did not start (stop()); later arrivals are handed back as they come. */
  releaseBuffered(): Promise<void>;
  /**
   * Ends the loop: asks the server to end a waiting long-poll (so jobs it
   * claims are delivered, not dropped), and drops the claim after `dropAfterMs`
   * if that does not work. Resolves when the loop has ended.
   */
  stop(dropAfterMs: number): Promise<void>;
}

/** What {@link createClaimLoop} needs. */
export interface ClaimLoopDeps {
  trpc: SkipqTrpc;
  config: WorkerConfig;
  runner: Runner;
  reporter: Reporter;
  emit(event: WorkerEvent): void;
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });

/**
 * When the attempt's timeoutMs began, on this machine's clock. The server
 * claimed the job between sending the claim and reading its answer; its own
 * clock says when (leaseExpiresAt - leaseMs), which is taken when it falls in
 * that interval, so a skewed server clock can move the estimate only within it.
 */
function claimedAtOf(sentAt: number, receivedAt: number, leaseExpiresAt: Date | null, leaseMs: number): number {
  const server = leaseExpiresAt ? leaseExpiresAt.getTime() - leaseMs : receivedAt;
  return Math.min(receivedAt, Math.max(sentAt, server));
}

/** Creates the claim loop of a worker. */
export function createClaimLoop(deps: ClaimLoopDeps): ClaimLoop {
  const { trpc, config, runner, reporter, emit } = deps;
  const { concurrency, leaseMs, waitMs, workerId } = config;
  const types = [...config.types];
  const queues = config.queues ? [...config.queues] : undefined;
  const releases = new Set<Promise<void>>();
  const release = (jobs: ClaimedJob[]): void => {
    const sent = reporter.release(jobs);
    releases.add(sent);
    void sent.finally(() => releases.delete(sent));
  };
  const buffer = createLocalQueue({ prefetch: config.prefetch, concurrency, leaseMs, release });
  // stopSignal ends sleeps; claimAbort drops a claim request, the last resort
  // when the server cannot be asked to end it (a dropped claim's jobs wait out their lease).
  const stopController = new AbortController();
  const claimAbort = new AbortController();
  let stopping = false;
  let loop: Promise<void> | undefined;
  let slotFreed: (() => void) | undefined;

  // While there is a backlog, two claims may be in flight: one batch runs while
  // the next batch's round trip is on the wire. Without a backlog, one claim
  // long-polls. Completions waiting to be sent ride with the next claim.
  let claimsInFlight = 0;
  let requested = 0;
  let backlog = false;
  let failures = 0;
  const claimTasks = new Set<Promise<void>>();

  /**
   * Jobs the server counts as this worker's, claims in flight included: the
   * runner's, the buffer's, and those whose outcome is still on its way. A
   * claim never asks for more than concurrency + depth minus these, so the
   * worker never holds more than concurrency + prefetch jobs at any moment.
   */
  const held = (): number => runner.size + buffer.size + requested + reporter.onTheWire;

  /**
   * Fills free slots from the buffer; answers whether any slot is still free.
   * A handler that returns at once frees its slot inside launch() (runner.ts),
   * which calls back here through wake(): that inner call leaves the filling to
   * this loop, so 500 buffered no-op jobs run one after another, not 500 deep.
   */
  let filling = false;
  const startBuffered = (): boolean => {
    if (filling) return runner.size < concurrency;
    filling = true;
    try {
      while (runner.size < concurrency) {
        const next = buffer.take();
        if (!next) return true;
        runner.launch(next.job, next.claimedAt);
      }
      return false;
    } finally {
      filling = false;
    }
  };

  const claimOnce = async (limit: number): Promise<void> => {
    const folded = reporter.takeForClaim();
    const sentAt = Date.now();
    try {
      const input = {
        workerId,
        types,
        ...(queues ? { queues } : {}),
        ...(folded.wires.length > 0 ? { complete: folded.wires } : {}),
        limit,
        leaseMs,
        // Never long-poll while holding completions (their callers wait) or when work is queued.
        waitMs: folded.wires.length > 0 || backlog ? 0 : waitMs,
      };
      // Names, numbers and the completions' ids and attempts: plain JSON unless a result is not.
      const answer = await trpc.worker.claim.mutate(folded.plain ? plainJson(input) : input, { signal: claimAbort.signal });
      folded.settle(answer.completed ?? []);
      runner.refreshTelemetry();
      failures = 0;
      backlog = answer.jobs.length > 0 && answer.jobs.length === limit;
      const claimedAt = claimedAtOf(sentAt, Date.now(), answer.leaseExpiresAt, leaseMs);
      // Older buffered jobs go first; jobs that arrive while stopping still
      // run in a free slot (stop() waits for them), the rest are handed back.
      const free = startBuffered();
      let i = 0;
      if (free) for (; i < answer.jobs.length && runner.size < concurrency; i++) runner.launch(answer.jobs[i] as ClaimedJob, claimedAt);
      if (stopping) {
        if (i < answer.jobs.length) release(answer.jobs.slice(i));
      } else for (; i < answer.jobs.length; i++) buffer.push(answer.jobs[i] as ClaimedJob, claimedAt);
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

  const run = async (): Promise<void> => {
    while (!stopping) {
      startBuffered();
      const capacity = concurrency + buffer.depth();
      const taken = held();
      const free = capacity - taken;
      // Claim when a quarter of the capacity is free (or all is): a claim per
      // finished job would cost a round trip per job.
      if (claimsInFlight >= (backlog ? 2 : 1) || free <= 0 || (free < Math.max(1, Math.floor(capacity / 4)) && taken > 0)) {
        await new Promise<void>((resolve) => { slotFreed = resolve; });
        slotFreed = undefined;
        // Let handlers finishing in this same turn free their slots too.
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      // Under a backlog, half the capacity per claim, so two claims overlap.
      const limit = Math.min(free, LIMITS.claimLimit, backlog ? Math.ceil(capacity / 2) : capacity);
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

  const releaseBuffered = async (): Promise<void> => {
    const left = buffer.drain();
    if (left.length > 0) release(left);
    while (releases.size > 0) await Promise.all([...releases]);
  };

  return {
    run() {
      loop ??= run();
      return loop;
    },
    wake(ranMs) {
      if (ranMs !== undefined) buffer.ran(ranMs);
      // At once, in the freeing turn: this is what the buffer is for.
      if (!stopping) startBuffered();
      slotFreed?.();
    },
    releaseBuffered,
    async stop(dropAfterMs) {
      stopping = true;
      stopController.abort();
      buffer.close();
      // Buffered jobs go back at once, while the loop winds down, not after it.
      const released = releaseBuffered();
      slotFreed?.();
      if (!loop) return released;
      if (claimsInFlight > 0) {
        let timer: NodeJS.Timeout | undefined;
        const dropped = new Promise<void>((resolve) => {
          timer = setTimeout(() => { claimAbort.abort(); resolve(); }, Math.max(0, dropAfterMs));
        });
        // Ask the server to end the long-poll, so jobs it claims are delivered, not dropped.
        void trpc.worker.interrupt.mutate({ workerId }).catch(() => claimAbort.abort());
        await Promise.race([loop, dropped]);
        clearTimeout(timer);
      }
      await loop;
      await released;
      await releaseBuffered();
    },
  };
}

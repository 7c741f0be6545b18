import type { JobDefinitions } from '../../shared/index.js';
import { createTrpc } from '../trpc.js';
import { createChildReader } from './children.js';
import { createClaimLoop } from './claimLoop.js';
import { workerConfigOf } from './config.js';
import { createDeliveryWindow } from './deliveryWindow.js';
import { createHeartbeats } from './heartbeats.js';
import { createEventLogger, stderrLogger } from './logging.js';
import { createReporter } from './reporting.js';
import { createRunner } from './runner.js';
import { createStartReporter } from './starts.js';
import type { StopReport, Worker, WorkerEvent, WorkerOptions } from './types.js';

/** Longest a stopping worker waits for the server to end its long-poll before dropping it. */
const INTERRUPT_WAIT_MS = 5000;
/** Slack for the pool to close after the hard deadline, before its sockets are destroyed. */
const CLOSE_SLACK_MS = 100;

/**
 * Creates the bundled worker: claims in batches with long-polling, validates
 * each payload with the registry before its handler runs, checks the result
 * after (schema, JSON, size), completes in batches, heartbeats leases, enforces
 * each attempt's timeoutMs, and stops within its grace period.
 * @example
 * const worker = createWorker({ url, jobs, concurrency: 4, handlers: {
 *   ingestion: async ({ chainId, targetDate }, ctx) => ({ rows: await ingest(chainId, targetDate, ctx.signal) }),
 * } });
 * worker.start();
 */
export function createWorker<R extends JobDefinitions>(options: WorkerOptions<R>): Worker {
  const config = workerConfigOf(options);
  const { trpc, transport } = createTrpc(options, true, config.waitMs);
  const onEvent = options.onEvent;
  const logEvent = createEventLogger(options.logger ?? stderrLogger, config.workerId);
  const emit = (event: WorkerEvent): void => {
    // A throwing listener (or logger) must not break the worker's own bookkeeping.
    try {
      logEvent(event);
    } catch {
      /* the logger's own problem */
    }
    try {
      onEvent?.(event);
    } catch {
      /* the listener's own problem */
    }
  };

  const window = createDeliveryWindow();
  let wakeClaims = (_ranMs?: number): void => {};
  const reporter = createReporter({ trpc, config, window, emit, landed: () => wakeClaims() });
  // The runner and the reporters of starts and heartbeats point at each other
  // through these two closures; the claim loop is made last.
  const abandon = (id: string, reason: 'lease_lost' | 'cancelled'): void => runner.abandon(id, reason);
  const starts = createStartReporter({ trpc, config, abandon, emit });
  const runner = createRunner({ config, reporter, starts, emit, onSlotFreed: (ranMs) => wakeClaims(ranMs), children: createChildReader(trpc, config) });
  const heartbeats = createHeartbeats({ trpc, config, runs: () => runner.runs(), abandon, emit });
  const claims = createClaimLoop({ trpc, config, runner, reporter, emit });
  wakeClaims = (ranMs) => claims.wake(ranMs);

  let started = false;
  let stopped: Promise<StopReport> | undefined;

  const stop = async (): Promise<StopReport> => {
    // Every wait below ends by graceMs (handlers, retries) or by graceMs +
    // requestTimeoutMs (requests in flight): stop() took 76 s with graceMs 2000
    // when the server was down, because the completion retries ignored it.
    window.close(config.graceMs, config.requestTimeoutMs);
    await claims.stop(Math.min(INTERRUPT_WAIT_MS, config.graceMs));
    const graceOver = window.graceOver();
    await Promise.race([runner.whenIdle().then(() => reporter.settled()), graceOver]);
    if (runner.size > 0) {
      // Whatever still runs is aborted and handed back without using a retry.
      await graceOver;
      const left = runner.abandonAll(new Error('worker is stopping'));
      if (left.length > 0) await reporter.release(left.map((run) => run.job));
    }
    heartbeats.stop();
    starts.stop();
    await reporter.settled();
    await transport.close(window.remainingMs() + CLOSE_SLACK_MS);
    const report: StopReport = { undelivered: [...reporter.undelivered] };
    emit({ kind: 'stopped', ...report });
    return report;
  };

  return {
    workerId: config.workerId,
    get running() {
      return runner.size;
    },
    start() {
      if (started || stopped) return;
      started = true;
      heartbeats.start();
      void claims.run();
    },
    stop() {
      stopped ??= stop();
      return stopped;
    },
  };
}

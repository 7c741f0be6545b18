import { LIMITS } from '../../shared/limits.js';
import type { SkipqTrpc } from '../trpc.js';
import type { WorkerConfig } from './config.js';
import type { Run } from './run.js';
import type { WorkerEvent } from './types.js';

/** Reports handlers that began (claimed -> processing), late and together. */
export interface StartReporter {
  /** The run's handler began; reported after startReportDelayMs unless it finishes first. */
  add(run: Run): void;
  /** The run's slot is free: its start need not be reported any more. */
  forget(run: Run): void;
  /** Drops what was not reported yet (stop()). */
  stop(): void;
}

/** What {@link createStartReporter} needs. */
export interface StartReporterDeps {
  trpc: SkipqTrpc;
  config: WorkerConfig;
  /** The server says the job is no longer this worker's. */
  abandon(id: string, reason: 'lease_lost' | 'cancelled'): void;
  emit(event: WorkerEvent): void;
}

/**
 * Starts are reported late and together: a handler that finishes within
 * startReportDelayMs goes from claimed straight to completed and never pays a
 * call of its own (the W3 benchmark's no-op jobs never do).
 */
export function createStartReporter(deps: StartReporterDeps): StartReporter {
  const { trpc, config, abandon, emit } = deps;
  const pending = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const flush = (): void => {
    timer = undefined;
    if (pending.size === 0 || stopped) return;
    const all = [...pending].map(([id, attempt]) => ({ id, attempt }));
    pending.clear();
    for (let i = 0; i < all.length; i += LIMITS.workerBatch) send(all.slice(i, i + LIMITS.workerBatch));
  };

  const send = (jobs: Array<{ id: string; attempt: number }>): void => {
    trpc.worker.start.mutate({ workerId: config.workerId, jobs }).then(
      (answer) => {
        for (const id of answer.lost) abandon(id, 'lease_lost');
        for (const id of answer.cancelled) abandon(id, 'cancelled');
      },
      (error: unknown) => emit({ kind: 'error', error }),
    );
  };

  return {
    add(run) {
      if (stopped) return;
      pending.set(run.job.id, run.job.attempt);
      timer ??= setTimeout(flush, config.startReportDelayMs);
    },
    forget(run) {
      pending.delete(run.job.id);
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      pending.clear();
    },
  };
}

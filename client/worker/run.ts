import type { ClaimedJob } from '../../shared/index.js';
import type { Histogram } from '@opentelemetry/api';
import type { Span } from '../tracing.js';

/** A progress value recorded by ctx.progress, waiting for a heartbeat. */
export interface Progress {
  value: unknown;
  /** Set by ctx.progress, cleared once a heartbeat delivered this value. */
  dirty: boolean;
}

/** One claimed job on this worker, from its claim until its slot is freed. */
export interface Run {
  readonly job: ClaimedJob;
  /** Local time (ms) at which the attempt's timeoutMs runs out; null without a limit. */
  readonly deadlineAt: number | null;
  /** Local time (ms) its slot was taken: how long handlers hold a slot decides how deep the buffer goes. */
  readonly launchedAt: number;
  /** Made on first use of ctx.signal: most handlers never look, and one per job showed in profiles. */
  controller: AbortController | undefined;
  /** Why the run was aborted; a signal made later starts out aborted with it. */
  abortReason: unknown;
  progress: Progress | undefined;
  /**
   * Set once, when the slot is freed: the handler returned, the attempt timed
   * out, or the job was abandoned (cancelled, lease lost, worker stopping).
   * Whatever happens to the handler afterwards is ignored.
   */
  settled: boolean;
  timer: NodeJS.Timeout | undefined;
  /** The attempt's CONSUMER span and its start (performance.now()), for the duration histogram; see client/tracing.ts. */
  trace: RunTrace | undefined;
}

/** What a run's tracing needs at its end (client/worker/runner.ts). */
export interface RunTrace {
  /** Undefined when no tracer provider or context manager is registered (client/worker/jobSpan.ts). */
  readonly span: Span | undefined;
  /** The duration histogram, undefined while no MeterProvider is registered. */
  readonly duration: Histogram | undefined;
  readonly startedAt: number;
}

/** Aborts the run's signal (now, or when ctx.signal is first read). */
export function abortRun(run: Run, reason: unknown): void {
  if (run.abortReason !== undefined) return;
  run.abortReason = reason;
  run.controller?.abort(reason);
}

/** The run's AbortSignal, made on first use. */
export function signalOf(run: Run): AbortSignal {
  if (!run.controller) {
    run.controller = new AbortController();
    if (run.abortReason !== undefined) run.controller.abort(run.abortReason);
  }
  return run.controller.signal;
}

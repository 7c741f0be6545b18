import type { ChildView, FailureCode, JobDefinitions, JobId, JobRegistry, JobType, PayloadOf, ResultOf, ResultValue } from '../../shared/index.js';
import type { ConnectionOptions } from '../trpc.js';

/**
 * A child of a flow's parent, as its handler's `ctx.children()` sees it;
 * `type` narrows `result` to that type's result schema
 * (`if (child.type === 'ingestion') child.result?.rows`). `result` is null
 * unless the child completed.
 */
export type ChildResult<R extends JobDefinitions = JobDefinitions> = {
  [K in JobType<R>]: Omit<ChildView, 'id' | 'type' | 'result'> & { id: JobId<K>; type: K; result: ResultValue<R, K> | null };
}[JobType<R>];

/** What a handler gets besides its payload. */
export interface JobContext<R extends JobDefinitions = JobDefinitions> {
  id: string;
  type: string;
  queue: string;
  /** 1 on the first claim; the fencing token of this run. */
  attempt: number;
  retryCount: number;
  maxRetries: number;
  /**
   * Aborted when the job is cancelled, its lease is lost, it runs past its
   * `timeoutMs` (reason: a DOMException named `TimeoutError`), or the worker
   * stops past its grace period.
   */
  signal: AbortSignal;
  /**
   * Records progress, sent with the next heartbeat. Checked at once like a
   * result: throws a TypeError for a value JSON cannot hold unchanged (BigInt,
   * Map, NaN, a cycle...) and a RangeError past `maxResultBytes` or
   * LIMITS.jsonDepth; nothing is recorded then.
   */
  progress(value: unknown): void;
  /**
   * A flow parent's children (jobs.enqueueFlow) in the order they were
   * enqueued, each with its status (completed, failed or cancelled by the
   * time the parent runs), its result parsed with its type's result schema,
   * and its error. Empty for a job without children. Rejects with a lease
   * error once this attempt is no longer the worker's.
   * @example const rows = (await ctx.children()).flatMap((c) => (c.type === 'ingestion' && c.result ? [c.result.rows] : []));
   */
  children(): Promise<Array<ChildResult<R>>>;
}

/** A handler per job type; its payload and result types come from the registry. */
export type Handlers<R extends JobDefinitions> = {
  [K in JobType<R>]?: (payload: PayloadOf<R, K>, ctx: JobContext<R>) => ResultOf<R, K> | Promise<ResultOf<R, K>>;
};

/** A report the worker could not get to the server (the job then waits out its lease and runs again). */
export interface UndeliveredReport {
  id: string;
  attempt: number;
  kind: 'complete' | 'fail' | 'release';
}

/** What `stop()` resolves to. */
export interface StopReport {
  /** Reports given up on since the worker started (most recent last, at most 10 000). */
  undelivered: UndeliveredReport[];
}

/** What the worker reports to `onEvent`. */
export type WorkerEvent =
  | { kind: 'completed'; id: string; type: string; attempt: number }
  | {
      kind: 'failed';
      id: string;
      type: string;
      attempt: number;
      error: string;
      /** Why, as stored in the job's `error_code`. */
      code: FailureCode;
      willRetry: boolean;
    }
  | { kind: 'lost'; id: string; reason: 'lease_lost' | 'cancelled' | 'not_found' }
  /** The server refused a progress value; the job keeps running and its lease, no other job is affected. */
  | { kind: 'progress_rejected'; id: string; type: string; attempt: number; error: string }
  /** `stop()` finished; the same report it resolves to. */
  | ({ kind: 'stopped' } & StopReport)
  | { kind: 'error'; error: unknown };

/** Options of {@link createWorker}. */
export interface WorkerOptions<R extends JobDefinitions> extends ConnectionOptions {
  jobs: JobRegistry<R>;
  handlers: Handlers<R>;
  /** Jobs run at once. Default 10. */
  concurrency?: number;
  /**
   * Jobs claimed ahead of free slots and buffered, so a freed slot starts the
   * next one without a claim's round trip. Default concurrency, at most 100;
   * 0 disables. The worker holds at most concurrency + prefetch jobs; fewer
   * are buffered when handlers are slow (a buffered job waits a quarter lease
   * at most, on the average), and a buffered job is handed back, not started,
   * once half its lease (or half its timeoutMs) has passed since its claim.
   * stop() hands the buffered jobs back at once.
   */
  prefetch?: number;
  /** This worker's name in `worker_id`. Default host-pid-random. */
  workerId?: string;
  /** Only claim from these queues. Default: any. */
  queues?: string[];
  /** Lease per claim; heartbeats every leaseMs/3 extend it. Default 30 000. */
  leaseMs?: number;
  /** Long-poll of each claim. Default 20 000. */
  waitMs?: number;
  /**
   * How long `stop()` lets running handlers finish and undelivered reports be
   * retried before it aborts and releases the rest. Default 30 000.
   */
  graceMs?: number;
  /** How long a started handler may run before its start is reported. Default 20 ms: fast jobs never pay one. */
  startReportDelayMs?: number;
  /**
   * Largest result or progress value, in UTF-8 bytes of JSON; a larger result
   * fails its job with INVALID_RESULT. Default LIMITS.defaultPayloadBytes (1 MiB,
   * the server's default `maxPayloadBytes`): keep the two equal.
   */
  maxResultBytes?: number;
  onEvent?: (event: WorkerEvent) => void;
  /**
   * Where the worker logs its events: a pino logger or anything pino-shaped.
   * Errors at error; failed attempts, lost jobs, refused progress and undelivered
   * reports at warn; stops at info; completions at debug. Default: warnings and
   * errors as one line each on stderr.
   */
  logger?: WorkerLogger;
}

/** One logging call in pino's shape: `(fields, message)`. */
export type WorkerLogFn = (fields: object, message?: string) => void;

/** The part of a pino logger the worker calls. */
export interface WorkerLogger {
  debug: WorkerLogFn;
  info: WorkerLogFn;
  warn: WorkerLogFn;
  error: WorkerLogFn;
  isLevelEnabled?(level: string): boolean;
}

/** A running worker. */
export interface Worker {
  readonly workerId: string;
  /** Starts claiming. */
  start(): void;
  /**
   * Stops claiming, hands the buffered (prefetched) jobs back to pending at
   * once, lets running handlers finish (up to graceMs), then aborts the rest
   * and hands them back to pending without using a retry. Resolves
   * within graceMs plus one requestTimeoutMs (and a little), whether or not the
   * server answers, naming the reports it could not deliver.
   */
  stop(): Promise<StopReport>;
  /** Jobs running now. */
  readonly running: number;
}

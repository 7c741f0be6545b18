/** Bounds every procedure enforces, so one call cannot hold the server or the database for long. */
export const LIMITS = Object.freeze({
  /** Jobs in one `jobs.enqueueMany`. */
  enqueueBatch: 1000,
  /** Jobs in one `worker.completeMany`, `start`, `heartbeat` or `release`. */
  workerBatch: 1000,
  /** Jobs one `worker.claim` may take. */
  claimLimit: 1000,
  /** Longest long-poll of `worker.claim`, in ms. */
  maxWaitMs: 60_000,
  /** Shortest and longest lease, in ms. */
  minLeaseMs: 100,
  maxLeaseMs: 24 * 3_600_000,
  /** Default lease, in ms. */
  defaultLeaseMs: 30_000,
  /** Furthest a job may be scheduled ahead, in ms (10 years). */
  maxDelayMs: 10 * 365 * 86_400_000,
  /** Retries one job may have. */
  maxRetries: 1000,
  /** Characters of an error message stored per failure; longer ones are cut (client and server). */
  errorMessage: 16_384,
  /** Longest per-attempt timeout a job may have, in ms (24 h, the longest lease). */
  maxTimeoutMs: 24 * 3_600_000,
  /** Characters of a worker id or unique key. */
  workerId: 200,
  uniqueKey: 255,
  /** Characters of a concurrency key (the database has the same CHECK). */
  concurrencyKey: 255,
  /** Largest keyConcurrency of a queue or a job type (job_types has the same CHECK). */
  keyConcurrency: 10_000,
  /** Nesting depth of a payload, result or progress value: 64 nested arrays or objects pass, 65 do not. */
  jsonDepth: 64,
  /**
   * Default largest payload, result or progress value, in UTF-8 bytes of its
   * JSON text: the server's `maxPayloadBytes` and the worker's `maxResultBytes`.
   */
  defaultPayloadBytes: 1_048_576,
  /** Rows one `jobs.list` page may hold. */
  listLimit: 500,
  /** Jobs in one flow (`jobs.enqueueFlow`), the parent and every descendant counted. */
  flowJobs: 1000,
  /** Levels of one flow: the parent is level 1, its children level 2, ... */
  flowDepth: 5,
  /** Characters of an error kept in an attempt's history row (the job's own `error` keeps up to `errorMessage`). */
  attemptErrorChars: 2000,
  /** Attempts `jobs.get` shows, the latest ones, newest last (`jobs.attempts` pages through all). */
  attemptsShown: 20,
  /** Rows one `jobs.attempts` or `jobs.children` page may hold. */
  pageLimit: 1000,
  /** Jobs one `jobs.retryMany` or `jobs.cancelMany` may move (its required `limit`). */
  bulkLimit: 10_000,
  /** Characters of a `jobs.list` / bulk `errorContains` filter. */
  errorFilter: 1000,
});

import type { Db } from './db/pool.js';
import { jobRetentionBatch, retentionQueues } from './queries/maintenance.js';

/**
 * How long finished jobs are kept, in days (0: forever). A queue's own
 * setting (`queues.configure({ retentionDays, failedRetentionDays })`) wins.
 */
export interface RetentionPolicy {
  /** Completed and cancelled jobs. Default 7 (SKIPQ_RETENTION_DAYS). */
  retentionDays: number;
  /** Failed jobs, the dead letters: kept longer so a person can look and retry. Default 30 (SKIPQ_FAILED_RETENTION_DAYS). */
  failedRetentionDays: number;
}

/** How a retention pass paces itself. Every field has a default ({@link RETENTION_TUNING}). */
export interface RetentionTuning {
  /** Jobs one DELETE removes at most. */
  batchSize: number;
  /** Pause after each full batch, in ms: claims, completions and autovacuum get the table between two deletes. */
  pauseMs: number;
  /** Jobs one pass removes at most (bounding how long the leader holds the retention lock); the rest waits for the next pass. */
  maxPerPass: number;
  /** Time between two passes, in ms; a pass that stopped at `maxPerPass` is followed by the next one after a second. */
  intervalMs: number;
}

/**
 * The defaults, decided with `bench/retention.ts`: 1,000,000 due rows (95%
 * completed or cancelled, 5% failed, 4 queues) on this 2-core machine, shared
 * with other sessions (load average 1-22 while it ran), PostgreSQL 15 with
 * autovacuum off.
 * - A batch of 1,000 takes a median 18-19 ms on a quiet machine (50-56 ms at
 *   load ~20) and stays flat along the pass (first/last 100 batches 28/16 ms):
 *   each walks on from the one before (skipq_retention_batch's p_from); when
 *   every batch restarted at the oldest entry the pass took 180 s.
 * - 100 ms between batches: a pass over the 1,000,000 takes 121-126 s (about
 *   8,000 rows/s, so retention keeps up with jobs finishing at up to about
 *   8,000 a second averaged over the day; faster needs a shorter pause or
 *   larger batches), and the claim workload (4
 *   connections, claim 50 + complete) ran at 13,663 jobs/s during it against
 *   15,838 alone (-14%). At 50 ms: 9,500-12,500 rows/s and -33 to -36%; at
 *   5,000 a batch with no pause: 74,000 rows/s and -48% (noisier runs at load 8-18).
 * - 100,000 a pass bounds how long one pass holds the lock (about 12 s); a
 *   pass that stops at the cap is followed after a second.
 * - Before/after a pass over the 1,000,000: heap 312.5 MB, indexes 83.7 MB,
 *   997,000 dead tuples and no space given back until vacuum; VACUUM (1 s)
 *   empties the heap to 0 MB (all its pages were free), the indexes keep
 *   their 84 MB until reused.
 */
export const RETENTION_TUNING: Readonly<RetentionTuning> = Object.freeze({ batchSize: 1000, pauseMs: 100, maxPerPass: 100_000, intervalMs: 60_000 });

/** What one retention pass did. */
export interface RetentionReport {
  /** Completed and cancelled jobs deleted. */
  deleted: number;
  /** Failed jobs deleted. */
  deletedFailed: number;
  /** DELETE statements run (each removed at most `batchSize`). */
  batches: number;
  /** False when the pass stopped at `maxPerPass` (or at shutdown) with jobs still due. */
  complete: boolean;
  /** The same counts per queue (only queues that lost jobs), for the metrics. */
  byQueue: Record<string, { deleted: number; deletedFailed: number }>;
}

/** Options of {@link runRetentionPass}. */
export interface RetentionPassOptions {
  policy: RetentionPolicy;
  tuning: RetentionTuning;
  /** The server's clock; null: the database's (skipq_now()). */
  now(): Date | null;
  /** Asked before each batch: true ends the pass (the server is stopping). */
  stopping?(): boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One retention pass: for each queue holding finished jobs, its due
 * completed and cancelled jobs, then its due failed ones, in batches of at
 * most `batchSize`, each DELETE its own short transaction (autocommit on
 * `db`), never a table-wide statement. Only finished jobs are ever deleted.
 */
export async function runRetentionPass(db: Db, options: RetentionPassOptions): Promise<RetentionReport> {
  const { policy, tuning } = options;
  const report: RetentionReport = { deleted: 0, deletedFailed: 0, batches: 0, complete: true, byQueue: {} };
  for (const queue of await retentionQueues(db)) {
    for (const failed of [false, true]) {
      const days = failed ? (queue.failed_retention_days ?? policy.failedRetentionDays) : (queue.retention_days ?? policy.retentionDays);
      if (days === 0) continue;
      // Each batch walks on from where the one before stopped (see skipq_retention_batch).
      let from: Date | null = null;
      for (;;) {
        const room = tuning.maxPerPass - report.deleted - report.deletedFailed;
        if (room <= 0 || options.stopping?.()) {
          report.complete = false;
          return report;
        }
        const limit = Math.min(tuning.batchSize, room);
        const batch = await jobRetentionBatch(db, { queue: queue.queue, failed, days, now: options.now(), from, limit });
        report.batches++;
        if (batch.deleted > 0) {
          const mine = (report.byQueue[queue.queue] ??= { deleted: 0, deletedFailed: 0 });
          if (failed) mine.deletedFailed += batch.deleted;
          else mine.deleted += batch.deleted;
        }
        if (failed) report.deletedFailed += batch.deleted;
        else report.deleted += batch.deleted;
        if (batch.deleted < limit) break;
        from = batch.reached;
        await sleep(tuning.pauseMs);
      }
    }
  }
  return report;
}

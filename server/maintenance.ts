import type pg from 'pg';
import type { JobRegistry } from '../shared/index.js';
import { clockOf } from './clock.js';
import type { JobWaiters } from './jobWaiters.js';
import type { SkipqLogger } from './logger.js';
import type { NotifyHub } from './notify.js';
import { jobRescueExpired } from './queries/maintenance.js';
import { queueNotifyFreed } from './queries/queues.js';
import { throttleWindowCleanup } from './queries/schedules.js';
import { RETENTION_TUNING, runRetentionPass, type RetentionReport, type RetentionTuning } from './retention.js';
import { tickSchedules, type TickReport } from './schedules.js';

// Same constant in every skipq process: only the holder sweeps.
const MAINTENANCE_LOCK_KEY = 7_301_202_612;
// Cron ticks have a leader of their own, so a long rescue or cleanup never delays a tick.
const CRON_LOCK_KEY = 7_301_202_613;
// So does retention: a pass of many batches never delays a rescue or a tick.
const RETENTION_LOCK_KEY = 7_301_202_614;
const RESCUE_BATCH = 1000;
const CLEANUP_BATCH = 5000;
const CLEANUP_EVERY_MS = 60_000;

/** One sweep's rescue: jobs back to pending, and jobs failed for good. */
export interface SweepReport {
  rescued: number;
  failed: number;
}

/** Options of {@link createMaintenance}. */
export interface MaintenanceOptions {
  pool: pg.Pool;
  hub: NotifyHub;
  /** Told of the jobs a rescue failed for good, so their waiters wake. */
  waiters?: JobWaiters;
  rescueIntervalMs: number;
  /** Days to keep completed and cancelled jobs; 0 keeps them forever. A queue's own setting wins. */
  retentionDays: number;
  /** Days to keep failed jobs; 0 keeps them forever. A queue's own setting wins. Default 30. */
  failedRetentionDays?: number;
  /** Batch size, pause, cap per pass and interval of retention; defaults in {@link RETENTION_TUNING}. */
  retention?: Partial<RetentionTuning>;
  /** Leader changes, rescues and retention at info; a failed sweep at error. */
  logger: SkipqLogger;
  /** The clock leases are judged by (the server's `now` option); absent: the database's. */
  now?: () => Date;
  /** How often the cron leader looks for due ticks. Default 1000. */
  cronIntervalMs?: number;
  /** The registry: defaults (queue, priority, retries, timeout) of schedules' jobs. */
  registry?: JobRegistry | null;
  /** Told what each sweep that held the lock did (metrics). */
  onSweep?(done: SweepReport): void;
  /** Told what each retention pass that held the lock did, and when it ended (metrics). */
  onRetention?(done: RetentionReport, at: Date): void;
}

/** Background sweeps. `sweep()` runs one at once (tests call it). */
export interface Maintenance {
  start(): void;
  stop(): Promise<void>;
  /** One sweep (rescue); answers what it did, or null when another instance holds the lock. */
  sweep(): Promise<SweepReport | null>;
  /** One retention pass; answers what it deleted, or null when another instance holds the retention lock. */
  retain(): Promise<RetentionReport | null>;
  /** One cron sweep: the jobs of due ticks; null when another instance holds the cron lock. */
  tickSchedules(): Promise<TickReport | null>;
}

/**
 * Rescues jobs whose lease expired, ticks schedules and deletes old finished
 * jobs. Each takes an advisory lock of its own, so among many server
 * instances on one database exactly one does each at a time, and a crashed
 * holder frees the lock with its connection. Rescue and cron hold theirs for
 * one transaction; retention holds a session lock for its pass, whose batches
 * are transactions of their own (one long transaction would hold every
 * deleted row's lock, and keep vacuum from any dead row, until its end).
 */
export function createMaintenance(options: MaintenanceOptions): Maintenance {
  const { pool, hub, logger } = options;
  const now = (): number => options.now?.().getTime() ?? Date.now();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let lastWindowCleanup = 0;
  const tuning: RetentionTuning = { ...RETENTION_TUNING, ...options.retention };
  const policy = { retentionDays: options.retentionDays, failedRetentionDays: options.failedRetentionDays ?? 30 };
  let stopping = false;
  // Whether the last sweep held the lock: a change is logged once, not every sweep.
  let leader = false;

  const sweep = async (): Promise<SweepReport | null> => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1::bigint) AS locked', [MAINTENANCE_LOCK_KEY]);
      if (!rows[0]?.locked) {
        await client.query('ROLLBACK');
        if (leader) logger.info({ event: 'leader_lost' }, 'maintenance: another instance holds the lock now; this one no longer sweeps');
        leader = false;
        return null;
      }
      if (!leader) logger.info({ event: 'leader_gained' }, 'maintenance: this instance holds the lock and sweeps (rescue)');
      leader = true;
      const rescued = await jobRescueExpired(client, { limit: RESCUE_BATCH, now: clockOf(options) });
      // The other servers' claims waiting on these queues look again at the
      // commit: a rescued job is pending again, and one that failed for good
      // left room in a limited queue. One NOTIFY per queue, sent by the commit.
      if (rescued.length > 0) await queueNotifyFreed(client, [...new Set(rescued.map((r) => r.queue))]);
      await client.query('COMMIT');
      const back = rescued.filter((r) => r.status === 'pending');
      if (back.length > 0) hub.wake(new Set(back.map((r) => r.queue)));
      if (back.length < rescued.length) options.waiters?.finished(rescued.filter((r) => r.status === 'failed').map((r) => r.id));
      if (rescued.length > 0) {
        logger.info({ event: 'rescue', rescued: back.length, failed: rescued.length - back.length }, `rescued ${back.length} job(s) with expired leases, failed ${rescued.length - back.length}`);
      }
      const report = { rescued: back.length, failed: rescued.length - back.length };
      options.onSweep?.(report);
      return report;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  };

  const retain = async (): Promise<RetentionReport | null> => {
    const client = await pool.connect();
    // A connection whose unlock failed is closed, not pooled: closing it is what frees the lock then.
    let broken: Error | undefined;
    try {
      const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [RETENTION_LOCK_KEY]);
      if (!rows[0]?.locked) return null;
      const started = performance.now();
      try {
        const report = await runRetentionPass(client, { policy, tuning, now: () => clockOf(options), stopping: () => stopping });
        options.onRetention?.(report, new Date());
        const gone = report.deleted + report.deletedFailed;
        if (gone > 0) {
          const ms = Math.round(performance.now() - started);
          logger.info(
            { event: 'retention', ...report, ms, retentionDays: policy.retentionDays, failedRetentionDays: policy.failedRetentionDays },
            `retention: deleted ${report.deleted} completed/cancelled and ${report.deletedFailed} failed job(s) in ${report.batches} batch(es), ${ms} ms${report.complete ? '' : '; more are due, the next pass goes on'}`,
          );
        }
        return report;
      } finally {
        await client.query('SELECT pg_advisory_unlock($1::bigint)', [RETENTION_LOCK_KEY]).catch((error: unknown) => {
          broken = error as Error;
        });
      }
    } catch (error) {
      broken = error as Error;
      throw error;
    } finally {
      client.release(broken);
    }
  };

  const cronSweep = async (): Promise<TickReport | null> => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1::bigint) AS locked', [CRON_LOCK_KEY]);
      if (!rows[0]?.locked) {
        await client.query('ROLLBACK');
        return null;
      }
      const report = await tickSchedules(client, { registry: options.registry ?? null, now: clockOf(options) });
      if (now() - lastWindowCleanup >= CLEANUP_EVERY_MS) {
        lastWindowCleanup = now();
        await throttleWindowCleanup(client, { now: clockOf(options), limit: CLEANUP_BATCH });
      }
      // The insert's NOTIFY wakes waiting claims on every server, this one included.
      await client.query('COMMIT');
      return report;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  };

  const tick = (): void => {
    running = sweep()
      .catch((error: unknown) => logger.error({ err: error }, `maintenance sweep failed: ${(error as Error).message}`))
      .finally(() => {
        running = undefined;
        if (timer) timer = setTimeout(tick, options.rescueIntervalMs).unref();
      });
  };
  let retainTimer: NodeJS.Timeout | undefined;
  let retainRunning: Promise<unknown> | undefined;
  const retainTick = (): void => {
    // A pass that stopped at its cap with jobs still due is followed soon, so the cap bounds how long
    // one pass holds the lock, not how many rows a minute retention can remove.
    let next = tuning.intervalMs;
    retainRunning = retain()
      .then((report) => {
        if (report && !report.complete) next = Math.min(1000, tuning.intervalMs);
      })
      .catch((error: unknown) => logger.error({ err: error }, `retention pass failed: ${(error as Error).message}`))
      .finally(() => {
        retainRunning = undefined;
        if (retainTimer) retainTimer = setTimeout(retainTick, next).unref();
      });
  };
  let cronTimer: NodeJS.Timeout | undefined;
  let cronRunning: Promise<unknown> | undefined;
  const cronTick = (): void => {
    cronRunning = cronSweep()
      .catch((error: unknown) => logger.error({ err: error }, `cron sweep failed: ${(error as Error).message}`))
      .finally(() => {
        cronRunning = undefined;
        if (cronTimer) cronTimer = setTimeout(cronTick, options.cronIntervalMs ?? 1000).unref();
      });
  };

  return {
    start() {
      if (timer) return;
      stopping = false;
      timer = setTimeout(tick, options.rescueIntervalMs).unref();
      cronTimer = setTimeout(cronTick, options.cronIntervalMs ?? 1000).unref();
      // The first pass soon after start (as the first sweep's cleanup was), then every intervalMs. Always
      // scheduled: with both defaults at 0 a queue may still keep its jobs for a few days of its own.
      retainTimer = setTimeout(retainTick, options.rescueIntervalMs).unref();
    },
    async stop() {
      stopping = true;
      clearTimeout(timer);
      timer = undefined;
      clearTimeout(cronTimer);
      cronTimer = undefined;
      clearTimeout(retainTimer);
      retainTimer = undefined;
      await running;
      await cronRunning;
      await retainRunning;
    },
    sweep,
    retain,
    tickSchedules: cronSweep,
  };
}

import type pg from 'pg';
import type { JobRegistry } from '../shared/index.js';
import { clockOf } from './clock.js';
import type { JobWaiters } from './jobWaiters.js';
import type { SkipqLogger } from './logger.js';
import type { NotifyHub } from './notify.js';
import { jobCleanup, jobRescueExpired } from './queries/maintenance.js';
import { throttleWindowCleanup } from './queries/schedules.js';
import { tickSchedules, type TickReport } from './schedules.js';

// Same constant in every skipq process: only the holder sweeps.
const MAINTENANCE_LOCK_KEY = 7_301_202_612;
// Cron ticks have a leader of their own, so a long rescue or cleanup never delays a tick.
const CRON_LOCK_KEY = 7_301_202_613;
const RESCUE_BATCH = 1000;
const CLEANUP_BATCH = 5000;
const CLEANUP_EVERY_MS = 60_000;

/** Options of {@link createMaintenance}. */
export interface MaintenanceOptions {
  pool: pg.Pool;
  hub: NotifyHub;
  /** Told of the jobs a rescue failed for good, so their waiters wake. */
  waiters?: JobWaiters;
  rescueIntervalMs: number;
  /** Days to keep completed and cancelled jobs; 0 keeps them forever. */
  retentionDays: number;
  /** Leader changes, rescues and retention at info; a failed sweep at error. */
  logger: SkipqLogger;
  /** The clock leases are judged by (the server's `now` option); absent: the database's. */
  now?: () => Date;
  /** How often the cron leader looks for due ticks. Default 1000. */
  cronIntervalMs?: number;
  /** The registry: defaults (queue, priority, retries, timeout) of schedules' jobs. */
  registry?: JobRegistry | null;
  /** Told what each sweep that held the lock did (metrics). */
  onSweep?(done: { rescued: number; failed: number; deleted: number }): void;
}

/** Background sweeps. `sweep()` runs one at once (tests call it). */
export interface Maintenance {
  start(): void;
  stop(): Promise<void>;
  /** One sweep; answers what it did, or null when another instance holds the lock. */
  sweep(): Promise<{ rescued: number; failed: number; deleted: number } | null>;
  /** One cron sweep: the jobs of due ticks; null when another instance holds the cron lock. */
  tickSchedules(): Promise<TickReport | null>;
}

/**
 * Rescues jobs whose lease expired and deletes old finished jobs. Each sweep
 * takes a transaction-scoped advisory lock, so among many server instances on
 * one database exactly one sweeps at a time, and a crashed holder frees the
 * lock with its connection.
 */
export function createMaintenance(options: MaintenanceOptions): Maintenance {
  const { pool, hub, logger } = options;
  const now = (): number => options.now?.().getTime() ?? Date.now();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let lastCleanup = 0;
  let lastWindowCleanup = 0;
  // Whether the last sweep held the lock: a change is logged once, not every sweep.
  let leader = false;

  const sweep = async (): Promise<{ rescued: number; failed: number; deleted: number } | null> => {
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
      if (!leader) logger.info({ event: 'leader_gained' }, 'maintenance: this instance holds the lock and sweeps (rescue, retention)');
      leader = true;
      const rescued = await jobRescueExpired(client, { limit: RESCUE_BATCH, now: clockOf(options) });
      let deleted = 0;
      if (options.retentionDays > 0 && now() - lastCleanup >= CLEANUP_EVERY_MS) {
        lastCleanup = now();
        deleted = await jobCleanup(client, options.retentionDays, CLEANUP_BATCH);
      }
      await client.query('COMMIT');
      const back = rescued.filter((r) => r.status === 'pending');
      if (back.length > 0) hub.wake(new Set(back.map((r) => r.queue)));
      if (back.length < rescued.length) options.waiters?.finished(rescued.filter((r) => r.status === 'failed').map((r) => r.id));
      if (rescued.length > 0) {
        logger.info({ event: 'rescue', rescued: back.length, failed: rescued.length - back.length }, `rescued ${back.length} job(s) with expired leases, failed ${rescued.length - back.length}`);
      }
      if (deleted > 0) logger.info({ event: 'retention', deleted, retentionDays: options.retentionDays }, `retention: deleted ${deleted} finished job(s) older than ${options.retentionDays} day(s)`);
      options.onSweep?.({ rescued: back.length, failed: rescued.length - back.length, deleted });
      return { rescued: back.length, failed: rescued.length - back.length, deleted };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
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
      timer = setTimeout(tick, options.rescueIntervalMs).unref();
      cronTimer = setTimeout(cronTick, options.cronIntervalMs ?? 1000).unref();
    },
    async stop() {
      clearTimeout(timer);
      timer = undefined;
      clearTimeout(cronTimer);
      cronTimer = undefined;
      await running;
      await cronRunning;
    },
    sweep,
    tickSchedules: cronSweep,
  };
}

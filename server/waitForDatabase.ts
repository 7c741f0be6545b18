import type pg from 'pg';
import { isDatabaseUnavailable } from './errors.js';

/** Options of {@link waitForDatabase}. */
export interface WaitForDatabaseOptions {
  /** Give up after this long (0: one attempt). */
  timeoutMs: number;
  log(message: string): void;
  /** First pause between attempts; doubled after each, up to `maxDelayMs`. Default 250. */
  initialDelayMs?: number;
  /** Default 5000. */
  maxDelayMs?: number;
}

/** Where a connection string points, without its password: `host:port/database`. */
export function describeDatabase(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '5432'}${u.pathname}`;
  } catch {
    return 'the configured database';
  }
}

/**
 * Waits until PostgreSQL answers, retrying with exponential backoff while it is
 * unreachable (not started yet, restarting, still recovering), and logging each
 * attempt. Servers and databases start in any order (compose files, systemd,
 * a reboot); only errors that waiting cannot fix (a wrong password, a missing
 * database) end the wait at once.
 */
export async function waitForDatabase(pool: pg.Pool, target: string, options: WaitForDatabaseOptions): Promise<void> {
  const started = Date.now();
  const deadline = started + options.timeoutMs;
  let delay = options.initialDelayMs ?? 250;
  for (let attempt = 1; ; attempt++) {
    try {
      await pool.query('SELECT 1');
      if (attempt > 1) options.log(`PostgreSQL at ${target} is reachable (attempt ${attempt}, after ${Date.now() - started} ms)`);
      return;
    } catch (error) {
      if (!isDatabaseUnavailable(error)) throw error;
      const reason = (error as Error).message || String((error as { code?: unknown }).code ?? error);
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `PostgreSQL at ${target} was not reachable after ${attempt} attempt${attempt === 1 ? '' : 's'} in ${Math.round((Date.now() - started) / 100) / 10} s ` +
            `(last error: ${reason}); giving up (the wait is SKIPQ_STARTUP_TIMEOUT_MS / --startup-timeout, ${options.timeoutMs} ms)`,
          { cause: error },
        );
      }
      const pause = Math.min(delay, left);
      options.log(`PostgreSQL at ${target} is not reachable (${reason}); attempt ${attempt}, retrying in ${pause} ms (giving up in ${Math.ceil(left / 1000)} s)`);
      await new Promise((resolve) => setTimeout(resolve, pause));
      delay = Math.min(delay * 2, options.maxDelayMs ?? 5000);
    }
  }
}

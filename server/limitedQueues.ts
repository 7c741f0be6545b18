import type { Db } from './db/pool.js';
import { queueLimitedNames } from './queries/queues.js';

/**
 * Which queues hold claims back while their jobs are held (a concurrency
 * limit, keyConcurrency), so that a job of theirs that finishes on this server
 * wakes the claims waiting here at once.
 *
 * Why: a claim that finds such a queue full long-polls, and nothing woke it
 * when a held job finished (completions send no NOTIFY), so it waited for the
 * next poll (pollIntervalMs, 1 s by default). Measured on W3-C100 (one worker
 * of concurrency 1,000 on a queue limited to 100, 10,000 no-op jobs): claims
 * of 250-380 ms in a drain of 700-1,100 ms, each a long-poll that found the
 * queue full and waited for the poll while the worker's own completeMany had
 * already made room.
 *
 * Only these queues: waking every queue's waiters on every completion would
 * cost an empty claim per completion batch to each idle worker of an
 * unlimited queue. Kept in memory, re-read every `refreshMs` and at once after
 * this server configures a queue; a limit set through another server (or
 * SQL) takes effect here within `refreshMs`, and until then its claims wait
 * for the poll as before. The claims waiting on other servers hear of it by a
 * NOTIFY on skipq_jobs per freed queue (leases.ts wakeFreed): one statement
 * per finishing batch of a limited queue, none for the others. Moves made
 * outside the servers' own statements NOTIFY by themselves: the SQL API's
 * finishing functions for a limited queue (20261201001600_sql_moves_wake,
 * whose skipq_notify_freed applies the same test as queueLimitedNames), and
 * the rescuer for every queue it rescued from (maintenance.ts).
 */
export interface LimitedQueues {
  /** No queue is limited (then a finishing move need not look at its rows). */
  readonly empty: boolean;
  /** Of these queues, the limited ones. */
  among(queues: Iterable<string | null>): string[];
  /** Reads the set again now (after queues.configure). */
  refresh(): Promise<void>;
  close(): void;
}

/** Reads the limited queues at once and every `refreshMs` after. */
export function createLimitedQueues(db: Db, options: { refreshMs?: number; log?: (message: string) => void } = {}): LimitedQueues {
  let names: ReadonlySet<string> = new Set();
  const log = options.log ?? (() => {});
  const refresh = async (): Promise<void> => {
    names = new Set(await queueLimitedNames(db));
  };
  const timer = setInterval(() => {
    refresh().catch((error: unknown) => log(`reading the limited queues failed (${(error as Error).message}); keeping the last set`));
  }, options.refreshMs ?? 2000);
  timer.unref();
  refresh().catch(() => {});
  return {
    get empty() {
      return names.size === 0;
    },
    among(queues) {
      if (names.size === 0) return [];
      const found: string[] = [];
      for (const q of queues) if (q !== null && names.has(q) && !found.includes(q)) found.push(q);
      return found;
    },
    refresh,
    close: () => clearInterval(timer),
  };
}

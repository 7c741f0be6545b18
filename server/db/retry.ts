import type pg from 'pg';
import type { Db } from './pool.js';

// Deadlock and serialization failure. PostgreSQL rolled the statement back
// whole, so sending it again cannot apply anything twice.
const RETRY_ONCE = new Set(['40P01', '40001']);

// The pause before the retry, 10-40 ms at random: the transaction that won the
// deadlock was waiting for the rows this statement held; sent again at once,
// the retry could take them back before the winner does and deadlock with it
// a second time (seen in CI under load in test/deadlock.test.ts).
const pauseBeforeRetry = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 30));

/**
 * The pool as the procedures use it: a statement that loses a deadlock or a
 * serialization conflict is sent once more before its error reaches the
 * caller. Only here, where every statement is its own transaction (pool.query
 * autocommits): inside an explicit transaction the whole transaction would
 * have to be retried, so the rescuer's sweep and migrations, which check a
 * client out, are not wrapped. The retry waits 10-40 ms first. Statements lock rows in one global order (the
 * lifecycle migration), so this is a safety net, not how deadlocks are avoided.
 */
export function retryingOnce(pool: pg.Pool): Db {
  const send = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>;
  const query = async (...args: unknown[]): Promise<unknown> => {
    try {
      return await send(...args);
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      if (typeof code === 'string' && RETRY_ONCE.has(code)) {
        await pauseBeforeRetry();
        return send(...args);
      }
      throw error;
    }
  };
  return { query: query as pg.Pool['query'] };
}

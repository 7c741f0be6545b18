import type pg from 'pg';
import type { Db } from './pool.js';

// Deadlock and serialization failure. PostgreSQL rolled the statement back
// whole, so sending it again cannot apply anything twice.
const RETRY_ONCE = new Set(['40P01', '40001']);

/**
 * The pool as the procedures use it: a statement that loses a deadlock or a
 * serialization conflict is sent once more before its error reaches the
 * caller. Only here, where every statement is its own transaction (pool.query
 * autocommits): inside an explicit transaction the whole transaction would
 * have to be retried, so the rescuer's sweep and migrations, which check a
 * client out, are not wrapped. Statements lock rows in one global order (the
 * lifecycle migration), so this is a safety net, not how deadlocks are avoided.
 */
export function retryingOnce(pool: pg.Pool): Db {
  const send = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>;
  const query = async (...args: unknown[]): Promise<unknown> => {
    try {
      return await send(...args);
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      if (typeof code === 'string' && RETRY_ONCE.has(code)) return send(...args);
      throw error;
    }
  };
  return { query: query as pg.Pool['query'] };
}

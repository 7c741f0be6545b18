import type { Db } from '../db/pool.js';
import type { MoveRow } from './row.js';

// The moves people make on jobs (shared/lifecycle.ts: cancel by a producer,
// retry by an admin), through their SQL functions in the lifecycle migration.

/**
 * jobCancelMany: pending, claimed or processing -> cancelled (skipq_cancel).
 * A held job keeps its worker id and attempt, so its holder's next call
 * learns of the cancel. Answers each job that exists, moved or as it is.
 */
export async function jobCancelMany(db: Db, params: { ids: readonly string[]; now: Date | null }): Promise<MoveRow[]> {
  const { rows } = await db.query<MoveRow>({
    name: 'jobCancelMany',
    text: 'SELECT * FROM skipq_cancel($1::text[], $2::timestamptz)',
    values: [params.ids, params.now],
  });
  return rows;
}

/**
 * jobRetryMany: failed or cancelled -> pending, due now, with a fresh retry
 * budget (skipq_retry). The attempt keeps counting, so earlier holders' fences
 * stay stale. Answers each job that exists, moved or as it is.
 */
export async function jobRetryMany(db: Db, params: { ids: readonly string[]; now: Date | null }): Promise<MoveRow[]> {
  const { rows } = await db.query<MoveRow>({
    name: 'jobRetryMany',
    text: 'SELECT * FROM skipq_retry($1::text[], $2::timestamptz)',
    values: [params.ids, params.now],
  });
  return rows;
}

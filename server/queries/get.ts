import type { Db } from '../db/pool.js';
import type { TaskRow } from './row.js';

/** jobGet: one job by id, every column. */
export async function jobGet(db: Db, id: string): Promise<TaskRow | undefined> {
  const { rows } = await db.query<TaskRow>({
    name: 'jobGet',
    text: 'SELECT * FROM task_queue WHERE id = $1::text',
    values: [id],
  });
  return rows[0];
}

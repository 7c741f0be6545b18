import type pg from 'pg';
import type { TaskRow } from '../../server/queries/row.js';

/** Overrides for {@link insertJob}; column names as in task_queue. */
export type JobOverrides = Partial<Omit<TaskRow, 'payload' | 'result' | 'progress'>> & { payload?: unknown; result?: unknown };

/**
 * Inserts one job row directly, for tests that need a job in a given state.
 * @example await insertJob(pool, { status: 'processing', worker_id: 'w1', attempt: 1 })
 */
export async function insertJob(pool: pg.Pool, overrides: JobOverrides = {}): Promise<TaskRow> {
  const held = overrides.status === 'claimed' || overrides.status === 'processing';
  const row = {
    task_type: 'ingestion',
    queue: 'default',
    payload: { chainId: 'konzum', targetDate: '2026-01-23' },
    priority: 0,
    status: 'pending',
    max_retries: 3,
    retry_count: 0,
    attempt: held ? 1 : 0,
    worker_id: held ? 'worker-1' : null,
    lease_expires_at: held ? new Date(Date.now() + 60_000) : null,
    ...overrides,
  } as Record<string, unknown>;
  for (const key of ['payload', 'result', 'progress']) {
    if (key in row && row[key] !== null && row[key] !== undefined) row[key] = JSON.stringify(row[key]);
  }
  const columns = Object.keys(row);
  const { rows } = await pool.query<TaskRow>(
    `INSERT INTO task_queue (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING *`,
    columns.map((c) => row[c]),
  );
  return rows[0] as TaskRow;
}

/** Reads one job row. */
export async function readJob(pool: pg.Pool, id: string): Promise<TaskRow> {
  const { rows } = await pool.query<TaskRow>('SELECT * FROM task_queue WHERE id = $1', [id]);
  if (!rows[0]) throw new Error(`no job ${id}`);
  return rows[0];
}

/** Counts rows, optionally by status. */
export async function countJobs(pool: pg.Pool, status?: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    status ? 'SELECT count(*)::int AS n FROM task_queue WHERE status = $1' : 'SELECT count(*)::int AS n FROM task_queue',
    status ? [status] : [],
  );
  return rows[0]?.n ?? 0;
}

/** Waits until `check` returns true, polling every 20 ms, failing after `timeoutMs`. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

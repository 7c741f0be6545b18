import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { countJobs, insertJob, readJob } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

// The established SQL API must follow the same state machine as the tRPC
// procedures: each case below drives one state through SQL and through tRPC
// and compares the outcome.
describe('SQL functions', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    await t.db.pool.query('DELETE FROM task_queue');
  });

  it('gives two workers claiming at once two disjoint pairs of 4 pending jobs (the two-terminal proof)', async () => {
    for (let i = 0; i < 4; i++) await t.db.pool.query(`SELECT schedule_task('ingestion', $1::jsonb)`, [JSON.stringify({ chainId: `c${i}`, targetDate: '2026-01-23' })]);
    const a = new pg.Client({ connectionString: t.db.url });
    const b = new pg.Client({ connectionString: t.db.url });
    await Promise.all([a.connect(), b.connect()]);
    try {
      // Hold worker-1's transaction open so worker-2 runs while its rows are locked.
      await a.query('BEGIN');
      const first = await a.query<{ id: string }>(`SELECT * FROM claim_tasks('worker-1', ARRAY['ingestion'], 2)`);
      const second = await b.query<{ id: string }>(`SELECT * FROM claim_tasks('worker-2', ARRAY['ingestion'], 2)`);
      await a.query('COMMIT');
      const ids1 = first.rows.map((r) => r.id);
      const ids2 = second.rows.map((r) => r.id);
      expect(ids1).toHaveLength(2);
      expect(ids2).toHaveLength(2);
      expect(new Set([...ids1, ...ids2]).size).toBe(4);
      const { rows } = await t.db.pool.query<{ worker_id: string; n: number }>(`SELECT worker_id, count(*)::int AS n FROM task_queue WHERE status = 'claimed' GROUP BY worker_id ORDER BY worker_id`);
      expect(rows).toEqual([{ worker_id: 'worker-1', n: 2 }, { worker_id: 'worker-2', n: 2 }]);
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  it('never hands one job to two of 8 racing claimers', async () => {
    await t.db.pool.query(`INSERT INTO task_queue (task_type, payload) SELECT 'ingestion', '{}' FROM generate_series(1, 400)`);
    const clients = await Promise.all(Array.from({ length: 8 }, async () => { const c = new pg.Client({ connectionString: t.db.url }); await c.connect(); return c; }));
    try {
      const claimed: string[] = [];
      await Promise.all(clients.map(async (c, w) => {
        for (;;) {
          const { rows } = await c.query<{ id: string }>(`SELECT id FROM claim_tasks($1, NULL, 7)`, [`w${w}`]);
          if (rows.length === 0) return;
          claimed.push(...rows.map((r) => r.id));
        }
      }));
      expect(claimed).toHaveLength(400);
      expect(new Set(claimed).size).toBe(400);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  it('claims by priority, then schedule, and skips jobs not yet due or of other types', async () => {
    const low = await insertJob(t.db.pool, { priority: 1 });
    const high = await insertJob(t.db.pool, { priority: 9 });
    await insertJob(t.db.pool, { priority: 10, scheduled_for: new Date(Date.now() + 60_000) });
    await insertJob(t.db.pool, { priority: 10, task_type: 'other' });
    const { rows } = await t.db.pool.query<{ id: string }>(`SELECT id FROM claim_tasks('w', ARRAY['ingestion'], 1)`);
    expect(rows.map((r) => r.id)).toEqual([high.id]);
    const next = await t.db.pool.query<{ id: string }>(`SELECT id FROM claim_tasks('w', ARRAY['ingestion'], 5)`);
    expect(next.rows.map((r) => r.id)).toEqual([low.id]);
  });

  it('schedule_task wakes a long-polling claim on the server through NOTIFY', async () => {
    const started = Date.now();
    const claim = t.trpc.worker.claim.mutate({ workerId: 'w', waitMs: 5000 });
    await new Promise((r) => setTimeout(r, 150));
    await t.db.pool.query(`SELECT schedule_task('ingestion', '{"chainId":"k"}'::jsonb, 3)`);
    const { jobs } = await claim;
    expect(jobs).toHaveLength(1);
    expect(jobs[0]?.priority).toBe(3);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('complete_task and worker.complete agree: held jobs complete, others do not', async () => {
    for (const status of ['claimed', 'processing'] as const) {
      const viaSql = await insertJob(t.db.pool, { status });
      const viaApi = await insertJob(t.db.pool, { status });
      const sql = await t.db.pool.query<{ ok: boolean }>(`SELECT complete_task($1, '{"rows":1}') AS ok`, [viaSql.id]);
      await t.trpc.worker.complete.mutate({ workerId: 'worker-1', id: viaApi.id, attempt: 1, result: { rows: 1 } });
      expect(sql.rows[0]?.ok).toBe(true);
      for (const id of [viaSql.id, viaApi.id]) {
        const row = await readJob(t.db.pool, id);
        expect(row.status).toBe('completed');
        expect(row.result).toEqual({ rows: 1 });
        expect(row.completed_at).toBeInstanceOf(Date);
      }
    }
    // ended_by says who ended the attempt: a job completed by this same worker's
    // own complete of this attempt is an idempotent repeat; one that complete_task
    // completed is not (that worker's result was not the one stored), nor are the rest.
    const states = [
      ['pending', null, 'LEASE_LOST'],
      ['completed', 'complete', 'ok'],
      ['completed', 'complete_task', 'LEASE_LOST'],
      ['failed', 'fail', 'LEASE_LOST'],
      ['cancelled', 'cancel', 'JOB_CANCELLED'],
    ] as const;
    for (const [status, ended_by, expected] of states) {
      const job = await insertJob(t.db.pool, { status, attempt: 1, worker_id: 'worker-1', ended_by });
      const sql = await t.db.pool.query<{ ok: boolean }>(`SELECT complete_task($1) AS ok`, [job.id]);
      expect(sql.rows[0]?.ok, status).toBe(false);
      const api = await t.trpc.worker.complete.mutate({ workerId: 'worker-1', id: job.id, attempt: 1 }).then(() => 'ok', (e: { data?: { code?: string } }) => e.data?.code);
      expect(api, `${status} by ${ended_by}`).toBe(expected);
      expect((await readJob(t.db.pool, job.id)).status).toBe(status);
    }
  });

  it('fail_task and worker.fail agree on retry with linear 60 s backoff, then failed', async () => {
    const viaSql = await insertJob(t.db.pool, { status: 'processing', max_retries: 1 });
    const viaApi = await insertJob(t.db.pool, { status: 'processing', max_retries: 1 });
    const retried = await t.db.pool.query<{ again: boolean }>(`SELECT fail_task($1, 'boom') AS again`, [viaSql.id]);
    const api = await t.trpc.worker.fail.mutate({ workerId: 'worker-1', id: viaApi.id, attempt: 1, error: 'boom' });
    expect(retried.rows[0]?.again).toBe(true);
    expect(api.status).toBe('pending');
    for (const id of [viaSql.id, viaApi.id]) {
      const row = await readJob(t.db.pool, id);
      expect(row).toMatchObject({ status: 'pending', retry_count: 1, error_message: 'boom' });
      const delay = row.scheduled_for.getTime() - row.updated_at.getTime();
      expect(delay).toBeGreaterThanOrEqual(59_000);
      expect(delay).toBeLessThanOrEqual(61_000);
    }
    // Second failure: retries spent.
    await t.db.pool.query(`UPDATE task_queue SET status = 'processing', attempt = 2, lease_expires_at = now() + interval '1 minute'`);
    const final = await t.db.pool.query<{ again: boolean }>(`SELECT fail_task($1, 'boom 2') AS again`, [viaSql.id]);
    const apiFinal = await t.trpc.worker.fail.mutate({ workerId: 'worker-1', id: viaApi.id, attempt: 2, error: 'boom 2' });
    expect(final.rows[0]?.again).toBe(false);
    expect(apiFinal.status).toBe('failed');
    for (const id of [viaSql.id, viaApi.id]) {
      expect(await readJob(t.db.pool, id)).toMatchObject({ status: 'failed', retry_count: 1, error_message: 'boom 2' });
    }
    // retry = false fails at once in both.
    const a = await insertJob(t.db.pool, { status: 'processing' });
    const b = await insertJob(t.db.pool, { status: 'processing' });
    await t.db.pool.query(`SELECT fail_task($1, 'bad input', false)`, [a.id]);
    await t.trpc.worker.fail.mutate({ workerId: 'worker-1', id: b.id, attempt: 1, error: 'bad input', retry: false });
    expect((await readJob(t.db.pool, a.id)).status).toBe('failed');
    expect((await readJob(t.db.pool, b.id)).status).toBe('failed');
  });

  it('schedule_task inserts a pending job the API can read, with its defaults', async () => {
    const at = new Date(Date.now() + 3_600_000);
    const { rows } = await t.db.pool.query<{ id: string }>(`SELECT schedule_task('ingestion', '{"chainId":"konzum"}', 5, $1, 7) AS id`, [at]);
    const job = await t.trpc.jobs.get.query({ id: rows[0]?.id as string });
    expect(job).toMatchObject({ status: 'pending', priority: 5, maxRetries: 7, queue: 'default', type: 'ingestion', payload: { chainId: 'konzum' } });
    expect(job.scheduledFor.getTime()).toBe(at.getTime());
    await expect(t.db.pool.query(`SELECT schedule_task('ingestion', '{}', 11)`)).rejects.toThrow(/priority/);
  });

  it('cleanup_old_tasks deletes old completed and cancelled jobs only', async () => {
    const old = new Date(Date.now() - 10 * 86_400_000);
    await insertJob(t.db.pool, { status: 'completed', completed_at: old });
    await insertJob(t.db.pool, { status: 'cancelled', updated_at: old });
    await insertJob(t.db.pool, { status: 'failed', failed_at: old, updated_at: old });
    await insertJob(t.db.pool, { status: 'completed', completed_at: new Date() });
    await insertJob(t.db.pool, { status: 'pending', created_at: old });
    const { rows } = await t.db.pool.query<{ n: number }>('SELECT cleanup_old_tasks(7) AS n');
    expect(rows[0]?.n).toBe(2);
    expect(await countJobs(t.db.pool)).toBe(3);
  });
});

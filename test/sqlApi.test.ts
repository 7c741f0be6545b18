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
      const api = await t.trpc.worker.complete.mutate({ workerId: 'worker-1', id: job.id, attempt: 1 }).then(() => 'ok', (e: { data?: { skipqCode?: string } }) => e.data?.skipqCode);
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

  // Each call the HTTP API would refuse: [what, statement, parameters, the message it must raise].
  const BAD_CALLS: Array<[string, string, unknown[], RegExp]> = [
    ['a 5 MB payload', `SELECT schedule_task('ingestion', $1::jsonb)`, [JSON.stringify({ s: 'x'.repeat(5 * 1024 * 1024) })], /^schedule_task: payload is 5242\d{3} bytes of JSON; the limit is 1048576 \(1 MiB\)$/],
    ['a payload 1 byte over 1 MiB', `SELECT schedule_task('ingestion', to_jsonb(repeat('x', 1048575)))`, [], /^schedule_task: payload is 1048577 bytes of JSON; the limit is 1048576/],
    ['a payload nested 65 levels', `SELECT schedule_task('ingestion', $1::jsonb)`, [`${'['.repeat(65)}1${']'.repeat(65)}`], /^schedule_task: payload is nested deeper than 64 levels$/],
    ['a JSON null payload', `SELECT schedule_task('ingestion', 'null')`, [], /^schedule_task: payload is required and must not be JSON null$/],
    ['a SQL NULL payload', `SELECT schedule_task('ingestion', NULL)`, [], /^schedule_task: payload is required/],
    ['the type name "bad type; DROP"', `SELECT schedule_task('bad type; DROP', '{}')`, [], /^schedule_task: task_type must start with a letter or digit and use only letters, digits, .*at most 128 characters\); got 'bad type; DROP'$/],
    ['a NULL type', `SELECT schedule_task(NULL, '{}')`, [], /^schedule_task: task_type must .*; got NULL$/],
    ['an empty type', `SELECT schedule_task('', '{}')`, [], /^schedule_task: task_type must/],
    ['a type of 129 characters', `SELECT schedule_task(repeat('a', 129), '{}')`, [], /^schedule_task: task_type must .*at most 128 characters/],
    ['a unicode type', `SELECT schedule_task('čevapi', '{}')`, [], /^schedule_task: task_type must/],
    ['a type with a newline at its end', `SELECT schedule_task(E'ingestion\n', '{}')`, [], /^schedule_task: task_type must/],
    ['priority 11', `SELECT schedule_task('ingestion', '{}', 11)`, [], /^schedule_task: priority must be between 0 and 10; got 11$/],
    ['priority -1', `SELECT schedule_task('ingestion', '{}', -1)`, [], /^schedule_task: priority must be between 0 and 10; got -1$/],
    ['max_retries -1', `SELECT schedule_task('ingestion', '{}', 0, now(), -1)`, [], /^schedule_task: max_retries must be between 0 and 1000; got -1$/],
    ['max_retries 1001', `SELECT schedule_task('ingestion', '{}', 0, now(), 1001)`, [], /^schedule_task: max_retries must be between 0 and 1000; got 1001$/],
    ['scheduled_for 11 years ahead', `SELECT schedule_task('ingestion', '{}', 0, now() + interval '11 years')`, [], /^schedule_task: scheduled_for must be between 1970 and 10 years from now; got /],
    ['scheduled_for infinity', `SELECT schedule_task('ingestion', '{}', 0, 'infinity')`, [], /^schedule_task: scheduled_for must be between 1970 and 10 years from now; got infinity$/],
    ['scheduled_for before 1970', `SELECT schedule_task('ingestion', '{}', 0, '1969-12-31 23:59:59+00')`, [], /^schedule_task: scheduled_for must be between 1970/],
    ['cleanup_old_tasks(-1)', `SELECT cleanup_old_tasks(-1)`, [], /^cleanup_old_tasks: days_to_keep must be between 1 and 36500; got -1$/],
    ['cleanup_old_tasks(0)', `SELECT cleanup_old_tasks(0)`, [], /^cleanup_old_tasks: days_to_keep must be between 1 and 36500; got 0$/],
    ['cleanup_old_tasks(NULL)', `SELECT cleanup_old_tasks(NULL)`, [], /^cleanup_old_tasks: days_to_keep must be between 1 and 36500; got NULL$/],
    ['cleanup_old_tasks(36501)', `SELECT cleanup_old_tasks(36501)`, [], /^cleanup_old_tasks: days_to_keep must be between 1 and 36500; got 36501$/],
    ['claim_tasks(NULL, ...)', `SELECT * FROM claim_tasks(NULL, NULL, 1)`, [], /^claim_tasks: worker_id is required, 1 to 200 characters; got NULL$/],
    ['an empty worker id', `SELECT * FROM claim_tasks('', NULL, 1)`, [], /^claim_tasks: worker_id is required, 1 to 200 characters; got 0 characters$/],
    ['a worker id of 201 characters', `SELECT * FROM claim_tasks(repeat('w', 201), NULL, 1)`, [], /^claim_tasks: worker_id is required, 1 to 200 characters; got 201 characters$/],
    ['max_tasks 0', `SELECT * FROM claim_tasks('w', NULL, 0)`, [], /^claim_tasks: max_tasks must be between 1 and 1000; got 0$/],
    ['max_tasks 1001', `SELECT * FROM claim_tasks('w', NULL, 1001)`, [], /^claim_tasks: max_tasks must be between 1 and 1000; got 1001$/],
    ['max_tasks NULL', `SELECT * FROM claim_tasks('w', NULL, NULL)`, [], /^claim_tasks: max_tasks must be between 1 and 1000; got NULL$/],
    ['an empty task_types array', `SELECT * FROM claim_tasks('w', ARRAY[]::text[], 1)`, [], /^claim_tasks: task_types must be NULL \(every type\) or 1 to 100 job type names/],
    ['a task type that is not a name', `SELECT * FROM claim_tasks('w', ARRAY['ingestion', 'bad type'], 1)`, [], /^claim_tasks: task_types must be/],
    ['a NULL task type', `SELECT * FROM claim_tasks('w', ARRAY['ingestion', NULL], 1)`, [], /^claim_tasks: task_types must be/],
    ['101 task types', `SELECT * FROM claim_tasks('w', (SELECT array_agg('t' || i) FROM generate_series(1, 101) AS i), 1)`, [], /^claim_tasks: task_types must be/],
  ];

  it.each(BAD_CALLS)('refuses %s with a clear message (22023) and writes nothing', async (_what, sql, params, message) => {
    const old = new Date(Date.now() - 10 * 86_400_000);
    await insertJob(t.db.pool, { status: 'completed', completed_at: old });
    await insertJob(t.db.pool, { status: 'completed', completed_at: new Date() });
    await insertJob(t.db.pool, { status: 'pending' });
    const before = (await t.db.pool.query('SELECT * FROM task_queue ORDER BY id')).rows;
    const error = await t.db.pool.query(sql, params).then(() => undefined, (e: unknown) => e as { code?: string; message: string });
    expect(error, 'the call succeeded').toBeDefined();
    expect(error?.message).toMatch(message);
    expect(error?.code).toBe('22023');
    expect((await t.db.pool.query('SELECT * FROM task_queue ORDER BY id')).rows).toEqual(before);
  });

  it('takes what the HTTP API takes, up to each limit, and NULL options still mean the defaults', async () => {
    const at = new Date(Date.now() + 9 * 365 * 86_400_000);
    const deep = `${'['.repeat(64)}1${']'.repeat(64)}`;
    const calls = [
      [`SELECT schedule_task('a.b:c_d-9', $1::jsonb, 10, $2, 1000) AS id`, [deep, at]],
      [`SELECT schedule_task('ingestion', to_jsonb(repeat('x', 1048574)), 0, '1970-01-01 00:00:00+00', 0) AS id`, []],
      [`SELECT schedule_task($1, 'false', NULL, NULL, NULL) AS id`, ['t'.repeat(128)]],
      [`SELECT schedule_task('ingestion', '{"chainId":"konzum"}') AS id`, []],
    ] as const;
    const ids: string[] = [];
    for (const [sql, params] of calls) ids.push(((await t.db.pool.query<{ id: string }>(sql, [...params])).rows[0] as { id: string }).id);
    const [a, b, c, d] = await Promise.all(ids.map((id) => readJob(t.db.pool, id)));
    expect(a).toMatchObject({ task_type: 'a.b:c_d-9', priority: 10, max_retries: 1000, queue: 'default', payload: JSON.parse(deep) });
    expect(a?.scheduled_for.getTime()).toBe(at.getTime());
    expect(b).toMatchObject({ priority: 0, max_retries: 0, scheduled_for: new Date(0) });
    expect(c).toMatchObject({ payload: false, priority: 0, max_retries: 3, status: 'pending' });
    expect(d).toMatchObject({ payload: { chainId: 'konzum' }, priority: 0, max_retries: 3 });
    // claim_tasks at its limits; the oldest job (scheduled at 1970) comes first.
    const claimed = await t.db.pool.query<{ id: string }>(`SELECT id FROM claim_tasks($1, ARRAY['ingestion'], 1000)`, ['w'.repeat(200)]);
    expect(claimed.rows.map((r) => r.id)).toEqual([b?.id, d?.id]);
    expect((await t.db.pool.query(`SELECT * FROM claim_tasks('w', NULL, 1)`)).rows).toHaveLength(1);
    expect((await t.db.pool.query<{ n: number }>('SELECT cleanup_old_tasks(36500) AS n')).rows[0]?.n).toBe(0);
    expect((await t.db.pool.query<{ n: number }>('SELECT cleanup_old_tasks() AS n')).rows[0]?.n).toBe(0);
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

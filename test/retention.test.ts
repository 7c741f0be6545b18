import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runRetentionPass, RETENTION_TUNING, type RetentionTuning } from '../server/retention.js';
import type { TaskRow } from '../server/queries/row.js';
import { countJobs, insertJob, type JobOverrides } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const DAY = 86_400_000;
// Far from the real date, so nothing passes only because the test's clock and the database's agree.
const START = new Date('2031-03-10T12:00:00Z');

describe('retention: finished jobs are deleted when due, in bounded batches', () => {
  let t: TestServer;
  let clock = START;
  const ago = (days: number) => new Date(clock.getTime() - days * DAY);
  /** Inserts a job in a given state, finished `days` ago (by the column retention reads for that status). */
  const finished = (status: 'completed' | 'cancelled' | 'failed', days: number, overrides: JobOverrides = {}) =>
    insertJob(t.db.pool, {
      status,
      created_at: ago(days + 1),
      updated_at: ago(days),
      ...(status === 'completed' ? { completed_at: ago(days) } : {}),
      ...(status === 'failed' ? { failed_at: ago(days), error_message: 'boom' } : {}),
      ...overrides,
    });
  const ids = async (): Promise<string[]> => (await t.db.pool.query<{ id: string }>('SELECT id FROM task_queue ORDER BY id')).rows.map((r) => r.id);
  const sorted = (rows: TaskRow[]) => rows.map((r) => r.id).sort();

  beforeAll(async () => {
    t = await startTestServer({ now: () => clock, retentionDays: 7, failedRetentionDays: 30, retention: { batchSize: 3, pauseMs: 0 } });
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    clock = START;
    await t.db.pool.query('TRUNCATE task_queue, queues, queue_keys, queue_releases');
  });

  it('removes completed and cancelled jobs after 7 days and failed ones after 30; live and recent jobs stay', async () => {
    const due = [await finished('completed', 8), await finished('cancelled', 8), await finished('failed', 31), await finished('completed', 400)];
    const kept = [
      await finished('completed', 6),
      await finished('cancelled', 6.9),
      await finished('failed', 8),
      await finished('failed', 29),
      // Live jobs, however old, are never touched.
      await insertJob(t.db.pool, { status: 'pending', created_at: ago(90), updated_at: ago(90), scheduled_for: ago(90) }),
      await insertJob(t.db.pool, { status: 'claimed', updated_at: ago(90), lease_expires_at: ago(80) }),
      await insertJob(t.db.pool, { status: 'processing', updated_at: ago(90), lease_expires_at: ago(80) }),
    ];
    const report = await t.server.maintenance.retain();
    expect(report).toMatchObject({ deleted: 3, deletedFailed: 1, complete: true });
    expect(await ids()).toEqual(sorted(kept));
    expect(due.every((d) => !kept.includes(d))).toBe(true);

    // Time moves on: what was recent becomes due, by the server's clock.
    clock = new Date(clock.getTime() + 2 * DAY);
    expect(await t.server.maintenance.retain()).toMatchObject({ deleted: 2, deletedFailed: 1 });
    expect(await countJobs(t.db.pool)).toBe(4);
    expect(await countJobs(t.db.pool, 'failed')).toBe(1);
  });

  it("keeps a flow's finished children while their parent is live (its handler may read them), and deletes them once it finished", async () => {
    const parent = await insertJob(t.db.pool, { status: 'pending', created_at: ago(40), updated_at: ago(40), scheduled_for: ago(1) });
    const children = [
      await finished('completed', 20, { parent_id: parent.id }),
      await finished('failed', 40, { parent_id: parent.id }),
      await finished('cancelled', 20, { parent_id: parent.id }),
    ];
    const unrelated = await finished('completed', 20);
    expect(await t.server.maintenance.retain()).toMatchObject({ deleted: 1, deletedFailed: 0 });
    expect(await ids()).toEqual(sorted([parent, ...children]));

    await t.db.pool.query(`UPDATE task_queue SET status = 'completed', completed_at = $2, updated_at = $2 WHERE id = $1`, [parent.id, ago(0)]);
    expect(await t.server.maintenance.retain()).toMatchObject({ deleted: 2, deletedFailed: 1 });
    expect(await ids()).toEqual([parent.id]);
    expect(children.concat(unrelated).map((c) => c.id)).not.toContain(parent.id);
  });

  it('per-queue overrides: a queue keeps its jobs shorter, longer or forever; null goes back to the server default', async () => {
    await t.trpc.queues.configure.mutate({ queue: 'short', retentionDays: 1, failedRetentionDays: 2 });
    await t.trpc.queues.configure.mutate({ queue: 'long', retentionDays: 365 });
    await t.trpc.queues.configure.mutate({ queue: 'forever', retentionDays: 0, failedRetentionDays: 0 });
    const short = [await finished('completed', 1.5, { queue: 'short' }), await finished('failed', 3, { queue: 'short' })];
    const shortKept = [await finished('completed', 0.5, { queue: 'short' }), await finished('failed', 1, { queue: 'short' })];
    const longKept = [await finished('completed', 100, { queue: 'long' }), await finished('failed', 20, { queue: 'long' })];
    const longDue = [await finished('failed', 31, { queue: 'long' })];
    const forever = [await finished('completed', 5000, { queue: 'forever' }), await finished('failed', 5000, { queue: 'forever' })];
    const plainDue = [await finished('completed', 8, { queue: 'plain' })];
    expect(await t.server.maintenance.retain()).toMatchObject({ deleted: 2, deletedFailed: 2, complete: true });
    expect(await ids()).toEqual(sorted([...shortKept, ...longKept, ...forever]));
    expect([...short, ...longDue, ...plainDue]).toHaveLength(4);

    // queues.list shows each queue's own setting (null: the server's default).
    const { queues } = await t.trpc.queues.list.query({});
    expect(queues.map((q) => [q.name, q.retentionDays, q.failedRetentionDays])).toEqual([
      ['forever', 0, 0],
      ['long', 365, null],
      ['short', 1, 2],
    ]);
    // Cleared, the queue follows the server's 7 days again; other settings are kept.
    expect(await t.trpc.queues.configure.mutate({ queue: 'long', retentionDays: null })).toMatchObject({ retentionDays: null, failedRetentionDays: null, paused: false });
    expect(await t.server.maintenance.retain()).toMatchObject({ deleted: 1, deletedFailed: 0 });
    expect(await ids()).toEqual(sorted([...shortKept, longKept[1] as TaskRow, ...forever]));
    // Out of range is refused.
    await expect(t.trpc.queues.configure.mutate({ queue: 'x', retentionDays: -1 })).rejects.toThrow();
    await expect(t.trpc.queues.configure.mutate({ queue: 'x', failedRetentionDays: 36_501 })).rejects.toThrow();
  });

  it('deletes in statements of at most batchSize rows, and at most maxPerPass rows a pass', async () => {
    await t.db.pool.query(
      `INSERT INTO task_queue (task_type, payload, queue, status, completed_at, updated_at)
       SELECT 'x', '{}', 'q' || (g % 2), 'completed', $1::timestamptz - g * interval '1 minute', $1::timestamptz
       FROM generate_series(1, 11) AS g`,
      [ago(10)],
    );
    await finished('failed', 40, { queue: 'q0' });
    // Every statement the pass sends, with what each DELETE batch removed.
    const batches: number[] = [];
    const froms: Array<Date | null> = [];
    const spy = {
      query: async (config: pg.QueryConfig) => {
        const result = await t.db.pool.query(config);
        if (config.name === 'jobRetentionBatch') batches.push((result.rows[0] as { deleted: number }).deleted);
        if (config.name === 'jobRetentionBatch') froms.push((config.values as unknown[])[5] as Date | null);
        return result;
      },
    } as unknown as pg.Pool;
    const tuning: RetentionTuning = { ...RETENTION_TUNING, batchSize: 3, pauseMs: 0, maxPerPass: 10 };
    const policy = { retentionDays: 7, failedRetentionDays: 30 };
    const first = await runRetentionPass(spy, { policy, tuning, now: () => clock });
    // q0: 6 completed rows (3 + 3, then an empty look), then its failed one; q1: 3, then the cap.
    // q0: its 5 completed rows (3, then 2: nothing more due), then its failed one; q1: 3 of its 6, then 1 to the cap of 10.
    expect(first).toEqual({ deleted: 9, deletedFailed: 1, batches: 5, complete: false, byQueue: { q0: { deleted: 5, deletedFailed: 1 }, q1: { deleted: 4, deletedFailed: 0 } } });
    expect(batches).toEqual([3, 2, 1, 3, 1]);
    // Each batch after a full one walks on from the newest finish time the one before reached.
    expect(froms.map((f) => f !== null)).toEqual([false, true, false, false, true]);
    const second = await runRetentionPass(spy, { policy, tuning, now: () => clock });
    expect(second).toEqual({ deleted: 2, deletedFailed: 0, batches: 2, complete: true, byQueue: { q1: { deleted: 2, deletedFailed: 0 } } });
    expect(Math.max(...batches)).toBeLessThanOrEqual(3);
    expect(await countJobs(t.db.pool)).toBe(0);
  });

  it('claims and completions go on during a pass: nothing lost, recent jobs kept, queue counters right', async () => {
    await t.trpc.queues.configure.mutate({ queue: 'work', concurrency: 5 });
    const old = 20_000;
    await t.db.pool.query(
      `INSERT INTO task_queue (task_type, payload, queue, status, completed_at, updated_at)
       SELECT 'x', '{}', 'old', 'completed', $1::timestamptz - g * interval '1 second', $1::timestamptz
       FROM generate_series(1, $2::int) AS g`,
      [ago(30), old],
    );
    // A counted held job of a limited queue, with an old update: held, so never deleted.
    const held = await insertJob(t.db.pool, { queue: 'work', status: 'processing', updated_at: ago(90), lease_expires_at: new Date(clock.getTime() + DAY) });
    await t.db.pool.query(`UPDATE task_queue SET counted = true WHERE id = $1`, [held.id]);
    await t.db.pool.query(`UPDATE queues SET held = 1 WHERE name = 'work'`);
    const { jobs: enqueued } = await t.trpc.jobs.enqueueMany.mutate({ jobs: Array.from({ length: 200 }, (_, n) => ({ type: 'work', payload: { n }, queue: 'work' })) });

    let passes = 0;
    let deleted = 0;
    let draining = true;
    const sweeping = (async () => {
      // Passes of 500-row batches until the backlog is gone, while the worker below drains its queue.
      const pass = { policy: { retentionDays: 7, failedRetentionDays: 30 }, tuning: { ...RETENTION_TUNING, batchSize: 500, pauseMs: 2, maxPerPass: 5000 }, now: () => clock };
      for (;;) {
        const report = await runRetentionPass(t.db.pool, pass);
        passes++;
        deleted += report.deleted;
        if (report.complete && !draining) return;
        if (report.complete && deleted >= old) await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const completed = new Set<string>();
    // How much of the backlog was gone when the worker's first and last completions came back.
    const seen: number[] = [];
    while (completed.size < enqueued.length) {
      const { jobs } = await t.trpc.worker.claim.mutate({ workerId: 'w', queues: ['work'], limit: 10, waitMs: 100 });
      if (jobs.length === 0) continue;
      const { results } = await t.trpc.worker.completeMany.mutate({ workerId: 'w', jobs: jobs.map((j) => ({ id: j.id, attempt: j.attempt, result: j.id })) });
      for (const r of results) if (r.outcome === 'completed') completed.add(r.id);
      seen.push(deleted);
    }
    draining = false;
    await sweeping;

    expect(deleted).toBe(old);
    expect(passes).toBeGreaterThan(1);
    // The claims really ran during the passes, not before or after them.
    expect(seen[0]).toBeLessThan(old);
    expect(seen.at(-1)).toBeGreaterThan(0);
    // Every job the worker completed is still there (finished just now), and so is the held one.
    const { rows } = await t.db.pool.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM task_queue GROUP BY status ORDER BY status`);
    expect(rows).toEqual([
      { status: 'completed', n: 200 },
      { status: 'processing', n: 1 },
    ]);
    expect((await t.db.pool.query('SELECT status FROM task_queue WHERE id = $1', [held.id])).rows).toEqual([{ status: 'processing' }]);
    // The queue's counter, its ledger folded, says exactly the one held job; deleting finished rows wrote no ledger row.
    const counter = await t.db.pool.query<{ n: number }>(
      `SELECT (q.held - skipq_released(q.name))::int AS n FROM queues q WHERE q.name = 'work'`,
    );
    expect(counter.rows[0]?.n).toBe(1);
    expect((await t.db.pool.query(`SELECT count(*)::int AS n FROM queue_releases WHERE queue = 'old'`)).rows[0]).toEqual({ n: 0 });
  });

  it('counts what each pass deletes in the metrics, per queue and kind, with when the last pass ended', async () => {
    /** The value of one sample of the scrape, or null when it is absent. */
    const sample = (text: string, name: string): number | null => {
      const line = text.split('\n').find((l) => l.startsWith(`${name} `));
      return line === undefined ? null : Number(line.slice(name.length + 1));
    };
    const fresh = await t.server.metrics.scrape();
    const deletedBefore = (queue: string, kind: string) => sample(fresh, `skipq_retention_deleted_total{queue="${queue}",kind="${kind}"}`) ?? 0;
    const alphaBefore = deletedBefore('alpha', 'finished');
    await finished('completed', 8, { queue: 'alpha' });
    await finished('cancelled', 9, { queue: 'alpha' });
    await finished('failed', 31, { queue: 'alpha' });
    await finished('completed', 10, { queue: 'beta' });
    await finished('completed', 1, { queue: 'beta' });
    const startedAt = Date.now();
    expect(await t.server.maintenance.retain()).toMatchObject({ deleted: 3, deletedFailed: 1 });
    const text = await t.server.metrics.scrape();
    expect(sample(text, 'skipq_retention_deleted_total{queue="alpha",kind="finished"}')).toBe(alphaBefore + 2);
    expect(sample(text, 'skipq_retention_deleted_total{queue="alpha",kind="failed"}')).toBe(deletedBefore('alpha', 'failed') + 1);
    expect(sample(text, 'skipq_retention_deleted_total{queue="beta",kind="finished"}')).toBe(deletedBefore('beta', 'finished') + 1);
    expect(sample(text, 'skipq_retention_deleted_total{queue="beta",kind="failed"}')).toBe(null);
    expect(sample(text, 'skipq_retention_last_run_deleted')).toBe(4);
    expect(sample(text, 'skipq_retention_last_run_complete')).toBe(1);
    const lastRun = sample(text, 'skipq_retention_last_run_timestamp_seconds') as number;
    expect(lastRun * 1000).toBeGreaterThanOrEqual(startedAt - 1000);
    expect(lastRun * 1000).toBeLessThanOrEqual(Date.now() + 1000);

    // A pass with nothing due: the counters stay, the last run says 0 and moves on.
    expect(await t.server.maintenance.retain()).toMatchObject({ deleted: 0, deletedFailed: 0 });
    const after = await t.server.metrics.scrape();
    expect(sample(after, 'skipq_retention_deleted_total{queue="alpha",kind="finished"}')).toBe(alphaBefore + 2);
    expect(sample(after, 'skipq_retention_last_run_deleted')).toBe(0);
    expect(sample(after, 'skipq_retention_last_run_timestamp_seconds')).toBeGreaterThanOrEqual(lastRun);
  });

  it('runs on one instance at a time: while another holds the retention lock a pass answers null', async () => {
    await finished('completed', 8);
    const other = await t.db.pool.connect();
    try {
      await other.query('SELECT pg_advisory_lock(7301202614)');
      expect(await t.server.maintenance.retain()).toBeNull();
      expect(await countJobs(t.db.pool)).toBe(1);
    } finally {
      await other.query('SELECT pg_advisory_unlock(7301202614)');
      other.release();
    }
    expect(await t.server.maintenance.retain()).toMatchObject({ deleted: 1 });
    // The lock went back with the pass: nothing holds it now.
    const { rows } = await t.db.pool.query(
      `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = (7301202614 & 4294967295)::oid AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    expect(rows[0]).toEqual({ n: 0 });
  });

  it('walks the retention indexes in order, with stale statistics and after ANALYZE: no sequential scan, no sort', async () => {
    await t.db.pool.query(
      `INSERT INTO task_queue (task_type, payload, queue, status, completed_at, failed_at, updated_at)
       SELECT 'x', '{}', 'q' || (g % 4), CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'completed' END,
              CASE WHEN g % 10 = 0 THEN NULL ELSE $1::timestamptz - g * interval '1 minute' END,
              CASE WHEN g % 10 = 0 THEN $1::timestamptz - g * interval '1 day' END, $1::timestamptz
       FROM generate_series(1, 30000) AS g`,
      [ago(8)],
    );
    const client = await t.db.pool.connect();
    try {
      const plans = async (): Promise<string> => {
        const logs: string[] = [];
        const onNotice = (msg: { message?: string }) => logs.push(msg.message ?? '');
        client.on('notice', onNotice);
        await client.query("LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; SET client_min_messages = log");
        await client.query(`SELECT * FROM skipq_retention_batch('q1', false, $1::timestamptz, 100)`, [ago(7)]);
        await client.query(`SELECT * FROM skipq_retention_batch('q2', true, $1::timestamptz, 100, $2::timestamptz)`, [ago(7), ago(400)]);
        await client.query('SELECT * FROM skipq_retention_queues()');
        await client.query('RESET client_min_messages');
        client.off('notice', onNotice);
        return logs.join('\n');
      };
      for (const when of ['stale', 'analyzed']) {
        if (when === 'analyzed') await client.query('ANALYZE task_queue');
        const plan = await plans();
        expect(plan, when).toContain('Index Scan using task_queue_finished_idx');
        expect(plan, when).toContain('Index Scan using task_queue_failed_idx');
        expect(plan, when).toMatch(/Index Only Scan using task_queue_finished_idx/);
        expect(plan, when).toContain('Index Scan using task_queue_pkey');
        expect(plan, when).not.toMatch(/Seq Scan on task_queue|Bitmap Heap Scan on task_queue|Sort Key: \(?COALESCE/);
      }
    } finally {
      client.release();
    }
  });
});

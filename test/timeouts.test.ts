import pg from 'pg';
import { z } from 'zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { defineJobs } from '../shared/index.js';
import { insertJob, readJob } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const jobs = defineJobs({
  ingestion: { payload: z.unknown() },
  bursty: { payload: z.unknown(), backoff: { kind: 'exponential', delayMs: 1000, factor: 2 } },
});

const START = new Date('2031-03-01T12:00:00.000Z');
const at = (ms: number) => new Date(START.getTime() + ms);

// Leases, timeouts, backoff and the rescuer, tested by moving the server's
// clock (createQueueServer({ now })) and the database's (SET skipq.now)
// instead of sleeping.
describe('time: leases, timeouts and backoff', () => {
  let t: TestServer;
  let clock = START;
  const travel = (ms: number) => {
    clock = at(ms);
  };
  beforeAll(async () => {
    t = await startTestServer({ jobs, now: () => clock });
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    await t.db.pool.query('DELETE FROM task_queue');
    clock = START;
  });

  const claimOne = async (leaseMs = 30_000) => {
    const { jobs: claimed, leaseExpiresAt } = await t.trpc.worker.claim.mutate({ workerId: 'w1', leaseMs });
    expect(claimed).toHaveLength(1);
    return { job: claimed[0]!, leaseExpiresAt };
  };

  it("caps a claim's lease at the job's timeout, never extends a heartbeat past it, and rescues it with TIMEOUT", async () => {
    const row = await insertJob(t.db.pool, { timeout_ms: 10_000 });
    const { job, leaseExpiresAt } = await claimOne(30_000);
    expect(job.timeoutMs).toBe(10_000);
    expect(leaseExpiresAt).toEqual(at(10_000));
    expect(await readJob(t.db.pool, row.id)).toMatchObject({ started_at: START, lease_expires_at: at(10_000) });

    // The start does not move the claim time the timeout counts from.
    travel(4000);
    await t.trpc.worker.start.mutate({ workerId: 'w1', jobs: [{ id: job.id, attempt: 1 }] });
    expect((await readJob(t.db.pool, row.id)).started_at).toEqual(START);

    travel(5000);
    const beat = await t.trpc.worker.heartbeat.mutate({ workerId: 'w1', leaseMs: 30_000, jobs: [{ id: job.id, attempt: 1 }] });
    expect(beat.extended).toEqual([{ id: job.id, leaseExpiresAt: at(10_000) }]);

    // Past the deadline the attempt is over: no lease, and the worker is told to stop.
    travel(10_001);
    const late = await t.trpc.worker.heartbeat.mutate({ workerId: 'w1', leaseMs: 30_000, jobs: [{ id: job.id, attempt: 1 }] });
    expect(late).toEqual({ extended: [], lost: [job.id], cancelled: [], rejected: [] });
    expect((await readJob(t.db.pool, row.id)).lease_expires_at).toEqual(at(10_000));

    travel(11_000);
    expect(await t.server.maintenance.sweep()).toEqual({ rescued: 1, failed: 0 });
    const rescued = await readJob(t.db.pool, row.id);
    expect(rescued).toMatchObject({ status: 'pending', error_code: 'TIMEOUT', retry_count: 1, scheduled_for: at(11_000), ended_by: 'rescue', lease_expires_at: null });
    expect(rescued.error_message).toBe('timed out: attempt 1 ran past its timeout of 10000 ms (worker w1)');
    expect((await claimOne()).job.attempt).toBe(2);
  });

  it('rescues a lease that ran out before the timeout as LEASE_EXPIRED', async () => {
    const row = await insertJob(t.db.pool, { timeout_ms: 60_000 });
    await claimOne(5000);
    travel(4999);
    expect(await t.server.maintenance.sweep()).toEqual({ rescued: 0, failed: 0 });
    travel(5001);
    expect(await t.server.maintenance.sweep()).toEqual({ rescued: 1, failed: 0 });
    const rescued = await readJob(t.db.pool, row.id);
    expect(rescued).toMatchObject({ status: 'pending', error_code: 'LEASE_EXPIRED', retry_count: 1 });
    expect(rescued.error_message).toBe('lease expired: worker w1 stopped heartbeating during attempt 1');
  });

  it('a timeout with no retries left fails the job for good, with TIMEOUT', async () => {
    const row = await insertJob(t.db.pool, { timeout_ms: 1000, max_retries: 0 });
    await claimOne();
    travel(2000);
    expect(await t.server.maintenance.sweep()).toEqual({ rescued: 0, failed: 1 });
    expect(await readJob(t.db.pool, row.id)).toMatchObject({ status: 'failed', error_code: 'TIMEOUT', failed_at: at(2000) });
  });

  it('a failed job waits out the established linear backoff, then is claimed again', async () => {
    await insertJob(t.db.pool);
    const { job } = await claimOne();
    const failed = await t.trpc.worker.fail.mutate({ workerId: 'w1', id: job.id, attempt: 1, error: 'boom' });
    expect(failed).toMatchObject({ status: 'pending', retryCount: 1, scheduledFor: at(60_000) });
    travel(59_999);
    expect((await t.trpc.worker.claim.mutate({ workerId: 'w1' })).jobs).toEqual([]);
    travel(60_000);
    expect((await claimOne()).job).toMatchObject({ id: job.id, attempt: 2, retryCount: 1 });
    // Second failure: 60 s x 2.
    travel(61_000);
    expect(await t.trpc.worker.fail.mutate({ workerId: 'w1', id: job.id, attempt: 2, error: 'boom' })).toMatchObject({ scheduledFor: at(181_000) });
  });

  it("uses the type's backoff from the registry, computed from the row's own retry count", async () => {
    const rows = await Promise.all([0, 1, 2].map((retry_count) => insertJob(t.db.pool, { task_type: 'bursty', status: 'processing', worker_id: 'w1', retry_count })));
    const { results } = await t.trpc.worker.failMany.mutate({ workerId: 'w1', jobs: rows.map((r) => ({ id: r.id, attempt: 1, error: 'again' })) });
    expect(results).toEqual([
      { id: rows[0]!.id, outcome: 'pending', retryCount: 1, scheduledFor: at(1000) },
      { id: rows[1]!.id, outcome: 'pending', retryCount: 2, scheduledFor: at(2000) },
      { id: rows[2]!.id, outcome: 'pending', retryCount: 3, scheduledFor: at(4000) },
    ]);
  });

  it('failMany answers each job on its own and stores each code (default HANDLER_ERROR); fail_task stores none', async () => {
    const [a, b, c, lost] = await Promise.all([0, 1, 2, 3].map((i) => insertJob(t.db.pool, { status: 'processing', worker_id: i === 3 ? 'w9' : 'w1' })));
    const missing = '01930000-0000-7000-8000-000000000000';
    const { results } = await t.trpc.worker.failMany.mutate({
      workerId: 'w1',
      jobs: [
        { id: a!.id, attempt: 1, error: 'threw' },
        { id: b!.id, attempt: 1, error: 'too slow', code: 'TIMEOUT' },
        { id: c!.id, attempt: 1, error: 'bad input', code: 'INVALID_PAYLOAD', retry: false },
        { id: lost!.id, attempt: 1, error: 'x' },
        { id: missing, attempt: 1, error: 'x' },
      ],
    });
    expect(results.map((r) => r.outcome)).toEqual(['pending', 'pending', 'failed', 'lease_lost', 'not_found']);
    expect(await readJob(t.db.pool, a!.id)).toMatchObject({ error_code: 'HANDLER_ERROR', error_message: 'threw' });
    expect(await readJob(t.db.pool, b!.id)).toMatchObject({ error_code: 'TIMEOUT', status: 'pending' });
    expect(await readJob(t.db.pool, c!.id)).toMatchObject({ error_code: 'INVALID_PAYLOAD', status: 'failed', failed_at: START });
    expect((await readJob(t.db.pool, lost!.id)).status).toBe('processing');
    const sql = await insertJob(t.db.pool, { status: 'processing', error_code: 'TIMEOUT' });
    await t.db.pool.query(`SELECT fail_task($1, 'from sql')`, [sql.id]);
    expect(await readJob(t.db.pool, sql.id)).toMatchObject({ error_code: null, error_message: 'from sql' });
  });

  it('the SQL functions travel in time with SET skipq.now', async () => {
    const client = new pg.Client({ connectionString: t.db.url });
    await client.connect();
    try {
      const setNow = (ms: number) => client.query(`SELECT set_config('skipq.now', $1, false)`, [at(ms).toISOString()]);
      await insertJob(t.db.pool, { task_type: 'sql' });
      await setNow(0);
      const [claimed] = (await client.query<{ id: string }>(`SELECT id FROM claim_tasks('go-1', ARRAY['sql'], 1)`)).rows;
      expect(await readJob(t.db.pool, claimed!.id)).toMatchObject({ started_at: START, lease_expires_at: at(900_000) });
      expect((await client.query(`SELECT fail_task($1, 'boom') AS again`, [claimed!.id])).rows[0]).toEqual({ again: true });
      expect(await readJob(t.db.pool, claimed!.id)).toMatchObject({ scheduled_for: at(60_000), updated_at: START });
      await setNow(59_999);
      expect((await client.query(`SELECT id FROM claim_tasks('go-1', ARRAY['sql'], 1)`)).rows).toEqual([]);
      await setNow(60_000);
      expect((await client.query(`SELECT id FROM claim_tasks('go-1', ARRAY['sql'], 1)`)).rows).toEqual([{ id: claimed!.id }]);
      // The rescuer reads the same clock: past the 15-minute lease of claim_tasks.
      await setNow(60_000 + 900_001);
      expect((await client.query(`SELECT id, status FROM skipq_rescue(10)`)).rows).toEqual([{ id: claimed!.id, status: 'pending' }]);
      await client.query('RESET skipq.now');
      const { rows } = await client.query<{ same: boolean }>('SELECT skipq_now() = now() AS same');
      expect(rows[0]?.same).toBe(true);
    } finally {
      await client.end();
    }
  });
});

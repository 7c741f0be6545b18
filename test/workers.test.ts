import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { insertJob } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const MINUTE = 60_000;

describe('workers.list: the workers seen, read from the jobs they hold and completed', () => {
  let t: TestServer;
  // The server's clock, so "the last 5 minutes" does not depend on how fast the test runs.
  let clock = new Date('2026-06-01T12:00:00Z');
  const ago = (ms: number) => new Date(clock.getTime() - ms);

  beforeAll(async () => {
    t = await startTestServer({ now: () => clock });
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    clock = new Date('2026-06-01T12:00:00Z');
    await t.db.pool.query('DELETE FROM task_queue');
  });

  it('counts held jobs per worker with its latest heartbeat, claim and lease, and a few of the jobs it holds', async () => {
    const first = await insertJob(t.db.pool, { queue: 'a', status: 'processing', worker_id: 'w1', started_at: ago(50_000), updated_at: ago(5_000), lease_expires_at: ago(-25_000) });
    const second = await insertJob(t.db.pool, { queue: 'b', status: 'claimed', worker_id: 'w1', started_at: ago(2_000), updated_at: ago(2_000), lease_expires_at: ago(-28_000) });
    await insertJob(t.db.pool, { queue: 'a', status: 'processing', worker_id: 'w2', started_at: ago(9 * MINUTE), updated_at: ago(8 * MINUTE), lease_expires_at: ago(-MINUTE) });
    const { workers, truncated, windowMs } = await t.trpc.workers.list.query({});
    expect(windowMs).toBe(5 * MINUTE);
    expect(truncated).toBe(false);
    expect(workers).toEqual([
      { workerId: 'w1', held: 2, completed: 0, queues: ['a', 'b'], lastSeenAt: ago(2_000), lastClaimAt: ago(2_000), leaseExpiresAt: ago(-28_000), heldJobIds: [second.id, first.id] },
      // Held jobs always count, however long ago the worker was last heard from: its lease is still live.
      { workerId: 'w2', held: 1, completed: 0, queues: ['a'], lastSeenAt: ago(8 * MINUTE), lastClaimAt: ago(9 * MINUTE), leaseExpiresAt: ago(-MINUTE), heldJobIds: [expect.any(String)] },
    ]);
  });

  it('counts jobs completed within the window, and nothing an operator did to a job a worker once held', async () => {
    const completed = (worker: string, msAgo: number) =>
      insertJob(t.db.pool, { status: 'completed', worker_id: worker, attempt: 1, started_at: ago(msAgo + 1_000), completed_at: ago(msAgo), updated_at: ago(msAgo) });
    await completed('recent', 30_000);
    await completed('recent', 4 * MINUTE);
    await completed('old', 6 * MINUTE);
    // Cancelled and retried jobs keep their last holder's id; the cancel or retry is not that worker being seen.
    await insertJob(t.db.pool, { status: 'cancelled', worker_id: 'old', attempt: 1, updated_at: ago(1_000) });
    await insertJob(t.db.pool, { status: 'pending', worker_id: 'old', attempt: 1, updated_at: ago(1_000) });
    // A failed job is not read (no index covers failed rows).
    await insertJob(t.db.pool, { status: 'failed', worker_id: 'failing', attempt: 1, failed_at: ago(1_000), updated_at: ago(1_000) });

    const five = await t.trpc.workers.list.query({});
    expect(five.workers).toEqual([{ workerId: 'recent', held: 0, completed: 2, queues: ['default'], lastSeenAt: ago(30_000), lastClaimAt: ago(31_000), leaseExpiresAt: null, heldJobIds: [] }]);
    const ten = await t.trpc.workers.list.query({ windowMs: 10 * MINUTE });
    expect(ten.workers.map((w) => [w.workerId, w.completed])).toEqual([
      ['recent', 2],
      ['old', 1],
    ]);
    // The window follows the server's clock.
    clock = new Date(clock.getTime() + 5 * MINUTE);
    expect((await t.trpc.workers.list.query({})).workers).toEqual([]);
  });

  it('reads a bounded number of completed jobs, newest first, and says so', async () => {
    await t.db.pool.query(
      `INSERT INTO task_queue (task_type, payload, status, worker_id, attempt, started_at, completed_at, updated_at)
       SELECT 'ingestion', '{}', 'completed', 'w' || (i % 3), 1, $1::timestamptz - i * interval '1 ms', $1::timestamptz - i * interval '1 ms', $1::timestamptz - i * interval '1 ms'
       FROM generate_series(1, 2100) AS i`,
      [clock],
    );
    const { workers, truncated } = await t.trpc.workers.list.query({});
    expect(truncated).toBe(true);
    expect(workers.reduce((n, w) => n + w.completed, 0)).toBe(2000);
  });

  it('refuses a window outside 1 s to 1 h', async () => {
    for (const windowMs of [999, 3_600_001, 1.5]) {
      await expect(t.trpc.workers.list.query({ windowMs })).rejects.toMatchObject({ data: { code: 'BAD_REQUEST', skipqCode: 'INVALID_INPUT' } });
    }
  });
});

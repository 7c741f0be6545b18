import { TRPCClientError } from '@trpc/client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { insertJob, readJob } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

function codeOf(error: unknown): string | undefined {
  return error instanceof TRPCClientError ? (error.data as { skipqCode?: string } | undefined)?.skipqCode : undefined;
}

/** Runs a call and answers 'ok' or the skipq code it failed with. */
const outcome = (call: Promise<unknown>): Promise<string | undefined> => call.then(() => 'ok', codeOf);

// Every fenced call answers what happened to *its* attempt (issue 7 item 8).
// A move the holder did not make (the rescuer, the unfenced SQL functions, a
// cancel) leaves the job's worker_id and attempt as they were; the holder's
// late call must still learn that its attempt was ended by somebody else,
// while a true repeat of its own call (a lost reply) still succeeds.
describe('a fenced call after somebody else ended the attempt', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    await t.db.pool.query('DELETE FROM task_queue');
  });

  const held = () => insertJob(t.db.pool, { status: 'processing', worker_id: 'w1', attempt: 1, started_at: new Date() });
  const expire = (id: string) => t.db.pool.query(`UPDATE task_queue SET lease_expires_at = now() - interval '1 second' WHERE id = $1`, [id]);

  it('a late fail(retry: false) after the rescuer returned the job to pending is LEASE_LOST, not 200 "pending"', async () => {
    const job = await held();
    await expire(job.id);
    expect(await t.server.maintenance.sweep()).toMatchObject({ rescued: 1 });
    const before = await readJob(t.db.pool, job.id);
    expect(await outcome(t.trpc.worker.fail.mutate({ workerId: 'w1', id: job.id, attempt: 1, error: 'gave up', retry: false }))).toBe('LEASE_LOST');
    expect(await outcome(t.trpc.worker.fail.mutate({ workerId: 'w1', id: job.id, attempt: 1, error: 'try again' }))).toBe('LEASE_LOST');
    expect(await readJob(t.db.pool, job.id)).toEqual(before);
    // The rescue left the holder's worker id and attempt; what ended the attempt tells it apart.
    expect(before).toMatchObject({ status: 'pending', worker_id: 'w1', attempt: 1, ended_by: 'rescue', error_code: 'LEASE_EXPIRED' });
  });

  it('a complete after the rescuer failed the job for good is LEASE_LOST', async () => {
    const job = await insertJob(t.db.pool, { status: 'processing', worker_id: 'w1', attempt: 1, max_retries: 0 });
    await expire(job.id);
    await t.server.maintenance.sweep();
    expect((await readJob(t.db.pool, job.id)).status).toBe('failed');
    expect(await outcome(t.trpc.worker.complete.mutate({ workerId: 'w1', id: job.id, attempt: 1, result: 1 }))).toBe('LEASE_LOST');
    expect(await outcome(t.trpc.worker.fail.mutate({ workerId: 'w1', id: job.id, attempt: 1, error: 'x', retry: false }))).toBe('LEASE_LOST');
  });

  it("a worker's complete after complete_task completed its job is LEASE_LOST: its result was not stored", async () => {
    const job = await held();
    await t.db.pool.query(`SELECT complete_task($1, '{"by":"sql"}')`, [job.id]);
    expect(await outcome(t.trpc.worker.complete.mutate({ workerId: 'w1', id: job.id, attempt: 1, result: { by: 'worker' } }))).toBe('LEASE_LOST');
    const { results } = await t.trpc.worker.completeMany.mutate({ workerId: 'w1', jobs: [{ id: job.id, attempt: 1, result: { by: 'worker' } }] });
    expect(results).toEqual([{ id: job.id, outcome: 'lease_lost' }]);
    expect(await readJob(t.db.pool, job.id)).toMatchObject({ status: 'completed', result: { by: 'sql' }, ended_by: 'complete_task' });
  });

  it("a worker's fail or complete after fail_task failed its job is LEASE_LOST", async () => {
    const retried = await held();
    const failed = await held();
    await t.db.pool.query(`SELECT fail_task($1, 'sql says retry')`, [retried.id]);
    await t.db.pool.query(`SELECT fail_task($1, 'sql says no', false)`, [failed.id]);
    for (const id of [retried.id, failed.id]) {
      expect(await outcome(t.trpc.worker.fail.mutate({ workerId: 'w1', id, attempt: 1, error: 'mine' }))).toBe('LEASE_LOST');
      expect(await outcome(t.trpc.worker.complete.mutate({ workerId: 'w1', id, attempt: 1 }))).toBe('LEASE_LOST');
    }
    expect(await readJob(t.db.pool, retried.id)).toMatchObject({ status: 'pending', error_message: 'sql says retry', ended_by: 'fail_task', error_code: null });
    expect(await readJob(t.db.pool, failed.id)).toMatchObject({ status: 'failed', error_message: 'sql says no', ended_by: 'fail_task' });
  });

  it("still answers a true repeat of the holder's own move as done, writing nothing", async () => {
    const failed = await held();
    const first = await t.trpc.worker.fail.mutate({ workerId: 'w1', id: failed.id, attempt: 1, error: 'boom', retry: false });
    const row = await readJob(t.db.pool, failed.id);
    expect(await t.trpc.worker.fail.mutate({ workerId: 'w1', id: failed.id, attempt: 1, error: 'boom', retry: false })).toEqual(first);
    expect(await readJob(t.db.pool, failed.id)).toEqual(row);
    const retried = await held();
    const again = await t.trpc.worker.fail.mutate({ workerId: 'w1', id: retried.id, attempt: 1, error: 'boom' });
    expect(again.status).toBe('pending');
    expect(await t.trpc.worker.fail.mutate({ workerId: 'w1', id: retried.id, attempt: 1, error: 'boom' })).toEqual(again);
    const released = await held();
    expect((await t.trpc.worker.release.mutate({ workerId: 'w1', jobs: [{ id: released.id, attempt: 1 }] })).released).toEqual([released.id]);
    // A release is not a failure: a fail of the released attempt is not its repeat.
    expect(await outcome(t.trpc.worker.fail.mutate({ workerId: 'w1', id: released.id, attempt: 1, error: 'x' }))).toBe('LEASE_LOST');
  });
});

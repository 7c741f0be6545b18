import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { insertJob, readJob } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const MAX_PAYLOAD = 64 * 1024;

/** Values a handler may return or report that the server cannot store: each must fail alone. */
function badValues(): Array<[string, unknown, RegExp]> {
  const cycle: Record<string, unknown> = { name: 'loop' };
  cycle.self = cycle;
  return [
    ['over the payload limit', { blob: 'x'.repeat(MAX_PAYLOAD + 1) }, /limit is 65536/],
    ['holding a BigInt', { n: 1n }, /not JSON.*BigInt/],
    ['holding a cycle', cycle, /nested deeper than 64 levels|circular/],
    ['holding a lone surrogate', { s: 'broken \ud800 pair' }, /lone UTF-16 surrogate/],
  ];
}

// One bad value in a batch must never cost the others (issue 7 items 1 and
// 2): the server validates each item and answers each item.
describe('each job of a batch stands on its own', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ maxPayloadBytes: MAX_PAYLOAD });
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    await t.db.pool.query('DELETE FROM task_queue');
  });

  const heldJobs = (n: number) =>
    Promise.all(Array.from({ length: n }, () => insertJob(t.db.pool, { status: 'processing', worker_id: 'w1', lease_expires_at: new Date(Date.now() + 5000) })));

  it('completeMany: a result over the limit, with a BigInt or a cycle fails its own job (INVALID_RESULT, no retry); the others complete', async () => {
    const bad = badValues();
    const jobs = await heldJobs(2 + bad.length);
    const items = jobs.map((j, i) => ({ id: j.id, attempt: 1, result: i < bad.length ? bad[i]?.[1] : { rows: i } }));
    const { results } = await t.trpc.worker.completeMany.mutate({ workerId: 'w1', jobs: items });
    expect(results.map((r) => r.outcome)).toEqual([...bad.map(() => 'failed'), 'completed', 'completed']);
    for (const [i, [what, , message]] of bad.entries()) {
      const job = jobs[i]!;
      expect(results[i]?.error, what).toMatch(message);
      const row = await readJob(t.db.pool, job.id);
      // Retries were left (max_retries 3): the refusal is final all the same.
      expect(row, what).toMatchObject({ status: 'failed', error_code: 'INVALID_RESULT', retry_count: 0, result: null, lease_expires_at: null, ended_by: 'fail' });
      expect(row.error_message, what).toMatch(/the server refused the result/);
      expect(row.error_message, what).toMatch(message);
    }
    for (const job of jobs.slice(bad.length)) expect((await readJob(t.db.pool, job.id)).status).toBe('completed');
    // The same batch again (a lost reply): the same answers, nothing written twice.
    const rows = await Promise.all(jobs.map((j) => readJob(t.db.pool, j.id)));
    expect((await t.trpc.worker.completeMany.mutate({ workerId: 'w1', jobs: items })).results.map((r) => r.outcome)).toEqual(results.map((r) => r.outcome));
    expect(await Promise.all(jobs.map((j) => readJob(t.db.pool, j.id)))).toEqual(rows);
  });

  it('claim with completions: the bad completion fails alone, the others complete, and the claim still hands out work', async () => {
    const [bad, good] = await heldJobs(2);
    const next = await insertJob(t.db.pool);
    const answer = await t.trpc.worker.claim.mutate({
      workerId: 'w1',
      limit: 5,
      complete: [{ id: bad!.id, attempt: 1, result: { n: 10n } }, { id: good!.id, attempt: 1, result: { rows: 1 } }],
    });
    expect(answer.completed).toEqual(['failed', 'completed']);
    expect(answer.rejected).toEqual([{ id: bad!.id, error: expect.stringMatching(/BigInt/) }]);
    expect(answer.jobs.map((j) => j.id)).toEqual([next.id]);
    expect(await readJob(t.db.pool, bad!.id)).toMatchObject({ status: 'failed', error_code: 'INVALID_RESULT' });
    expect(await readJob(t.db.pool, good!.id)).toMatchObject({ status: 'completed', result: { rows: 1 } });
  });

  it('claim whose every completion is refused still claims', async () => {
    const [bad] = await heldJobs(1);
    const next = await insertJob(t.db.pool);
    const answer = await t.trpc.worker.claim.mutate({ workerId: 'w1', complete: [{ id: bad!.id, attempt: 1, result: { blob: 'x'.repeat(MAX_PAYLOAD) } }] });
    expect(answer.completed).toEqual(['failed']);
    expect(answer.jobs.map((j) => j.id)).toEqual([next.id]);
  });

  it('complete: a refused result answers status "failed" with the reason, a refused result of a lost job is LEASE_LOST', async () => {
    const [job, lost] = await heldJobs(2);
    expect(await t.trpc.worker.complete.mutate({ workerId: 'w1', id: job!.id, attempt: 1, result: { n: 1n } })).toEqual({
      id: job!.id,
      status: 'failed',
      error: expect.stringMatching(/BigInt/),
    });
    const error = await t.trpc.worker.complete.mutate({ workerId: 'w2', id: lost!.id, attempt: 1, result: { n: 1n } }).catch((e: { data?: { skipqCode?: string } }) => e.data?.skipqCode);
    expect(error).toBe('LEASE_LOST');
    expect((await readJob(t.db.pool, lost!.id)).status).toBe('processing');
  });

  it('heartbeat: a bad progress value is dropped and named in rejected; every lease is still extended', async () => {
    const bad = badValues();
    const jobs = await heldJobs(2 + bad.length);
    const beat = await t.trpc.worker.heartbeat.mutate({
      workerId: 'w1',
      leaseMs: 60_000,
      jobs: jobs.map((j, i) => ({ id: j.id, attempt: 1, progress: i < bad.length ? bad[i]?.[1] : { pct: i } })),
    });
    expect(beat.lost).toEqual([]);
    expect(new Set(beat.extended.map((e) => e.id))).toEqual(new Set(jobs.map((j) => j.id)));
    expect(beat.rejected.map((r) => r.id)).toEqual(jobs.slice(0, bad.length).map((j) => j.id));
    for (const [i, [what, , message]] of bad.entries()) {
      expect(beat.rejected[i]?.error, what).toMatch(message);
      const row = await readJob(t.db.pool, jobs[i]!.id);
      expect(row, what).toMatchObject({ status: 'processing', progress: null });
      expect(row.lease_expires_at!.getTime(), what).toBeGreaterThan(Date.now() + 50_000);
    }
    for (const [i, job] of jobs.entries()) if (i >= bad.length) expect((await readJob(t.db.pool, job.id)).progress).toEqual({ pct: i });
  });
});

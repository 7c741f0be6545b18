import pg from 'pg';
import { z } from 'zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createQueueClient, createWorker } from '../client/index.js';
import { defineJobs, judge, LIMITS, type JobStatus, type MoveName } from '../shared/index.js';
import { ENDINGS, JOB_STATUSES } from '../shared/index.js';
import { recordJobTypes } from '../server/jobTypes.js';
import { jobTypeList } from '../server/queries/jobTypes.js';
import { countJobs, readJob, waitFor } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const jobs = defineJobs({
  ingestion: {
    payload: z.object({
      chainId: z.string().min(1),
      targetDate: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date as YYYY-MM-DD'),
    }),
    queue: 'ingestion',
    priority: 5,
    maxRetries: 4,
    timeoutMs: 60_000,
    backoff: { kind: 'fixed', delayMs: 7_000 },
  },
  stamp: { payload: z.object({ at: z.date() }) },
  plain: { payload: z.object({ n: z.number() }) },
});

const PAYLOAD = { chainId: '1', targetDate: '2026-12-01' };

/** The SQLSTATE and message a statement fails with (it must fail). */
async function refusal(pool: pg.Pool, sql: string, values: unknown[] = []): Promise<{ code: string; message: string }> {
  try {
    await pool.query(sql, values);
  } catch (error) {
    const e = error as { code: string; message: string };
    return { code: e.code, message: e.message };
  }
  throw new Error(`expected a refusal of: ${sql}`);
}

describe('SQL that knows the registry', () => {
  let t: TestServer;
  let pool: pg.Pool;
  beforeAll(async () => {
    t = await startTestServer({ jobs });
    pool = t.db.pool;
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    await pool.query('DELETE FROM task_queue');
  });

  describe('job_types', () => {
    it('holds every registered type with its defaults and payload JSON Schema once the server has started', async () => {
      const rows = await jobTypeList(pool);
      expect(rows.map((r) => r.name)).toEqual(['ingestion', 'plain', 'stamp']);
      expect(rows[0]).toMatchObject({
        queue: 'ingestion',
        priority: 5,
        max_retries: 4,
        timeout_ms: 60_000,
        backoff: { kind: 'fixed', delayMs: 7_000 },
        schema_complete: true,
        removed_at: null,
        payload_schema: {
          type: 'object',
          required: ['chainId', 'targetDate'],
          properties: { chainId: { type: 'string', minLength: 1 }, targetDate: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' } },
        },
      });
      // A date cannot be said in JSON Schema: that part is "any", and the row says the schema is looser than zod's.
      expect(rows[2]).toMatchObject({ queue: 'default', priority: 0, max_retries: 3, timeout_ms: null, backoff: null, schema_complete: false });
      expect(rows[2]?.payload_schema).toMatchObject({ properties: { at: {} }, required: ['at'] });
    });

    it('writes nothing for an unchanged registry, marks a dropped type removed (kept), and revives it when it is back', async () => {
      expect(await recordJobTypes(pool, jobs)).toEqual({ written: [], removed: [] });
      const { ingestion, plain } = jobs;
      expect(await recordJobTypes(pool, defineJobs({ ingestion, plain }))).toEqual({ written: [], removed: ['stamp'] });
      expect((await jobTypeList(pool)).find((r) => r.name === 'stamp')?.removed_at).toBeInstanceOf(Date);
      const removed = await refusal(pool, `SELECT schedule_task('stamp', '{"at": "x"}')`);
      expect(removed).toMatchObject({ code: '22023' });
      expect(removed.message).toMatch(/^schedule_task: job type "stamp" was removed from the registry \(at .*\); the registry knows: ingestion, plain$/);
      // A server without a registry leaves the database's registry as it is.
      expect(await recordJobTypes(pool, null)).toEqual({ written: [], removed: [] });
      expect(await recordJobTypes(pool, jobs)).toEqual({ written: ['stamp'], removed: [] });
      expect((await jobTypeList(pool)).every((r) => r.removed_at === null)).toBe(true);
    });
  });

  describe('schedule_task', () => {
    it("puts a job into its type's queue with its type's priority, retries and timeout", async () => {
      const { rows } = await pool.query<{ id: string }>(`SELECT schedule_task('ingestion', $1::jsonb) AS id`, [JSON.stringify(PAYLOAD)]);
      const job = await readJob(pool, rows[0]!.id);
      expect(job).toMatchObject({ queue: 'ingestion', priority: 5, max_retries: 4, timeout_ms: 60_000, status: 'pending', payload: PAYLOAD });
    });

    it('lets explicit arguments win over the type, as the established five-argument call gives them', async () => {
      const { rows } = await pool.query<{ id: string }>(`SELECT schedule_task('ingestion', $1::jsonb, 9, now() + interval '1 hour', 0) AS id`, [JSON.stringify(PAYLOAD)]);
      const job = await readJob(pool, rows[0]!.id);
      expect(job).toMatchObject({ queue: 'ingestion', priority: 9, max_retries: 0 });
      expect(job.scheduled_for.getTime()).toBeGreaterThan(Date.now() + 3_500_000);
    });

    it('refuses a type the registry does not know, with 22023 and the known types, and stores nothing', async () => {
      const r = await refusal(pool, `SELECT schedule_task('ingestoin', '{}')`);
      expect(r).toEqual({ code: '22023', message: 'schedule_task: unknown job type "ingestoin"; the registry knows: ingestion, plain, stamp' });
      expect(await countJobs(pool)).toBe(0);
    });

    it('keeps the HTTP limits and their messages', async () => {
      expect(await refusal(pool, `SELECT schedule_task('ingestion', $1::jsonb, 11)`, [JSON.stringify(PAYLOAD)])).toEqual({ code: '22023', message: 'schedule_task: priority must be between 0 and 10; got 11' });
      expect((await refusal(pool, `SELECT schedule_task('ingestion', 'null')`)).message).toBe('schedule_task: payload is required and must not be JSON null');
      expect((await refusal(pool, `SELECT schedule_task('ingestion', $1::jsonb)`, [JSON.stringify({ s: 'x'.repeat(1_048_576) })])).message).toMatch(/^schedule_task: payload is 1048585 bytes of JSON; the limit is 1048576/);
      expect((await refusal(pool, `SELECT schedule_task('ingestion', $1::jsonb, NULL, NULL, 1001)`, [JSON.stringify(PAYLOAD)])).message).toBe('schedule_task: max_retries must be between 0 and 1000; got 1001');
      expect(await countJobs(pool)).toBe(0);
    });
  });

  describe('enqueue_job', () => {
    it('applies the type, then each option, and answers the id and that it was created', async () => {
      const { rows } = await pool.query<{ id: string; created: boolean }>(
        `SELECT * FROM enqueue_job('ingestion', $1::jsonb, $2::jsonb)`,
        [JSON.stringify(PAYLOAD), JSON.stringify({ queue: 'backfill', priority: 2, delay_ms: 60_000, max_retries: 0, concurrency_key: 'chain-1', timeout_ms: 500 })],
      );
      expect(rows[0]?.created).toBe(true);
      const job = await readJob(pool, rows[0]!.id);
      expect(job).toMatchObject({ queue: 'backfill', priority: 2, max_retries: 0, concurrency_key: 'chain-1', timeout_ms: 500 });
      expect(job.scheduled_for.getTime()).toBeGreaterThan(Date.now() + 50_000);
      const at = await pool.query<{ id: string }>(`SELECT id FROM enqueue_job('plain', '{"n": 1}', '{"run_at": "2030-01-02T03:04:05Z"}')`);
      expect((await readJob(pool, at.rows[0]!.id)).scheduled_for.toISOString()).toBe('2030-01-02T03:04:05.000Z');
    });

    it('answers the live job holding a unique_key (created false), like jobs.enqueue, and a repeated id with its own job', async () => {
      const first = await pool.query<{ id: string; created: boolean }>(`SELECT * FROM enqueue_job('ingestion', $1::jsonb, '{"unique_key": "1:2026-12-01"}')`, [JSON.stringify(PAYLOAD)]);
      const again = await pool.query<{ id: string; created: boolean }>(`SELECT * FROM enqueue_job('ingestion', $1::jsonb, '{"unique_key": "1:2026-12-01"}')`, [JSON.stringify(PAYLOAD)]);
      expect(again.rows[0]).toEqual({ id: first.rows[0]!.id, created: false });
      // The same key over HTTP finds the same job: one index, one rule.
      const viaHttp = await t.trpc.jobs.enqueue.mutate({ type: 'ingestion', payload: PAYLOAD, uniqueKey: '1:2026-12-01' });
      expect(viaHttp.id).toBe(first.rows[0]!.id);
      const id = '01931a3c-5c1e-7d2a-9f00-1b2c3d4e5f60';
      const made = await pool.query(`SELECT * FROM enqueue_job('plain', '{"n": 1}', $1::jsonb)`, [JSON.stringify({ id })]);
      const repeat = await pool.query(`SELECT * FROM enqueue_job('plain', '{"n": 1}', $1::jsonb)`, [JSON.stringify({ id })]);
      expect([made.rows[0], repeat.rows[0]]).toEqual([{ id, created: true }, { id, created: false }]);
      expect(await refusal(pool, `SELECT * FROM enqueue_job('ingestion', $1::jsonb, $2::jsonb)`, [JSON.stringify(PAYLOAD), JSON.stringify({ id })])).toEqual({
        code: '23505',
        message: `enqueue_job: job id ${id} is already used by another job`,
      });
      expect(await countJobs(pool)).toBe(2);
    });

    it('takes every option up to the limit shared/limits.ts sets for HTTP, and refuses one past it', async () => {
      const enqueue = (options: object) => pool.query(`SELECT * FROM enqueue_job('plain', '{"n": 1}', $1::jsonb)`, [JSON.stringify(options)]);
      const bounds: Array<[string, unknown, unknown]> = [
        ['delay_ms', LIMITS.maxDelayMs, LIMITS.maxDelayMs + 1],
        ['timeout_ms', LIMITS.maxTimeoutMs, LIMITS.maxTimeoutMs + 1],
        ['max_retries', LIMITS.maxRetries, LIMITS.maxRetries + 1],
        ['unique_key', 'k'.repeat(LIMITS.uniqueKey), 'k'.repeat(LIMITS.uniqueKey + 1)],
      ];
      for (const [key, ok, over] of bounds) {
        await expect(enqueue({ [key]: ok }), key).resolves.toBeDefined();
        await expect(enqueue({ [key]: over }), key).rejects.toMatchObject({ code: '22023' });
      }
      // Payload bytes as JSON text: {"s": "..."} is 9 bytes around the string.
      const payload = (bytes: number) => JSON.stringify({ s: 'x'.repeat(bytes - 9) });
      await expect(pool.query(`SELECT * FROM enqueue_job('plain', $1::jsonb)`, [payload(LIMITS.defaultPayloadBytes)])).resolves.toBeDefined();
      await expect(pool.query(`SELECT * FROM enqueue_job('plain', $1::jsonb)`, [payload(LIMITS.defaultPayloadBytes + 1)])).rejects.toMatchObject({ code: '22023' });
      const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
      await expect(pool.query(`SELECT * FROM enqueue_job('plain', $1::jsonb)`, [nested(LIMITS.jsonDepth)])).resolves.toBeDefined();
      await expect(pool.query(`SELECT * FROM enqueue_job('plain', $1::jsonb)`, [nested(LIMITS.jsonDepth + 1)])).rejects.toMatchObject({ code: '22023' });
      await expect(pool.query(`SELECT * FROM claim_jobs('w', ARRAY['nothing'], $1, $2)`, [LIMITS.claimLimit, LIMITS.maxLeaseMs])).resolves.toBeDefined();
      await expect(pool.query(`SELECT * FROM claim_jobs('w', NULL, $1, 30000)`, [LIMITS.claimLimit + 1])).rejects.toMatchObject({ code: '22023' });
      await expect(pool.query(`SELECT * FROM claim_jobs('w', NULL, 1, $1)`, [LIMITS.minLeaseMs - 1])).rejects.toMatchObject({ code: '22023' });
      await expect(pool.query(`SELECT * FROM claim_jobs($1, NULL, 1, 30000)`, ['w'.repeat(LIMITS.workerId + 1)])).rejects.toMatchObject({ code: '22023' });
      await expect(pool.query(`SELECT complete_job($1, 1, 'w', $2::jsonb)`, ['01931a3c-5c1e-7d2a-9f00-1b2c3d4e5f60', payload(LIMITS.defaultPayloadBytes + 1)])).rejects.toMatchObject({ code: '22023' });
      expect(await countJobs(pool)).toBe(6);
    });

    it('refuses unknown and ill-typed options, naming them, and changes nothing', async () => {
      const cases: Array<[object, string]> = [
        [{ priorty: 1, dealy: 5 }, 'enqueue_job: unknown option dealy, priorty; the options are queue, priority, run_at, delay_ms, max_retries, unique_key, concurrency_key, timeout_ms, id'],
        [{ priority: 'high' }, 'enqueue_job: options.priority must be an integer between 0 and 10; got "high"'],
        [{ priority: 1.5 }, 'enqueue_job: options.priority must be an integer between 0 and 10; got 1.5'],
        [{ delay_ms: -1 }, 'enqueue_job: options.delay_ms must be an integer between 0 and 315360000000; got -1'],
        [{ timeout_ms: 0 }, 'enqueue_job: options.timeout_ms must be an integer between 1 and 86400000; got 0'],
        [{ max_retries: 1001 }, 'enqueue_job: options.max_retries must be an integer between 0 and 1000; got 1001'],
        [{ run_at: 'tomorrow-ish' }, "enqueue_job: options.run_at must be a timestamp such as 2026-12-01T12:00:00Z; got 'tomorrow-ish'"],
        [{ run_at: '2026-12-01T00:00:00Z', delay_ms: 5 }, 'enqueue_job: give run_at or delay_ms, not both'],
        [{ run_at: '2999-01-01T00:00:00Z' }, 'enqueue_job: run_at must be between 1970 and 10 years from now; got 2999-01-01 00:00:00+00'],
        [{ queue: 'no spaces' }, `enqueue_job: queue must start with a letter or digit and use only letters, digits, "_", ".", ":" or "-" (at most 128 characters); got 'no spaces'`],
        [{ unique_key: '' }, 'enqueue_job: unique_key must be 1 to 255 characters; got 0'],
        [{ unique_key: 7 }, 'enqueue_job: options.unique_key must be a string; got 7'],
        [{ concurrency_key: 'k'.repeat(256) }, 'enqueue_job: concurrency_key must be 1 to 255 characters; got 256'],
        [{ id: 'job-1' }, "enqueue_job: id must be a job id (a UUID such as 01931a3c-5c1e-7d2a-9f00-1b2c3d4e5f60); got 'job-1'"],
      ];
      for (const [options, message] of cases) {
        expect(await refusal(pool, `SELECT * FROM enqueue_job('ingestion', $1::jsonb, $2::jsonb)`, [JSON.stringify(PAYLOAD), JSON.stringify(options)]), JSON.stringify(options)).toEqual({ code: '22023', message });
      }
      expect((await refusal(pool, `SELECT * FROM enqueue_job('ingestion', $1::jsonb, '[1]')`, [JSON.stringify(PAYLOAD)])).message).toBe('enqueue_job: options must be a JSON object; got [1]');
      expect((await refusal(pool, `SELECT * FROM enqueue_job('nope', '{}')`)).message).toBe('enqueue_job: unknown job type "nope"; the registry knows: ingestion, plain, stamp');
      expect(await countJobs(pool)).toBe(0);
    });
  });

  describe('fenced SQL worker functions', () => {
    async function claimOne(workerId: string, leaseMs = 30_000) {
      const { rows } = await pool.query<{ id: string; attempt: number; lease_expires_at: Date; queue: string; payload: unknown }>(
        `SELECT * FROM claim_jobs($1, ARRAY['ingestion'], 10, $2)`,
        [workerId, leaseMs],
      );
      expect(rows).toHaveLength(1);
      return rows[0]!;
    }

    async function enqueueIngestion(options: object = {}): Promise<string> {
      const { rows } = await pool.query<{ id: string }>(`SELECT id FROM enqueue_job('ingestion', $1::jsonb, $2::jsonb)`, [JSON.stringify(PAYLOAD), JSON.stringify(options)]);
      return rows[0]!.id;
    }

    it('claim_jobs answers the attempt and the lease end, through the same claim policy (a paused queue is skipped)', async () => {
      const id = await enqueueIngestion();
      await t.trpc.queues.pause.mutate({ queue: 'ingestion' });
      expect((await pool.query(`SELECT * FROM claim_jobs('w1', NULL, 10)`)).rows).toEqual([]);
      await t.trpc.queues.resume.mutate({ queue: 'ingestion' });
      // Only the queues asked for.
      expect((await pool.query(`SELECT id FROM claim_jobs('w1', NULL, 10, 30000, ARRAY['elsewhere'])`)).rows).toEqual([]);
      const job = await claimOne('w1', 5_000);
      expect(job).toMatchObject({ id, attempt: 1, queue: 'ingestion', payload: PAYLOAD });
      const leaseMs = job.lease_expires_at.getTime() - Date.now();
      expect(leaseMs).toBeGreaterThan(3_000);
      expect(leaseMs).toBeLessThanOrEqual(5_000);
      expect(await refusal(pool, `SELECT * FROM claim_jobs('w1', NULL, 10, 50)`)).toEqual({ code: '22023', message: 'claim_jobs: lease_ms must be between 100 and 86400000 (24 h); got 50' });
      expect((await refusal(pool, `SELECT * FROM claim_jobs(NULL, NULL, 10)`)).message).toBe('claim_jobs: worker_id is required, 1 to 200 characters; got NULL');
      expect((await refusal(pool, `SELECT * FROM claim_jobs('w1', NULL, 10, 30000, ARRAY['no spaces'])`)).message).toBe(
        'claim_jobs: queues must be NULL (every queue) or 1 to 100 queue names (a letter or digit, then letters, digits, "_", ".", ":" or "-", at most 128 characters)',
      );
    });

    it('refuses a stale attempt and a wrong worker, completes the holder once, and answers its repeat as already done', async () => {
      const id = await enqueueIngestion();
      const first = await claimOne('w1');
      // w1's lease runs out; the rescuer puts the job back and w2 claims attempt 2.
      await pool.query(`UPDATE task_queue SET lease_expires_at = now() - interval '1 second' WHERE id = $1`, [id]);
      await pool.query('SELECT skipq_rescue(10)');
      await pool.query(`UPDATE task_queue SET scheduled_for = now() WHERE id = $1`, [id]);
      const second = await claimOne('w2');
      expect(second.attempt).toBe(first.attempt + 1);
      const ask = async (sql: string, ...values: unknown[]) => (await pool.query<{ o: string }>(`SELECT ${sql} AS o`, values)).rows[0]?.o;
      expect(await ask('complete_job($1, $2, $3, $4::jsonb)', id, first.attempt, 'w1', '{"rows": 1}')).toBe('lease_lost');
      expect(await ask('heartbeat_job($1, $2, $3)', id, first.attempt, 'w1')).toBe('lease_lost');
      expect(await ask('fail_job($1, $2, $3, $4)', id, first.attempt, 'w1', 'late')).toBe('lease_lost');
      expect(await ask('complete_job($1, $2, $3, $4::jsonb)', id, second.attempt, 'w1', '{"rows": 1}')).toBe('lease_lost');
      expect((await readJob(pool, id)).status).toBe('claimed');
      expect(await ask('complete_job($1, $2, $3, $4::jsonb)', id, second.attempt, 'w2', '{"rows": 2}')).toBe('completed');
      expect(await ask('complete_job($1, $2, $3, $4::jsonb)', id, second.attempt, 'w2', '{"rows": 3}')).toBe('already_completed');
      expect(await readJob(pool, id)).toMatchObject({ status: 'completed', result: { rows: 2 }, worker_id: 'w2', attempt: 2 });
      expect(await ask('complete_job($1, 1, $2)', '01931a3c-5c1e-7d2a-9f00-1b2c3d4e5f60', 'w2')).toBe('not_found');
      expect((await refusal(pool, `SELECT complete_job($1, NULL, 'w2')`, [id])).message).toBe('complete_job: attempt is required: the attempt claim_jobs answered (1 or more); got NULL');
    });

    it("heartbeat_job extends the lease; fail_job retries after the type's backoff, then fails for good", async () => {
      const id = await enqueueIngestion({ max_retries: 1 });
      const job = await claimOne('w1', 1_000);
      const { rows } = await pool.query<{ o: string; lease: Date }>(
        `SELECT heartbeat_job($1, $2, 'w1', interval '40 seconds') AS o, (SELECT lease_expires_at FROM task_queue WHERE id = $1) AS lease`,
        [id, job.attempt],
      );
      expect(rows[0]?.o).toBe('extended');
      expect((await readJob(pool, id)).lease_expires_at!.getTime()).toBeGreaterThan(Date.now() + 30_000);
      expect((await refusal(pool, `SELECT heartbeat_job($1, $2, 'w1', interval '1 month')`, [id, job.attempt])).message).toBe('heartbeat_job: lease must be between 100 milliseconds and 24 hours; got 1 mon');
      expect((await pool.query(`SELECT fail_job($1, $2, 'w1', 'upstream 503') AS o`, [id, job.attempt])).rows[0].o).toBe('retry_scheduled');
      expect((await pool.query(`SELECT fail_job($1, $2, 'w1', 'upstream 503') AS o`, [id, job.attempt])).rows[0].o).toBe('already_failed');
      const retried = await readJob(pool, id);
      expect(retried).toMatchObject({ status: 'pending', retry_count: 1, error_message: 'upstream 503', error_code: 'HANDLER_ERROR' });
      // The type's backoff is fixed 7 s (job_types.backoff), not the established 60 s.
      const waitMs = retried.scheduled_for.getTime() - Date.now();
      expect(waitMs).toBeGreaterThan(5_000);
      expect(waitMs).toBeLessThanOrEqual(7_000);
      await pool.query(`UPDATE task_queue SET scheduled_for = now() WHERE id = $1`, [id]);
      const again = await claimOne('w1');
      expect((await pool.query(`SELECT fail_job($1, $2, 'w1', 'still 503') AS o`, [id, again.attempt])).rows[0].o).toBe('failed');
      expect((await readJob(pool, id)).status).toBe('failed');
    });

    it('classifies a miss as the table of moves does, for every status, ending and holder', async () => {
      const moves: MoveName[] = ['complete', 'fail', 'heartbeat'];
      const rows: Array<{ move: MoveName; status: JobStatus; ended_by: string | null; mine: boolean }> = [];
      for (const move of moves) for (const status of JOB_STATUSES) for (const ended_by of [null, ...ENDINGS]) for (const mine of [true, false]) rows.push({ move, status, ended_by, mine });
      const { rows: got } = await pool.query<{ v: string }>(
        `SELECT skipq_holder_verdict(r.move, ROW(r.id, false, r.status, r.attempt, r.worker_id, r.ended_by, 'q', now(), 0, NULL)::skipq_move_result, 'w1', 3) AS v
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[]) WITH ORDINALITY AS r(move, status, ended_by, attempt, worker_id, id)`,
        [rows.map((r) => r.move), rows.map((r) => r.status), rows.map((r) => r.ended_by), rows.map((r) => (r.mine ? 3 : 2)), rows.map(() => 'w1')],
      );
      const expected = rows.map((r) => {
        const v = judge(r.move, { status: r.status, worker_id: 'w1', attempt: r.mine ? 3 : 2, ended_by: r.ended_by }, { workerId: 'w1', attempt: 3 });
        // As server/verdicts.ts: a holder move the table allows but its SQL did not make was ended by one of its guards.
        return v === 'move' ? 'lost' : v;
      });
      expect(got.map((g) => g.v)).toEqual(expected);
    });
  });

  it('fails a bad payload enqueued through SQL at claim, once, without retries, in the words jobs.enqueue uses', async () => {
    const bad = { chainId: '1', targetDate: '01/12/2026' };
    const { rows } = await pool.query<{ id: string }>(`SELECT schedule_task('ingestion', $1::jsonb) AS id`, [JSON.stringify(bad)]);
    const viaSql = await pool.query<{ id: string }>(`SELECT id FROM enqueue_job('ingestion', $1::jsonb)`, [JSON.stringify(bad)]);
    const client = createQueueClient({ url: t.url, jobs });
    const httpMessage = await t.trpc.jobs.enqueue.mutate({ type: 'ingestion', payload: bad }).then(
      () => 'accepted',
      (error: Error) => error.message,
    );
    expect(httpMessage).toBe('payload of "ingestion" is invalid: targetDate: must be a date as YYYY-MM-DD');
    let ran = 0;
    const worker = createWorker({ url: t.url, jobs, handlers: { ingestion: () => { ran++; return undefined; }, stamp: () => undefined, plain: () => undefined }, waitMs: 200 });
    worker.start();
    try {
      for (const id of [rows[0]!.id, viaSql.rows[0]!.id]) {
        await waitFor(async () => (await readJob(pool, id)).status === 'failed', 10_000, 'the bad payload to fail');
        expect(await readJob(pool, id)).toMatchObject({ retry_count: 0, attempt: 1, error_code: 'INVALID_PAYLOAD', error_message: httpMessage });
      }
      expect(ran).toBe(0);
    } finally {
      await worker.stop();
      await client.close();
    }
  });
});

import { readFileSync } from 'node:fs';
import { TRPCClientError } from '@trpc/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backoffDelayMs, judge, MOVE_NAMES, MOVES, movesTable, type BackoffPolicy, type Holder, type JobState, type MoveName } from '../shared/index.js';
import type { TaskRow } from '../server/queries/row.js';
import { insertJob, readJob } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

let t: TestServer;

function codeOf(error: unknown): string {
  return error instanceof TRPCClientError ? ((error.data as { skipqCode?: string } | undefined)?.skipqCode ?? 'UNKNOWN') : 'UNKNOWN';
}

const expireLease = (id: string) => t.db.pool.query(`UPDATE task_queue SET lease_expires_at = now() - interval '1 second' WHERE id = $1 AND lease_expires_at IS NOT NULL`, [id]);

/** Inserts a pending job and claims it as `workerId`. */
async function claimAs(workerId: string, overrides: Parameters<typeof insertJob>[1] = {}): Promise<{ id: string; attempt: number }> {
  await insertJob(t.db.pool, overrides);
  const { jobs } = await t.trpc.worker.claim.mutate({ workerId, limit: 1 });
  if (!jobs[0]) throw new Error('nothing to claim');
  return { id: jobs[0].id, attempt: jobs[0].attempt };
}

/** A job in a given situation, reached through real moves, and the worker (w1) whose calls the walk makes. */
interface Situation {
  name: string;
  setup(): Promise<{ id: string; holder: Holder }>;
}

const w1 = (job: { id: string; attempt: number }) => ({ id: job.id, holder: { workerId: 'w1', attempt: job.attempt } });
const claimed = async () => claimAs('w1');

const SITUATIONS: Situation[] = [
  { name: 'pending, never claimed', setup: async () => w1({ id: (await insertJob(t.db.pool)).id, attempt: 1 }) },
  { name: 'claimed', setup: async () => w1(await claimed()) },
  {
    name: 'processing',
    setup: async () => {
      const job = await claimed();
      await t.trpc.worker.start.mutate({ workerId: 'w1', jobs: [job] });
      return w1(job);
    },
  },
  { name: 'held by another worker', setup: async () => w1(await claimAs('w2')) },
  {
    name: 'completed by its holder',
    setup: async () => {
      const job = await claimed();
      await t.trpc.worker.complete.mutate({ workerId: 'w1', ...job, result: { ok: 1 } });
      return w1(job);
    },
  },
  {
    name: 'completed by complete_task',
    setup: async () => {
      const job = await claimed();
      await t.db.pool.query(`SELECT complete_task($1, '{"by":"sql"}')`, [job.id]);
      return w1(job);
    },
  },
  {
    name: 'failed by its holder',
    setup: async () => {
      const job = await claimed();
      await t.trpc.worker.fail.mutate({ workerId: 'w1', ...job, error: 'boom', retry: false });
      return w1(job);
    },
  },
  {
    name: 'failed by fail_task',
    setup: async () => {
      const job = await claimed();
      await t.db.pool.query(`SELECT fail_task($1, 'boom', false)`, [job.id]);
      return w1(job);
    },
  },
  {
    name: 'pending after its holder failed it',
    setup: async () => {
      const job = await claimed();
      await t.trpc.worker.fail.mutate({ workerId: 'w1', ...job, error: 'boom', retryDelayMs: 0 });
      return w1(job);
    },
  },
  {
    name: 'pending after its holder released it',
    setup: async () => {
      const job = await claimed();
      await t.trpc.worker.release.mutate({ workerId: 'w1', jobs: [job] });
      return w1(job);
    },
  },
  {
    name: 'pending after the rescue',
    setup: async () => {
      const job = await claimed();
      await expireLease(job.id);
      await t.server.maintenance.sweep();
      return w1(job);
    },
  },
  {
    name: 'failed by the rescue',
    setup: async () => {
      const job = await claimAs('w1', { max_retries: 0 });
      await expireLease(job.id);
      await t.server.maintenance.sweep();
      return w1(job);
    },
  },
  {
    name: 'cancelled while held',
    setup: async () => {
      const job = await claimed();
      await t.trpc.jobs.cancel.mutate({ id: job.id });
      return w1(job);
    },
  },
  {
    name: 'cancelled while pending',
    setup: async () => {
      const { id } = await insertJob(t.db.pool);
      await t.trpc.jobs.cancel.mutate({ id });
      return w1({ id, attempt: 1 });
    },
  },
  {
    name: 'pending again after a retry',
    setup: async () => {
      const job = await claimed();
      await t.trpc.worker.fail.mutate({ workerId: 'w1', ...job, error: 'boom', retry: false });
      await t.trpc.jobs.retry.mutate({ id: job.id });
      return w1(job);
    },
  },
];

/** What a surface reports: the call succeeded for this job ('done'), or the code (claim and rescue: 'WRONG_STATE' when the job was not moved). */
type ApiResult = 'done' | string;

/** Each move through the tRPC API (the rescue through the server's maintenance sweep). */
const API: Record<MoveName, (id: string, h: Holder) => Promise<ApiResult>> = {
  claim: async (id) => ((await t.trpc.worker.claim.mutate({ workerId: 'w1', limit: 10 })).jobs.some((j) => j.id === id) ? 'done' : 'WRONG_STATE'),
  start: async (id, h) => {
    const a = await t.trpc.worker.start.mutate({ workerId: h.workerId, jobs: [{ id, attempt: h.attempt }] });
    return a.started.includes(id) ? 'done' : a.cancelled.includes(id) ? 'JOB_CANCELLED' : 'LEASE_LOST';
  },
  heartbeat: async (id, h) => {
    const a = await t.trpc.worker.heartbeat.mutate({ workerId: h.workerId, jobs: [{ id, attempt: h.attempt }] });
    return a.extended.some((e) => e.id === id) ? 'done' : a.cancelled.includes(id) ? 'JOB_CANCELLED' : 'LEASE_LOST';
  },
  complete: (id, h) => t.trpc.worker.complete.mutate({ workerId: h.workerId, id, attempt: h.attempt, result: { by: 'walk' } }).then(() => 'done', codeOf),
  fail: (id, h) => t.trpc.worker.fail.mutate({ workerId: h.workerId, id, attempt: h.attempt, error: 'walk', retryDelayMs: 0 }).then(() => 'done', codeOf),
  release: async (id, h) => {
    const a = await t.trpc.worker.release.mutate({ workerId: h.workerId, jobs: [{ id, attempt: h.attempt }] });
    return a.released.includes(id) ? 'done' : a.cancelled.includes(id) ? 'JOB_CANCELLED' : 'LEASE_LOST';
  },
  rescue: async (id) => {
    await expireLease(id);
    const swept = await t.server.maintenance.sweep();
    return swept && swept.rescued + swept.failed > 0 ? 'done' : 'WRONG_STATE';
  },
  cancel: (id) => t.trpc.jobs.cancel.mutate({ id }).then(() => 'done', codeOf),
  retry: (id) => t.trpc.jobs.retry.mutate({ id }).then(() => 'done', codeOf),
};

/** Each move through its fenced SQL function: did it move the job? */
const SQL: Record<MoveName, (id: string, h: Holder) => Promise<boolean>> = {
  claim: async (id) => (await t.db.pool.query(`SELECT id FROM skipq_claim('w1', NULL, NULL, 10, 30000)`)).rows.some((r) => r.id === id),
  start: (id, h) => moved(`SELECT * FROM skipq_start($1, ARRAY[$2], ARRAY[$3::int])`, [h.workerId, id, h.attempt]),
  heartbeat: (id, h) => moved(`SELECT * FROM skipq_heartbeat($1, ARRAY[$2], ARRAY[$3::int], NULL, 30000)`, [h.workerId, id, h.attempt]),
  complete: (id, h) => moved(`SELECT * FROM skipq_complete($1, ARRAY[$2], ARRAY[$3::int], ARRAY['{"by":"walk"}'])`, [h.workerId, id, h.attempt]),
  fail: (id, h) => moved(`SELECT * FROM skipq_fail($1, ARRAY[$2], ARRAY[$3::int], ARRAY['walk'], ARRAY['HANDLER_ERROR'], ARRAY[true], ARRAY[0::float8])`, [h.workerId, id, h.attempt]),
  release: (id, h) => moved(`SELECT * FROM skipq_release($1, ARRAY[$2], ARRAY[$3::int])`, [h.workerId, id, h.attempt]),
  rescue: async (id) => {
    await expireLease(id);
    return (await t.db.pool.query(`SELECT id FROM skipq_rescue(10)`)).rows.some((r) => r.id === id);
  },
  cancel: (id) => moved(`SELECT * FROM skipq_cancel(ARRAY[$1])`, [id]),
  retry: (id) => moved(`SELECT * FROM skipq_retry(ARRAY[$1])`, [id]),
};

async function moved(sql: string, values: unknown[]): Promise<boolean> {
  const { rows } = await t.db.pool.query<{ id: string; moved: boolean }>(sql, values);
  expect(rows).toHaveLength(1);
  return rows[0]!.moved;
}

const stateOf = (row: TaskRow): JobState => ({ status: row.status, worker_id: row.worker_id, attempt: row.attempt, ended_by: row.ended_by });

/** A fresh job in the situation; answers it, its row before the move, and the table's verdict on the move. */
async function arrange(situation: Situation, move: MoveName) {
  await t.db.pool.query('DELETE FROM task_queue');
  const { id, holder } = await situation.setup();
  const before = await readJob(t.db.pool, id);
  return { id, holder, before, verdict: judge(move, stateOf(before), holder) };
}

/** The job after a move: moved into the table's `to` (recording what ended it), or not touched at all. */
async function expectMoved(move: MoveName, id: string, before: TaskRow, didMove: boolean, endedBy: string | null = MOVES[move].ends) {
  const after = await readJob(t.db.pool, id);
  if (!didMove) {
    expect(after).toEqual(before);
    return;
  }
  expect(MOVES[move].to).toContain(after.status);
  if (move === 'heartbeat') expect(after.status).toBe(before.status);
  if (move === 'claim') expect(after).toMatchObject({ worker_id: 'w1', attempt: before.attempt + 1, ended_by: null });
  else if (endedBy) expect(after.ended_by).toBe(endedBy);
}

const API_RESULT = { move: 'done', repeat: 'done', lost: 'LEASE_LOST', cancelled: 'JOB_CANCELLED', wrong_state: 'WRONG_STATE', not_found: 'JOB_NOT_FOUND' } as const;

describe('the table of moves, walked through the tRPC API and the SQL functions', () => {
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(() => t.stop());

  describe.each(MOVE_NAMES)('%s', (move) => {
    it.each(SITUATIONS.map((s) => [s.name, s] as const))('on a job %s: as the table says', async (_name, situation) => {
      const api = await arrange(situation, move);
      const said = await API[move](api.id, api.holder);
      expect(said, `API ${move}, verdict ${api.verdict}`).toBe(API_RESULT[api.verdict]);
      await expectMoved(move, api.id, api.before, api.verdict === 'move');

      const sql = await arrange(situation, move);
      expect(await SQL[move](sql.id, sql.holder), `SQL ${move}, verdict ${sql.verdict}`).toBe(sql.verdict === 'move');
      await expectMoved(move, sql.id, sql.before, sql.verdict === 'move');
    });
  });

  // The established SQL API is unfenced: it acts for whoever holds the job, from the statuses the table lists.
  describe.each([
    ['complete', 'complete_task', `SELECT complete_task($1, '{"by":"sql"}') AS moved`],
    ['fail', 'fail_task', `SELECT fail_task($1, 'sql', true) AS moved, (SELECT status FROM task_queue WHERE id = $1) AS status`],
  ] as const)('%s through %s', (move, ending, sql) => {
    it.each(SITUATIONS.map((s) => [s.name, s] as const))('on a job %s', async (_name, situation) => {
      const { id, before } = await arrange(situation, move);
      const { rows } = await t.db.pool.query<{ moved: boolean }>(sql, [id]);
      const applies = MOVES[move].from.includes(before.status);
      // fail_task answers "will run again"; whether it moved at all shows in the row.
      if (move === 'complete') expect(rows[0]?.moved).toBe(applies);
      await expectMoved(move, id, before, applies, ending);
    });
  });

  // The fenced SQL API for SQL workers: each holder move through its function answers the table's verdict in words.
  const FENCED = { move: null, repeat: null, lost: 'lease_lost', cancelled: 'cancelled', wrong_state: 'wrong_state', not_found: 'not_found' } as const;
  describe.each([
    ['complete', `SELECT complete_job($1, $2, $3, '{"by":"sql"}') AS outcome`, ['completed'], 'already_completed'],
    ['fail', `SELECT fail_job($1, $2, $3, 'walk') AS outcome`, ['retry_scheduled', 'failed'], 'already_failed'],
    ['heartbeat', `SELECT heartbeat_job($1, $2, $3) AS outcome`, ['extended'], null],
  ] as const)('%s through its fenced SQL function', (move, sql, movedAs, repeatedAs) => {
    it.each(SITUATIONS.map((s) => [s.name, s] as const))('on a job %s', async (_name, situation) => {
      const { id, holder, before, verdict } = await arrange(situation, move);
      const { rows } = await t.db.pool.query<{ outcome: string }>(sql, [id, holder.attempt, holder.workerId]);
      const outcome = rows[0]?.outcome;
      if (verdict === 'move') expect(movedAs).toContain(outcome);
      else expect(outcome, `verdict ${verdict}`).toBe(verdict === 'repeat' ? repeatedAs : FENCED[verdict]);
      await expectMoved(move, id, before, verdict === 'move');
    });
  });

  it('the README shows the table as shared/lifecycle.ts defines it', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    expect(readme).toContain(movesTable());
  });

  it('skipq_backoff (SQL) and backoffDelayMs (worker client) compute the same delays', async () => {
    const policies: BackoffPolicy[] = [
      { kind: 'fixed', delayMs: 1500 },
      { kind: 'linear', delayMs: 60_000 },
      { kind: 'linear', delayMs: 1000, maxDelayMs: 3500 },
      { kind: 'exponential', delayMs: 1000 },
      { kind: 'exponential', delayMs: 250, factor: 3, maxDelayMs: 100_000 },
      { kind: 'exponential', delayMs: 10, factor: 1.5 },
    ];
    for (const policy of policies) {
      for (const retryCount of [0, 1, 2, 5, 10]) {
        const { rows } = await t.db.pool.query<{ ms: number }>('SELECT (extract(epoch FROM skipq_backoff($1::jsonb, $2)) * 1000)::float8 AS ms', [JSON.stringify(policy), retryCount]);
        expect(Math.round(rows[0]!.ms), `${JSON.stringify(policy)} after ${retryCount}`).toBe(backoffDelayMs(policy, retryCount));
      }
    }
    // No policy is the established linear 60 s x (retry_count + 1).
    const { rows } = await t.db.pool.query<{ ms: number }>('SELECT (extract(epoch FROM skipq_backoff(NULL, 2)) * 1000)::float8 AS ms');
    expect(rows[0]?.ms).toBe(180_000);
    // Jitter spreads the delay by up to its fraction either way.
    const jittered = await t.db.pool.query<{ ms: number }>(`SELECT (extract(epoch FROM skipq_backoff('{"kind":"fixed","delayMs":1000,"jitter":0.5}', 0)) * 1000)::float8 AS ms FROM generate_series(1, 200)`);
    const spread = jittered.rows.map((r) => r.ms);
    expect(Math.min(...spread)).toBeGreaterThanOrEqual(500);
    expect(Math.max(...spread)).toBeLessThanOrEqual(1500);
    expect(new Set(spread).size).toBeGreaterThan(100);
  });
});

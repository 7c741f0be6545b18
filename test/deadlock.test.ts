import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertJob, readJob, waitFor } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const WORKER = 'w-busy';
const LEASE_MS = 1000;
// The traffic runs until this many jobs were completed: a few seconds here, longer on a busy machine.
const TARGET = 3000;
const GIVE_UP_MS = 50_000;

function shuffled<T>(items: Iterable<T>): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    const swap = out[i] as T;
    out[i] = out[j] as T;
    out[j] = swap;
  }
  return out;
}

function sample<T>(items: readonly T[], fraction: number): T[] {
  return items.filter(() => Math.random() < fraction);
}

async function deadlocksOf(t: TestServer): Promise<number> {
  const { rows } = await t.db.pool.query<{ deadlocks: string }>('SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()');
  return Number(rows[0]?.deadlocks ?? 0);
}

/** Reads the counter until it stops moving: each backend flushes its own statistics, some only when it exits. */
async function settledDeadlocks(t: TestServer): Promise<number> {
  let last = -1;
  for (let i = 0; i < 30; i++) {
    await t.db.pool.query('SELECT pg_stat_clear_snapshot()');
    const now = await deadlocksOf(t);
    if (now === last) return now;
    last = now;
    await new Promise((r) => setTimeout(r, 250));
  }
  return last;
}

// One worker's own statements must never deadlock with each other. The
// bundled worker with startReportDelayMs 0 and short leases sends starts,
// heartbeats, completions and claims carrying completions concurrently, and
// each names the same held jobs in its own order (start order, claim order,
// finish order). This drives that traffic harder than the worker does, with
// every request's jobs shuffled, from one worker id.
describe('one busy worker', () => {
  let t: TestServer;
  const logs: string[] = [];
  beforeAll(async () => {
    t = await startTestServer({ log: (m) => logs.push(m), poolSize: 10 });
  });
  afterAll(async () => {
    await t.db.drop();
  });

  it('never deadlocks between its own start, heartbeat, complete and claim-with-completions', { timeout: 120_000 }, async () => {
    await t.db.pool.query(`INSERT INTO task_queue (task_type, payload) SELECT 'busy', '{}' FROM generate_series(1, 40000)`);
    await t.db.pool.query('ANALYZE task_queue');
    const before = await settledDeadlocks(t);
    const held = new Map<string, number>();
    const finished = new Map<string, number>();
    const errors: string[] = [];
    const giveUpAt = Date.now() + GIVE_UP_MS;
    const take = (jobs: ReadonlyArray<{ id: string; attempt: number }>) => {
      for (const j of jobs) held.set(j.id, j.attempt);
    };
    const refs = (ids: readonly string[]) => ids.map((id) => ({ id, attempt: held.get(id) ?? finished.get(id) ?? 1 }));
    const finish = (ids: readonly string[]) => {
      for (const id of ids) {
        const attempt = held.get(id);
        if (attempt === undefined) continue;
        held.delete(id);
        finished.set(id, attempt);
      }
    };
    const lane = async (step: () => Promise<unknown>) => {
      while (finished.size < TARGET && Date.now() < giveUpAt) {
        await step().catch((error: unknown) => errors.push((error as Error).message));
      }
    };

    await Promise.all([
      // Two claim loops, each carrying about half of what is held as completions.
      ...[0, 1].map(() =>
        lane(async () => {
          const done = shuffled(sample([...held.keys()], 0.5)).slice(0, 200);
          const answer = await t.trpc.worker.claim.mutate({ workerId: WORKER, limit: 100, leaseMs: LEASE_MS, complete: refs(done) });
          finish(done);
          take(answer.jobs);
        }),
      ),
      // Starts of a random part of what is held.
      ...[0, 1].map(() =>
        lane(async () => {
          const ids = shuffled(sample([...held.keys()], 0.4)).slice(0, 300);
          if (ids.length === 0) return new Promise((r) => setTimeout(r, 1));
          return t.trpc.worker.start.mutate({ workerId: WORKER, jobs: refs(ids) });
        }),
      ),
      // Heartbeats of everything held, in a new order each time.
      lane(async () => {
        const ids = shuffled(held.keys()).slice(0, 1000);
        if (ids.length === 0) return new Promise((r) => setTimeout(r, 1));
        return t.trpc.worker.heartbeat.mutate({ workerId: WORKER, leaseMs: LEASE_MS, jobs: refs(ids) });
      }),
      // Completions on their own, overlapping those the claims carry.
      ...[0, 1].map(() =>
        lane(async () => {
          const ids = shuffled(sample([...held.keys()], 0.3)).slice(0, 300);
          if (ids.length === 0) return new Promise((r) => setTimeout(r, 1));
          await t.trpc.worker.completeMany.mutate({ workerId: WORKER, jobs: refs(ids).map((r) => ({ ...r, result: { ok: true } })) });
          finish(ids);
        }),
      ),
    ]);
    // Statistics of the server's connections are flushed at the latest when they close.
    await t.server.close();
    const after = await settledDeadlocks(t);
    const { rows } = await t.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM task_queue WHERE status = 'completed'`);
    console.log(`deadlocks: ${after - before}; completed ${rows[0]?.n}; request errors ${errors.length}`);
    expect(after - before).toBe(0);
    expect(errors.filter((e) => /deadlock|internal server error/i.test(e))).toEqual([]);
    expect(logs.filter((m) => /deadlock/i.test(m))).toEqual([]);
    expect(rows[0]?.n).toBeGreaterThanOrEqual(TARGET);
  });
});

// The safety net: a statement that still loses a deadlock (here one a test
// connection provokes on purpose, locking the rows of a completion in the
// opposite order) is sent once more by the server instead of answering 500.
describe('a statement that loses a deadlock', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(() => t.stop());

  it('is retried once by the server, and the call succeeds', async () => {
    const jobs = (await Promise.all([1, 2].map(() => insertJob(t.db.pool, { status: 'processing', worker_id: 'w1' })))).sort((a, b) => (a.id < b.id ? -1 : 1));
    const [first, second] = jobs as [(typeof jobs)[0], (typeof jobs)[0]];
    const other = new pg.Client({ connectionString: t.db.url });
    await other.connect();
    try {
      // This session never detects the deadlock itself: the server's statement does, and is the one rolled back.
      await other.query("BEGIN; SET LOCAL deadlock_timeout = '60s'");
      await other.query('SELECT 1 FROM task_queue WHERE id = $1 FOR UPDATE', [second.id]);
      const completing = t.trpc.worker.completeMany.mutate({ workerId: 'w1', jobs: jobs.map((j) => ({ id: j.id, attempt: 1, result: 'done' })) });
      // The completion locks `first`, then waits for `second`...
      await waitFor(async () => {
        const { rows } = await t.db.pool.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'skipq' AND wait_event_type = 'Lock'`);
        return rows.length > 0;
      }, 10_000, 'the completion to wait for the lock');
      // ...and this session now waits for `first`: a deadlock, found by the completion after deadlock_timeout (1 s).
      const locked = other.query('SELECT 1 FROM task_queue WHERE id = $1 FOR UPDATE', [first.id]);
      await locked;
      await other.query('COMMIT');
      const { results } = await completing;
      expect(results.map((r) => r.outcome)).toEqual(['completed', 'completed']);
      for (const job of jobs) expect(await readJob(t.db.pool, job.id)).toMatchObject({ status: 'completed', result: 'done' });
    } finally {
      await other.end();
    }
  });
});

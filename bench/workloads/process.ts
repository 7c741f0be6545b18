// W3: how fast one worker process drains pre-enqueued no-op jobs; and the same
// with a million finished rows in skipq's table (which must not slow claims),
// with claim policies, with a subscriber, with 4 KiB payloads, at concurrency 10.
import { createQueueClient } from '../../client/index.js';
import { jobs } from '../jobs.js';
import type { PayloadKind } from '../payload.js';
import { withClient } from '../lib/postgres.js';
import { MEMORY_METRICS, checkProduced, checkWorked, memoryValues, produce, rate, work } from './steps.js';
import type { Measurement, Metric, RunContext, Workload } from './types.js';

const PRELOAD_BATCH = 500;

/**
 * Fills skipq's task_queue with finished jobs in one statement, as a queue
 * that has run for a while (retention off) would hold, then VACUUM ANALYZE as
 * autovacuum would have by then: a steady state, not a freshly bulk-loaded heap.
 * The CHECKPOINT keeps the load's own checkpoint (hundreds of MB of WAL) out of
 * the timed part, where its full-page writes would be charged to the worker.
 */
async function fillFinished(database: string, rows: number): Promise<void> {
  await withClient(database, async (c) => {
    await c.query(
      `INSERT INTO task_queue (task_type, payload, status, attempt, started_at, completed_at, scheduled_for, created_at, updated_at)
       SELECT 'bench', jsonb_build_object('n', g), 'completed', 1, x.t, x.t, x.t, x.t, x.t
       FROM generate_series(1, $1::int) AS g, (SELECT now() - interval '1 hour' AS t) AS x`,
      [rows],
    );
    await c.query('VACUUM (ANALYZE) task_queue');
    await c.query('CHECKPOINT');
  });
}

/**
 * Gives the bench's queue (`default`) a concurrency limit, so every claim
 * takes the limited path of skipq_claim (row lock, ledger fold, counters).
 */
async function limitQueue(database: string, concurrency: number): Promise<void> {
  await withClient(database, async (c) => {
    await c.query(`INSERT INTO queues (name, concurrency) VALUES ('default', $1::int)`, [concurrency]);
  });
}

/**
 * Spreads the preloaded jobs over `keys` concurrency keys (job n gets key
 * n mod keys) and gives the queue keyConcurrency 1, so every claim takes the
 * keyed path of skipq_claim (key walk, per-key counters). The keys are set in
 * SQL after the preload (untimed), then VACUUM ANALYZE clears the updated
 * rows' old versions, as if the jobs had been enqueued with their keys.
 */
async function keyQueue(database: string, keys: number): Promise<void> {
  await withClient(database, async (c) => {
    await c.query(`INSERT INTO queues (name, key_concurrency) VALUES ('default', 1)`);
    await c.query(
      `UPDATE task_queue SET concurrency_key = 'tenant-' || ((payload->>'n')::int % $1::int)::text WHERE status = 'pending'`,
      [keys],
    );
    await c.query(`SELECT skipq_queue_recount('default')`);
    await c.query('VACUUM (ANALYZE) task_queue');
  });
}

/**
 * One subscriber of the bench queue's events (events.jobs with queues:
 * ['default']) over SSE, in the orchestrator's process: it counts what
 * arrives until stopped. Its registration is awaited, so every move of the
 * timed part is logged and streamed.
 */
async function subscribeQueue(url: string): Promise<{ count(): number; stop(): Promise<number> }> {
  const client = createQueueClient({ url, jobs });
  let events = 0;
  let started!: () => void;
  const ready = new Promise<void>((resolve) => (started = resolve));
  const stream = client.subscribe({ queues: ['default'], onStarted: () => started() });
  const reading = (async () => {
    for await (const _ of stream) events++;
  })();
  await ready;
  return {
    count: () => events,
    async stop() {
      stream.close();
      await reading.catch(() => {});
      await client.close();
      return events;
    },
  };
}

/** What a W3 variant changes; the defaults are plain W3. */
interface ProcessVariant {
  /** Finished rows put in skipq's table first (W3-1M). */
  finishedRows?: number;
  /** A queue concurrency limit (W3-C100). */
  queueConcurrency?: number;
  /** Concurrency keys with keyConcurrency 1 (W3-K1000). */
  keys?: number;
  /** Queue-level subscribers during the drain (W3-SUB: 1, W3-SUB10: 10). */
  subscribers?: number;
  /** 4k: every job carries an order and its handler reads it (W3-4K). */
  payload?: PayloadKind;
  /** The worker's jobs in flight instead of the system's best setting (W3-C10). */
  concurrency?: number;
}

async function runProcess(ctx: RunContext, variant: ProcessVariant = {}): Promise<Measurement> {
  const { finishedRows = 0, queueConcurrency = null, keys = null, subscribers = 0, payload = 'tiny', concurrency } = variant;
  const { round, sizes } = ctx;
  const system = ctx.system!;
  const deployment = await system.deploy(round, { serverNodeArgs: ctx.profileArgs });
  if (finishedRows > 0) {
    ctx.log(`inserting ${finishedRows.toLocaleString('en-US')} finished rows`);
    await round.wait(fillFinished(deployment.database as string, finishedRows));
  }
  if (queueConcurrency !== null) await round.wait(limitQueue(deployment.database as string, queueConcurrency));
  // Untimed: the jobs are there before the worker starts.
  const preloaded = await produce(round, deployment.endpoint, { mode: 'batch', count: sizes.jobs, batchSize: PRELOAD_BATCH, payload });
  const problems = checkProduced(preloaded, sizes.jobs);
  if (keys !== null) await round.wait(keyQueue(deployment.database as string, keys));
  const watching = subscribers > 0 ? await round.wait(Promise.all(Array.from({ length: subscribers }, () => subscribeQueue(deployment.endpoint.url as string)))) : null;
  const worked = await work(round, deployment.endpoint, { expected: sizes.jobs, latency: false, observePid: deployment.serverPid, nodeArgs: ctx.profileArgs, payload, concurrency });
  problems.push(...checkWorked(worked, sizes.jobs));
  if (watching) {
    // Each job is claimed, (maybe) started and completed: at least 2 events per job reach the subscriber.
    // The subscribers read behind the log: wait (up to 10 s after the last
    // completion) until the log holds every completion and each subscriber
    // has had its events; stopping them at the log's count cut the tail off.
    const deadline = Date.now() + 10_000;
    let seen = 0;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      if (seen < sizes.jobs) {
        seen = Number((await round.wait(withClient(deployment.database as string, (c) => c.query<{ n: string }>("SELECT count(*) AS n FROM job_events WHERE kind = 'completed'")))).rows[0]?.n);
      }
      if (seen >= sizes.jobs && watching.every((w) => w.count() >= 2 * sizes.jobs)) break;
    }
    const streamed = await Promise.all(watching.map((w) => w.stop()));
    if (seen < sizes.jobs) problems.push(`event log holds ${seen} completions of ${sizes.jobs} jobs`);
    for (const n of streamed) if (n < 2 * sizes.jobs) problems.push(`a subscriber got ${n} events for ${sizes.jobs} jobs (expected at least ${2 * sizes.jobs})`);
  }
  const values: Record<string, number> = {
    rate: rate(sizes.jobs, worked.startedAt, worked.completedAt),
    // CPU per 1,000 jobs says where the time goes: worker, server, or (the rest of the machine) PostgreSQL.
    workerCpu: (1000 * worked.workerCpuMs) / sizes.jobs,
    busy: worked.machineBusyPct,
  };
  if (worked.observedCpuMs !== null) values.serverCpu = (1000 * worked.observedCpuMs) / sizes.jobs;
  // The server is still up: its kernel high-water mark covers the whole round.
  return { values: { ...values, ...memoryValues(deployment, worked) }, problems };
}

/** Where a drain's time goes: worker, server, or (the rest of the machine) PostgreSQL. */
const CPU_METRICS: Metric[] = [
  { key: 'workerCpu', label: 'worker CPU ms / 1k jobs', better: 'lower' },
  { key: 'serverCpu', label: 'server CPU ms / 1k jobs', better: 'lower', compare: false },
  { key: 'busy', label: 'machine CPU busy %', better: 'lower', compare: false },
];

/** W3 on an empty table. */
export const processJobs: Workload = {
  id: 'W3',
  title: (s) => `W3 process: ${s.jobs.toLocaleString('en-US')} no-op jobs, one worker process`,
  metrics: [{ key: 'rate', label: 'jobs/s', better: 'higher' }, ...MEMORY_METRICS, ...CPU_METRICS],
  scope: 'all',
  run: (ctx) => runProcess(ctx),
};

/** W3-4K: the same drain, every job carrying a 4 KiB order whose handler reads one field (bench/payload.ts). */
export const process4k: Workload = {
  id: 'W3-4K',
  title: (s) => `W3 with 4 KiB payloads: ${s.jobs.toLocaleString('en-US')} jobs, handler reads doc.orderId`,
  metrics: [{ key: 'rate', label: 'jobs/s', better: 'higher' }, ...MEMORY_METRICS, ...CPU_METRICS],
  scope: 'all',
  run: (ctx) => runProcess(ctx, { payload: '4k' }),
};

/**
 * W3-C10: the same drain with 10 jobs in flight (skipq createWorker
 * concurrency 10; each peer's equivalent is in its settings): what a worker
 * pays per round trip when it cannot claim 1,000 at a time.
 */
export const processC10: Workload = {
  id: 'W3-C10',
  title: (s) => `W3 at concurrency 10: ${s.jobs.toLocaleString('en-US')} no-op jobs`,
  metrics: [{ key: 'rate', label: 'jobs/s', better: 'higher' }, ...MEMORY_METRICS, ...CPU_METRICS],
  scope: 'all',
  run: (ctx) => runProcess(ctx, { concurrency: 10 }),
};

/** W3 with finished rows already in skipq's table. */
export const processWithHistory: Workload = {
  id: 'W3-1M',
  title: (s) => `W3 (${s.finishedRows >= 1e6 ? `${s.finishedRows / 1e6}M` : `${s.finishedRows / 1e3}k`} finished rows)`,
  metrics: [{ key: 'rate', label: 'jobs/s', better: 'higher' }, ...MEMORY_METRICS],
  scope: 'skipq',
  run: (ctx) => runProcess(ctx, { finishedRows: ctx.sizes.finishedRows }),
};

/** W3 with a queue concurrency limit of 100: the cost of the limited claim path (issue 8: at least 70% of W3). */
export const processLimited: Workload = {
  id: 'W3-C100',
  title: (s) => `W3 (queue concurrency 100): ${s.jobs.toLocaleString('en-US')} no-op jobs`,
  metrics: [{ key: 'rate', label: 'jobs/s', better: 'higher' }, ...MEMORY_METRICS],
  scope: 'skipq',
  run: (ctx) => runProcess(ctx, { queueConcurrency: 100 }),
};

/** W3 with keyConcurrency 1 over 1,000 concurrency keys: the cost of the keyed claim path (issue 8: at least 70% of W3). */
export const processKeyed: Workload = {
  id: 'W3-K1000',
  title: (s) => `W3 (keyConcurrency 1 over 1,000 keys): ${s.jobs.toLocaleString('en-US')} no-op jobs`,
  metrics: [{ key: 'rate', label: 'jobs/s', better: 'higher' }, ...MEMORY_METRICS],
  scope: 'skipq',
  run: (ctx) => runProcess(ctx, { keys: 1000 }),
};

/** W3 with one subscriber of the queue's live events: what logging and streaming every move costs (issue 10). */
export const processSubscribed: Workload = {
  id: 'W3-SUB',
  title: (s) => `W3 with one queue-level subscriber: ${s.jobs.toLocaleString('en-US')} no-op jobs`,
  metrics: [{ key: 'rate', label: 'jobs/s', better: 'higher' }, ...MEMORY_METRICS],
  scope: 'skipq',
  run: (ctx) => runProcess(ctx, { subscribers: 1 }),
};

/** W3 with ten subscribers of the queue's live events: what each further subscriber costs the server. */
export const processSubscribedTen: Workload = {
  id: 'W3-SUB10',
  title: (s) => `W3 with ten queue-level subscribers: ${s.jobs.toLocaleString('en-US')} no-op jobs`,
  metrics: [{ key: 'rate', label: 'jobs/s', better: 'higher' }, ...MEMORY_METRICS],
  scope: 'skipq',
  run: (ctx) => runProcess(ctx, { subscribers: 10 }),
};

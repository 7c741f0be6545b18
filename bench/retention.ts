// Retention over 1,000,000 finished rows, measured: dead tuples and table and
// index size before and after a pass, how long the pass takes, and claim
// throughput during the pass against the same workload on the table left alone.
//
//   npx tsx bench/retention.ts            (PostgreSQL at 127.0.0.1:5432, a private database it drops after)
//   ROWS=200000 BATCH=5000 PAUSE_MS=0 npx tsx bench/retention.ts
//
// The claim workload is the server's own claim and completion, in SQL
// (skipq_claim of 50, then skipq_complete of the batch), from WORKERS
// connections; the retention pass is the server's (runRetentionPass) with the
// given batch size and pause and no cap, so one pass takes the whole backlog.
import { cpus, loadavg } from 'node:os';
import pg from 'pg';
import { migrate } from '../server/db/migrate.js';
import { RETENTION_TUNING, runRetentionPass } from '../server/retention.js';
import { createDatabase, databaseUrl, dropDatabase } from './lib/postgres.js';

const ROWS = Number(process.env.ROWS ?? 1_000_000);
const BATCH = Number(process.env.BATCH ?? RETENTION_TUNING.batchSize);
const PAUSE_MS = Number(process.env.PAUSE_MS ?? RETENTION_TUNING.pauseMs);
const WORKERS = Number(process.env.WORKERS ?? 4);
const CLAIM = 50;
// Each claim window; the pass must last longer (it does at the default pause: about 2 minutes for 1,000,000 rows).
const WINDOW_MS = Number(process.env.WINDOW_MS ?? 30_000);
// Pending jobs at the start of each claim window; the loops say so if they run dry.
const PENDING = Number(process.env.PENDING ?? 800_000);

interface TableStats {
  live: number;
  dead: number;
  table: number;
  total: number;
  indexes: number;
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

async function stats(pool: pg.Pool): Promise<TableStats> {
  // Each backend flushes its counters to the shared statistics at most once a second.
  await new Promise((r) => setTimeout(r, 1500));
  const { rows } = await pool.query<TableStats>(`
SELECT n_live_tup::float8 AS live, n_dead_tup::float8 AS dead,
       pg_relation_size('task_queue')::float8 AS table,
       pg_total_relation_size('task_queue')::float8 AS total,
       pg_indexes_size('task_queue')::float8 AS indexes
FROM pg_stat_user_tables WHERE relname = 'task_queue'`);
  return rows[0] as TableStats;
}

const line = (label: string, s: TableStats) =>
  `${label.padEnd(34)} live ${String(s.live).padStart(9)}  dead ${String(s.dead).padStart(9)}  heap ${mb(s.table).padStart(9)}  indexes ${mb(s.indexes).padStart(9)}  total ${mb(s.total).padStart(9)}`;

/** Claims and completes batches from `work` on WORKERS connections until `stop()` says so; answers the jobs completed. */
function claimLoad(pool: pg.Pool): { done(): number; stop(): Promise<number> } {
  let running = true;
  let done = 0;
  let starved = 0;
  const loops = Array.from({ length: WORKERS }, async (_, w) => {
    const client = await pool.connect();
    try {
      while (running) {
        const { rows } = await client.query<{ id: string; attempt: number }>("SELECT id, attempt FROM skipq_claim($1, NULL, '{work}', $2, 60000, NULL)", [`w${w}`, CLAIM]);
        if (rows.length === 0) {
          starved++;
          await new Promise((r) => setTimeout(r, 10));
          continue;
        }
        const completed = await client.query('SELECT 1 FROM skipq_complete($1, $2::text[], $3::int[], NULL) WHERE moved', [`w${w}`, rows.map((r) => r.id), rows.map((r) => r.attempt)]);
        done += completed.rowCount ?? 0;
      }
    } finally {
      client.release();
    }
  });
  return {
    done: () => done,
    async stop() {
      running = false;
      await Promise.all(loops);
      if (starved > 0) console.log(`  (the claim loops ran out of pending jobs ${starved} times: the rate below is a floor)`);
      return done;
    },
  };
}

async function enqueueWork(pool: pg.Pool, n: number): Promise<void> {
  await pool.query(
    `INSERT INTO task_queue (task_type, payload, queue)
     SELECT 'ingestion', jsonb_build_object('chainId', 'konzum', 'targetDate', '2026-01-23', 'n', g), 'work' FROM generate_series(1, $1::int) AS g`,
    [n],
  );
}

/** ROWS finished rows, all due: 90% completed 8-60 days ago, 5% cancelled, 5% failed 31-90 days ago, over 4 queues. Answers seconds taken. */
async function fill(pool: pg.Pool): Promise<number> {
  const started = performance.now();
  for (let from = 1; from <= ROWS; from += 100_000) {
    await pool.query(
      `INSERT INTO task_queue (task_type, payload, queue, status, result, completed_at, failed_at, error_message, created_at, updated_at)
       SELECT 'ingestion', jsonb_build_object('chainId', 'konzum', 'targetDate', '2026-01-23', 'n', g), 'q' || (g % 4),
              CASE WHEN g % 20 = 0 THEN 'failed' WHEN g % 20 = 1 THEN 'cancelled' ELSE 'completed' END,
              CASE WHEN g % 20 > 1 THEN '{"rows": 120}'::jsonb END,
              CASE WHEN g % 20 > 1 THEN now() - interval '8 days' - (g % 52) * interval '1 day' END,
              CASE WHEN g % 20 = 0 THEN now() - interval '31 days' - (g % 59) * interval '1 day' END,
              CASE WHEN g % 20 = 0 THEN 'upstream returned 503' END,
              now() - interval '91 days', now() - interval '8 days' - (g % 52) * interval '1 day'
       FROM generate_series($1::int, $2::int) AS g`,
      [from, Math.min(from + 99_999, ROWS)],
    );
  }
  await pool.query('ANALYZE task_queue');
  return (performance.now() - started) / 1000;
}

/** One retention pass over the whole backlog (no cap), timed, with the time of each DELETE batch. */
async function pass(pool: pg.Pool): Promise<{ ms: number; text: string }> {
  const batchMs: number[] = [];
  const timed = {
    query: async (config: pg.QueryConfig) => {
      const t0 = performance.now();
      const result = await pool.query(config);
      if (config.name === 'jobRetentionBatch') batchMs.push(performance.now() - t0);
      return result;
    },
  } as unknown as pg.Pool;
  const started = performance.now();
  const report = await runRetentionPass(timed, {
    policy: { retentionDays: 7, failedRetentionDays: 30 },
    tuning: { ...RETENTION_TUNING, batchSize: BATCH, pauseMs: PAUSE_MS, maxPerPass: Number.MAX_SAFE_INTEGER },
    now: () => null,
  });
  const ms = performance.now() - started;
  const rows = report.deleted + report.deletedFailed;
  // The first and last 100 batches: a batch that walked over the rows deleted before it would grow along the pass.
  const mean = (xs: number[]) => (xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1)).toFixed(1);
  const sortedMs = [...batchMs].sort((a, b) => a - b);
  const p = (q: number) => (sortedMs[Math.min(sortedMs.length - 1, Math.floor(q * sortedMs.length))] ?? 0).toFixed(1);
  return {
    ms,
    text:
      `deleted ${report.deleted} completed/cancelled + ${report.deletedFailed} failed in ${report.batches} batches, ${(ms / 1000).toFixed(1)} s (${Math.round(rows / (ms / 1000))} rows/s); ` +
      `a batch: median ${p(0.5)} ms, p99 ${p(0.99)} ms, first 100 ${mean(batchMs.slice(0, 100))} ms, last 100 ${mean(batchMs.slice(-100))} ms`,
  };
}

async function main(): Promise<void> {
  const database = await createDatabase('retention');
  const pool = new pg.Pool({ connectionString: databaseUrl(database), max: WORKERS + 3 });
  // DROP DATABASE ... WITH (FORCE) at the end ends connections the pool is still closing.
  pool.on('error', () => {});
  try {
    await migrate(pool);
    const load = (await pool.query<{ l: string }>("SELECT pg_size_pretty(pg_database_size(current_database())) AS l")).rows[0];
    console.log(`retention bench: ${ROWS.toLocaleString('en')} finished rows, batch ${BATCH}, pause ${PAUSE_MS} ms, ${WORKERS} claim connections (claim ${CLAIM} + complete), empty database ${load?.l}`);
    console.log(`machine: ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} at start (other sessions share it)`);

    // Part 1, the pass alone: what it leaves behind (dead tuples, sizes) and how long it takes.
    console.log(`filled in ${(await fill(pool)).toFixed(1)} s`);
    // The retention index as it was (finish time alone) beside the one this migration made (queue, finish time).
    await pool.query(`CREATE INDEX bench_old_finished_idx ON task_queue ((coalesce(completed_at, updated_at))) WHERE status IN ('completed', 'cancelled')`);
    const sizes = (await pool.query<{ name: string; size: string }>(
      `SELECT c.relname AS name, pg_size_pretty(pg_relation_size(c.oid)) AS size FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'task_queue'::regclass ORDER BY c.relname`,
    )).rows;
    console.log(`index sizes: ${sizes.map((s) => `${s.name} ${s.size}`).join(', ')}`);
    await pool.query('DROP INDEX bench_old_finished_idx');
    console.log(line('before', await stats(pool)));
    const alonePass = await pass(pool);
    console.log(`pass alone: ${alonePass.text}`);
    console.log(line('after the pass', await stats(pool)));
    const vacuumStarted = performance.now();
    await pool.query('VACUUM task_queue');
    console.log(line(`after VACUUM (${((performance.now() - vacuumStarted) / 1000).toFixed(1)} s)`, await stats(pool)));
    const autovacuum = (await pool.query<{ autovacuum_count: string }>(`SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = 'task_queue'`)).rows[0];
    console.log(`autovacuum runs on task_queue so far: ${autovacuum?.autovacuum_count}`);
    // Refilled after the VACUUM, the table takes the new rows in the freed space instead of growing.
    console.log(`refilled in ${(await fill(pool)).toFixed(1)} s`);
    console.log(line('refilled (same rows again)', await stats(pool)));

    // Part 2, claims: WINDOW_MS of the claim workload alone, then the first WINDOW_MS of it during a
    // pass over the whole backlog. Each window starts from a vacuumed table with PENDING pending jobs:
    // with autovacuum off (as on this machine), every claimed row stays in the claim index as a dead
    // entry until vacuum, and claims slow down as they pile up, retention or not.
    const claimWindow = async (alongside: () => Promise<unknown>): Promise<number> => {
      await pool.query(`DELETE FROM task_queue WHERE queue = 'work'`);
      await enqueueWork(pool, PENDING);
      await pool.query('VACUUM ANALYZE task_queue');
      const load = claimLoad(pool);
      const other = alongside();
      await new Promise((r) => setTimeout(r, WINDOW_MS));
      const rate = load.done() / (WINDOW_MS / 1000);
      await Promise.all([load.stop(), other]);
      return rate;
    };
    const aloneRate = await claimWindow(async () => {});
    let loaded = { ms: 0, text: '' };
    const duringRate = await claimWindow(async () => {
      loaded = await pass(pool);
    });
    console.log(`pass during claims: ${loaded.text}`);
    console.log(`claims over ${WINDOW_MS / 1000} s: alone ${Math.round(aloneRate)} jobs/s; during the pass ${Math.round(duringRate)} jobs/s (${((duringRate / aloneRate - 1) * 100).toFixed(0)}%)`);
    console.log(`machine: load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} at end`);
  } finally {
    await pool.end();
    await dropDatabase(database);
  }
}

await main();

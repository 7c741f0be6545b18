// What the attempt history (and the flow check) costs the completion path, in
// SQL alone: 20,000 jobs claimed and completed 50 at a time through
// skipq_claim + skipq_complete on one connection, on private databases of the
// local PostgreSQL, alternating between
//   before: every migration but 20261201000700_flows_attempts (no attempt rows),
//   after:  all migrations (skipq_complete writes an attempt row per job),
//   after + FK: the same with a foreign key job_attempts -> task_queue, the
//               design the migration rejected.
// Each in two settings, in the same sitting: synchronous_commit off (the
// statements' own work, where a per-row insert shows) and on (as deployed,
// where every statement also waits for its commit's WAL flush).
// Besides wall time (which a busy machine disturbs), each round reads the CPU
// time the PostgreSQL backend used (/proc/<pid>/stat: the same machine, so
// run it where PostgreSQL is local) and the size job_attempts grew by.
// Run: npx tsx bench/attemptCost.ts [--rounds 7] [--jobs 20000]
//      (DATABASE_URL: an admin URL of the server to use; default postgresql://postgres@127.0.0.1:5432/postgres)
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { migrate, MIGRATIONS_DIR } from '../server/db/migrate.js';
import { cpuTimeMs } from './lib/procfs.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, jobs: { type: 'string', default: '20000' } } });
const ROUNDS = Number(values.rounds);
const JOBS = Number(values.jobs);
const BATCH = 50;
const MINE = '20261201000700_flows_attempts';
const admin = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

const urlOf = (db: string): string => {
  const u = new URL(admin);
  u.pathname = `/${db}`;
  return u.toString();
};

interface Variant {
  name: string;
  db: string;
  client?: pg.Client;
  /** Per round: jobs/s of the whole loop, and the median ms of one skipq_complete of 50. */
  rates: number[];
  completeMs: number[];
  /** Per round: backend CPU ms per 1,000 jobs (claim + complete), and bytes of job_attempts per job. */
  cpuPerK: number[];
  bytesPerJob: number[];
  backendPid?: number;
}

const SETTINGS = ['off', 'on'] as const;

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

async function setUp(): Promise<Variant[]> {
  const variants: Variant[] = [
    { name: 'before (no attempt rows)', db: `skipq_attempt_bench_before_${process.pid}`, rates: [], completeMs: [], cpuPerK: [], bytesPerJob: [] },
    { name: 'after (attempt row per job)', db: `skipq_attempt_bench_after_${process.pid}`, rates: [], completeMs: [], cpuPerK: [], bytesPerJob: [] },
    { name: 'after + foreign key (rejected)', db: `skipq_attempt_bench_fk_${process.pid}`, rates: [], completeMs: [], cpuPerK: [], bytesPerJob: [] },
  ];
  const root = new pg.Client({ connectionString: admin });
  await root.connect();
  // The migrations up to, not including, this one.
  const before = await mkdtemp(join(tmpdir(), 'skipq-before-'));
  for (const name of await readdir(MIGRATIONS_DIR)) if (name !== MINE && !name.endsWith('.toml')) await cp(join(MIGRATIONS_DIR, name), join(before, name), { recursive: true });
  try {
    for (const v of variants) {
      await root.query(`DROP DATABASE IF EXISTS ${v.db}`);
      await root.query(`CREATE DATABASE ${v.db}`);
      const pool = new pg.Pool({ connectionString: urlOf(v.db), max: 1 });
      await migrate(pool, v === variants[0] ? before : MIGRATIONS_DIR);
      if (v === variants[2]) await pool.query('ALTER TABLE job_attempts ADD FOREIGN KEY (job_id) REFERENCES task_queue (id) ON DELETE CASCADE');
      await pool.end();
      v.client = new pg.Client({ connectionString: urlOf(v.db) });
      await v.client.connect();
      v.backendPid = (await v.client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
    }
  } finally {
    await root.end();
    await rm(before, { recursive: true, force: true });
  }
  return variants;
}

async function round(v: Variant): Promise<void> {
  const c = v.client as pg.Client;
  await c.query('TRUNCATE task_queue CASCADE');
  await c.query(`INSERT INTO task_queue (task_type, payload) SELECT 'bench', '{"n":1}' FROM generate_series(1, $1::int)`, [JOBS]);
  await c.query('VACUUM ANALYZE task_queue');
  await c.query('CHECKPOINT');
  const completes: number[] = [];
  const cpuBefore = cpuTimeMs(v.backendPid) ?? NaN;
  const started = performance.now();
  let done = 0;
  for (;;) {
    const { rows } = await c.query<{ id: string; attempt: number }>(`SELECT id, attempt FROM skipq_claim('bench-worker', NULL, NULL, $1::int, 30000)`, [BATCH]);
    if (rows.length === 0) break;
    const t0 = performance.now();
    await c.query('SELECT count(*) FROM skipq_complete($1::text, $2::text[], $3::int[], $4::text[])', [
      'bench-worker',
      rows.map((r) => r.id),
      rows.map((r) => r.attempt),
      rows.map(() => '{"ok":true}'),
    ]);
    completes.push(performance.now() - t0);
    done += rows.length;
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = (cpuTimeMs(v.backendPid) ?? NaN) - cpuBefore;
  if (done !== JOBS) throw new Error(`${v.name}: completed ${done} of ${JOBS}`);
  v.cpuPerK.push((cpu / done) * 1000);
  const { rows: size } = await c.query<{ bytes: string | null }>(`SELECT pg_total_relation_size(to_regclass('job_attempts')) AS bytes`);
  v.bytesPerJob.push(Number(size[0]?.bytes ?? 0) / done);
  v.rates.push(done / seconds);
  v.completeMs.push(median(completes));
}

const variants = await setUp();
try {
  console.log(`${JOBS} jobs, claim + complete ${BATCH} at a time through the SQL functions, ${ROUNDS} rounds per setting, medians (min-max)`);
  console.log('| synchronous_commit | variant | backend CPU ms / 1,000 jobs | claim+complete jobs/s | one skipq_complete of 50, ms | job_attempts bytes / job | vs before |');
  console.log('|---|---|---|---|---|---|---|');
  for (const setting of SETTINGS) {
    for (const v of variants) await (v.client as pg.Client).query(`SET synchronous_commit = ${setting}`);
    // One untimed round each to warm caches and plans, then rounds in a rotating order.
    for (const v of variants) await round(v);
    for (const v of variants) {
      v.rates = [];
      v.completeMs = [];
      v.cpuPerK = [];
      v.bytesPerJob = [];
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < variants.length; i++) await round(variants[(r + i) % variants.length] as Variant);
    }
    const base = variants[0] as Variant;
    for (const v of variants) {
      const rate = median(v.rates);
      const ms = median(v.completeMs);
      const range = (xs: number[], d: number) => `${Math.min(...xs).toFixed(d)}-${Math.max(...xs).toFixed(d)}`;
      const cpu = median(v.cpuPerK);
      const pct = (x: number, b: number) => `${x >= b ? '+' : ''}${(((x - b) / b) * 100).toFixed(1)}%`;
      const vs = v === base ? '-' : `CPU ${pct(cpu, median(base.cpuPerK))}, jobs/s ${pct(rate, median(base.rates))}`;
      console.log(
        `| ${setting} | ${v.name} | ${cpu.toFixed(1)} (${range(v.cpuPerK, 1)}) | ${rate.toFixed(0)} (${range(v.rates, 0)}) | ${ms.toFixed(3)} (${range(v.completeMs, 3)}) | ${median(v.bytesPerJob).toFixed(0)} | ${vs} |`,
      );
    }
  }
} finally {
  const root = new pg.Client({ connectionString: admin });
  await root.connect();
  for (const v of variants) {
    await v.client?.end();
    await root.query(`DROP DATABASE IF EXISTS ${v.db}`);
  }
  await root.end();
}

// What the live-events triggers cost the moves, in one sitting on a private
// database: claim + complete N jobs in batches of 50 through the real SQL
// functions (skipq_claim, skipq_complete), with the triggers absent, present
// but idle (nobody subscribes), present with a live listener (every move
// logged), and, for the record, the rejected row-level design while idle.
// Medians of several rounds, variants interleaved.
//   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test npx tsx bench/eventsCost.ts [jobs] [rounds] [connections]
import pg from 'pg';
import { migrate } from '../server/db/migrate.js';

const adminUrl = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
const JOBS = Number(process.argv[2] ?? 20_000);
const ROUNDS = Number(process.argv[3] ?? 5);
const CONNECTIONS = Number(process.argv[4] ?? 1);
const BATCH = 50;

const name = `skipq_events_bench_${process.pid}`;
const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const u = new URL(adminUrl);
u.pathname = `/${name}`;
const pool = new pg.Pool({ connectionString: u.toString(), max: CONNECTIONS + 1 });
// DROP DATABASE ... WITH (FORCE) at the end ends whatever connection is left.
pool.on('error', () => {});

type Variant = 'absent' | 'idle' | 'live' | 'row-level idle';

async function setVariant(v: Variant): Promise<void> {
  await pool.query('DROP TRIGGER IF EXISTS task_queue_log_moves ON task_queue; DROP TRIGGER IF EXISTS task_queue_log_enqueues ON task_queue; DROP TRIGGER IF EXISTS bench_row_level ON task_queue');
  await pool.query('TRUNCATE job_event_listeners, job_events');
  if (v === 'idle' || v === 'live') {
    await pool.query(`CREATE TRIGGER task_queue_log_enqueues AFTER INSERT ON task_queue REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION skipq_log_enqueues()`);
    await pool.query(`CREATE TRIGGER task_queue_log_moves AFTER UPDATE ON task_queue REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION skipq_log_moves()`);
  }
  if (v === 'live') await pool.query(`INSERT INTO job_event_listeners VALUES ('bench', now() + interval '1 hour')`);
  if (v === 'row-level idle') {
    await pool.query(`CREATE OR REPLACE FUNCTION bench_row_level() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM job_event_listeners WHERE live_until > now()) THEN RETURN NULL; END IF;
  RETURN NULL;
END $$`);
    await pool.query(`CREATE TRIGGER bench_row_level AFTER UPDATE ON task_queue FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.progress IS DISTINCT FROM NEW.progress) EXECUTE FUNCTION bench_row_level()`);
  }
}

async function fill(): Promise<void> {
  await pool.query('TRUNCATE task_queue');
  await pool.query(`INSERT INTO task_queue (task_type, payload) SELECT 'bench', jsonb_build_object('n', g) FROM generate_series(1, $1::int) AS g`, [JOBS]);
  await pool.query('VACUUM ANALYZE task_queue');
}

// Per batch (claim + complete of 50): on a machine shared with other work a
// round's wall time swings 3x, the median batch far less.
async function drain(worker: string, batches: number[]): Promise<void> {
  const c = await pool.connect();
  try {
    for (;;) {
      const started = performance.now();
      const { rows } = await c.query<{ id: string; attempt: number }>(
        'SELECT id, attempt FROM skipq_claim($1::text, NULL::text[], NULL::text[], $2::int, 60000, NULL::timestamptz)',
        [worker, BATCH],
      );
      if (rows.length === 0) return;
      await c.query('SELECT count(*) FROM skipq_complete($1::text, $2::text[], $3::int[], $4::text[], NULL::timestamptz)', [
        worker,
        rows.map((r) => r.id),
        rows.map((r) => r.attempt),
        rows.map(() => '{"ok":true}'),
      ]);
      batches.push(performance.now() - started);
    }
  } finally {
    c.release();
  }
}

try {
  await migrate(pool);
  const variants: Variant[] = ['absent', 'idle', 'live', 'row-level idle'];
  const times = new Map<Variant, number[]>(variants.map((v) => [v, []]));
  const batchTimes = new Map<Variant, number[]>(variants.map((v) => [v, []]));
  let logged = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const v of variants) {
      await setVariant(v);
      await fill();
      const started = performance.now();
      await Promise.all(Array.from({ length: CONNECTIONS }, (_, i) => drain(`w${i}`, batchTimes.get(v) ?? [])));
      times.get(v)?.push(performance.now() - started);
      if (v === 'live') logged = Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM job_events')).rows[0]?.n);
    }
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const base = median(times.get('absent') ?? []);
  const baseBatch = median(batchTimes.get('absent') ?? []);
  console.log(`claim + complete ${JOBS} jobs in batches of ${BATCH}, ${CONNECTIONS} connection(s), ${ROUNDS} rounds:`);
  for (const v of variants) {
    const m = median(times.get(v) ?? []);
    const b = median(batchTimes.get(v) ?? []);
    console.log(
      `  ${v.padEnd(15)} round median ${m.toFixed(0).padStart(6)} ms (${(((m - base) / base) * 100).toFixed(1).padStart(5)} %, rounds ${(times.get(v) ?? []).map((t) => t.toFixed(0)).join(' ')})` +
        `  batch median ${b.toFixed(2)} ms (${(((b - baseBatch) / baseBatch) * 100).toFixed(1).padStart(5)} %, ${Math.round((BATCH / b) * 1000)} jobs/s)`,
    );
  }
  console.log(`  (live: ${logged} events logged per round)`);
} finally {
  await pool.end();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}

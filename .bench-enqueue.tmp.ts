import pg from 'pg';
import { migrate } from './server/db/migrate.js';
import { createJobId } from './shared/ids.js';

const admin = new pg.Client({ connectionString: 'postgresql://postgres@127.0.0.1:5432/postgres' });
await admin.connect();
const name = `skipq_enqbench_${process.pid}`;
await admin.query(`CREATE DATABASE ${name}`);
const pool = new pg.Pool({ connectionString: `postgresql://postgres@127.0.0.1:5432/${name}`, max: 4 });
try {
  await migrate(pool);
  const OLD = `
WITH inserted AS (
  INSERT INTO task_queue (id, queue, task_type, payload, priority, scheduled_for, max_retries, unique_key, timeout_ms)
  SELECT i.id, i.queue, i.task_type, i.payload::jsonb, i.priority,
         coalesce(i.run_at, now() + coalesce(i.delay_ms, 0) * interval '1 millisecond'),
         i.max_retries, i.unique_key, i.timeout_ms
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[], $7::bigint[], $8::int[], $9::text[], $10::int[])
    AS i(id, queue, task_type, payload, priority, run_at, delay_ms, max_retries, unique_key, timeout_ms)
  ON CONFLICT (queue, task_type, unique_key) WHERE unique_key IS NOT NULL AND status IN ('pending', 'claimed', 'processing')
  DO NOTHING
  RETURNING id, task_type, queue, status, priority, scheduled_for
),
woken AS (
  SELECT count(pg_notify('skipq_jobs', q.queue)) AS n
  FROM (SELECT DISTINCT queue FROM inserted) AS q
)
SELECT inserted.*
FROM inserted, woken`;
  const NEW = `
SELECT e.id, e.task_type, e.queue, e.status, e.priority, e.scheduled_for
FROM skipq_enqueue($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[], $7::bigint[], $8::int[], $9::text[], $10::int[]) AS e`;
  const values = (n: number) => {
    const ids = Array.from({ length: n }, () => createJobId());
    return [ids, ids.map(() => 'default'), ids.map(() => 'note'), ids.map((_, i) => JSON.stringify({ chainId: 'konzum', targetDate: '2026-01-23', i })), ids.map(() => 0), ids.map(() => null), ids.map(() => null), ids.map(() => 3), ids.map(() => null), ids.map(() => null)];
  };
  const client = await pool.connect();
  await client.query('SET synchronous_commit = off');
  for (const size of [1, 10, 100, 500]) {
    const rounds = size >= 100 ? 300 : 3000;
    const total = { old: 0, new: 0 };
    for (let r = 0; r < rounds; r++) {
      for (const [label, text] of (r % 2 ? [['old', OLD], ['new', NEW]] : [['new', NEW], ['old', OLD]]) as Array<['old' | 'new', string]>) {
        const v = values(size);
        const start = process.hrtime.bigint();
        await client.query({ name: label, text, values: v });
        total[label] += Number(process.hrtime.bigint() - start) / 1e6;
      }
      if (r % 50 === 49) await client.query('TRUNCATE task_queue');
    }
    console.log(`batch ${size}: old ${(total.old / rounds).toFixed(3)} ms, new ${(total.new / rounds).toFixed(3)} ms per statement (${((total.new / total.old - 1) * 100).toFixed(1)}%)`);
  }
  client.release();
} finally {
  await pool.end();
  await admin.query(`DROP DATABASE ${name}`);
  await admin.end();
}

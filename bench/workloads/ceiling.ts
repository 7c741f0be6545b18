// W5: PostgreSQL's own ceiling for W3's shape, with no queue system in the way:
// pgbench claims 50 pending rows with FOR UPDATE SKIP LOCKED in one
// transaction and completes them with one UPDATE in the next, as a worker
// that runs jobs between the two must.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PG, createDatabase, dropDatabase, withClient } from '../lib/postgres.js';
import { tuned } from '../lib/tuning.js';
import type { Measurement, RunContext, Workload } from './types.js';

const run = promisify(execFile);
const BATCH = 50;
/** Concurrent pgbench clients. Swept on this machine (2 cores): 2 and 4 ~95,000 jobs/s, 8 ~82,000. */
const CLIENTS = tuned('CEILING_CLIENTS', 2);

const SCRIPT = `WITH next AS (
  SELECT id FROM q WHERE status = 'pending' ORDER BY id LIMIT ${BATCH} FOR UPDATE SKIP LOCKED
)
UPDATE q SET status = 'claimed', worker_id = :client_id, runs = q.runs + 1
FROM next WHERE q.id = next.id;
UPDATE q SET status = 'completed', completed_at = now()
WHERE worker_id = :client_id AND status = 'claimed';
`;

/** The pgbench of this machine: on PATH, or PostgreSQL 15's own. */
export function pgbenchPath(): string {
  return ['/usr/bin/pgbench', '/usr/lib/postgresql/15/bin/pgbench'].find(existsSync) ?? 'pgbench';
}

async function runCeiling(ctx: RunContext): Promise<Measurement> {
  const { round, sizes } = ctx;
  const database = await createDatabase('ceiling');
  round.defer(() => dropDatabase(database));
  const perClient = Math.ceil(sizes.ceilingJobs / BATCH / CLIENTS);
  const transactions = perClient * CLIENTS;
  // The same storage choices as task_queue: partial index on pending rows, fillfactor 80.
  await withClient(database, async (c) => {
    await c.query(`CREATE TABLE q (
      id bigserial PRIMARY KEY,
      status text NOT NULL DEFAULT 'pending',
      payload jsonb NOT NULL,
      runs int NOT NULL DEFAULT 0,
      worker_id int,
      completed_at timestamptz
    ) WITH (fillfactor = 80)`);
    await c.query(`CREATE INDEX q_pending_idx ON q (id) WHERE status = 'pending'`);
    await c.query(`CREATE INDEX q_claimed_idx ON q (worker_id) WHERE status = 'claimed'`);
    // Slack: under SKIP LOCKED a claim may come back short near the end.
    await c.query(`INSERT INTO q (payload) SELECT jsonb_build_object('n', g) FROM generate_series(1, $1::int) AS g`, [transactions * BATCH + BATCH * CLIENTS]);
    await c.query('VACUUM (ANALYZE) q');
  });
  const dir = mkdtempSync(join(tmpdir(), 'skipq-bench-'));
  try {
    const script = join(dir, 'claim-complete.sql');
    writeFileSync(script, SCRIPT);
    const { stdout } = await run(
      pgbenchPath(),
      ['-h', PG.host, '-p', String(PG.port), '-U', PG.user, '-n', '-M', 'prepared', '-c', String(CLIENTS), '-j', '2', '-t', String(perClient), '-f', script, database],
      { signal: round.signal, timeout: 110_000 },
    );
    const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(stdout)?.[1]);
    const { done, twice } = await withClient(database, async (c) => {
      const { rows } = await c.query<{ done: number; twice: number }>(
        `SELECT count(*) FILTER (WHERE status = 'completed')::int AS done, count(*) FILTER (WHERE runs > 1)::int AS twice FROM q`,
      );
      return rows[0] as { done: number; twice: number };
    });
    const problems: string[] = [];
    if (!Number.isFinite(tps)) problems.push(`could not read tps from pgbench:\n${stdout}`);
    if (twice > 0) problems.push(`${twice} rows were completed more than once`);
    if (done < transactions * BATCH * 0.95) problems.push(`only ${done} rows completed by ${transactions} transactions of ${BATCH}`);
    // Rows per transaction times transactions per second (a short claim near the end counts as what it took).
    return { values: { rate: (tps * done) / transactions }, problems };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const ceiling: Workload = {
  id: 'W5',
  title: (s) => `W5 ceiling: pgbench, ${CLIENTS} clients, claim ${BATCH} then complete them in one UPDATE, ${s.ceilingJobs.toLocaleString('en-US')} rows`,
  metrics: [{ key: 'rate', label: 'jobs/s', better: 'higher' }],
  scope: 'database',
  run: runCeiling,
};

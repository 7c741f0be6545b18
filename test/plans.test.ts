import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../server/db/pool.js';
import { jobClaim, jobCompleteAndClaim } from '../server/queries/claim.js';
import { jobCompleteMany, jobFailMany } from '../server/queries/finish.js';
import { createTestDb, type TestDb } from './support/db.js';

// The hot path's statements, planned as the server runs them (prepared, so a
// generic plan after five runs) over a table with many rows: none may read
// task_queue whole. A hash join of the completions with task_queue (the plan
// PostgreSQL picked for the metric labels' join) read every row on each
// completion batch: 13.6 ms of a 23 ms batch of 250 with 20,000 rows.

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
}

function nodesOf(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodesOf)];
}

/** A Db that plans each statement instead of running it, keeping the plan. */
function planning(client: pg.PoolClient, plans: PlanNode[]): Db {
  return {
    query: (async (config: pg.QueryConfig) => {
      const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>({ text: `EXPLAIN (FORMAT JSON) ${config.text}`, values: config.values });
      plans.push(rows[0]!['QUERY PLAN'][0]!.Plan);
      return { rows: [] };
    }) as unknown as Db['query'],
  };
}

describe('hot-path statement plans', () => {
  let db: TestDb;
  let client: pg.PoolClient;
  beforeAll(async () => {
    db = await createTestDb();
    await db.pool.query(`INSERT INTO task_queue (id, task_type, payload, status, completed_at) SELECT 'done' || g, 'noop', '{}', 'completed', now() FROM generate_series(1, 20000) g`);
    await db.pool.query(`INSERT INTO task_queue (id, task_type, payload) SELECT 'job' || g, 'noop', '{}' FROM generate_series(1, 20000) g`);
    await db.pool.query('ANALYZE task_queue');
    client = await db.pool.connect();
    await client.query('SET plan_cache_mode = force_generic_plan');
  });
  afterAll(async () => {
    client?.release();
    await db?.drop();
  });

  const held = Array.from({ length: 250 }, (_, i) => ({ id: `job${i + 1}`, attempt: 1 }));
  const claim = { workerId: 'w', types: ['noop'], queues: null, limit: 250, leaseMs: 30_000, now: null };
  const statements: Array<[string, (db: Db) => Promise<unknown>]> = [
    ['jobClaim', (d) => jobClaim(d, claim)],
    ['jobCompleteAndClaim', (d) => jobCompleteAndClaim(d, claim, held.map((j) => ({ ...j, resultJson: null })))],
    ['jobCompleteMany', (d) => jobCompleteMany(d, { workerId: 'w', jobs: held.map((j) => ({ ...j, resultJson: null })), now: null })],
    [
      'jobFailMany',
      (d) =>
        jobFailMany(d, {
          workerId: 'w',
          jobs: held.map((j) => ({ ...j, error: 'boom', code: 'HANDLER_ERROR' as const, retry: true, delayMs: null })),
          policiesJson: null,
          now: null,
        }),
    ],
  ];

  it('skipq_claim joins the jobs it picked back through the primary key, under a generic plan: a claim of 10 reads a few pages, not the table', async () => {
    // Its UPDATE ... FROM next was a hash join over a sequential scan of task_queue (909 pages
    // read for 10 jobs here, against 117 with the join by primary key).
    await client.query(`SELECT * FROM skipq_claim('warm', ARRAY['noop'], NULL, 10, 30000, NULL)`);
    const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: { 'Shared Hit Blocks': number; 'Shared Read Blocks': number; 'Actual Rows': number } }> }>(
      `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM skipq_claim('w', ARRAY['noop'], NULL, 10, 30000, NULL)`,
    );
    const plan = rows[0]!['QUERY PLAN'][0]!.Plan;
    const { rows: size } = await client.query<{ relpages: number }>(`SELECT relpages FROM pg_class WHERE relname = 'task_queue'`);
    expect(plan['Actual Rows']).toBe(10);
    expect(size[0]!.relpages).toBeGreaterThan(400);
    expect(plan['Shared Hit Blocks'] + plan['Shared Read Blocks']).toBeLessThan(size[0]!.relpages / 3);
  });

  it.each(statements)('%s reads task_queue by index only, under a generic plan', async (_name, run) => {
    const plans: PlanNode[] = [];
    await run(planning(client, plans));
    expect(plans).toHaveLength(1);
    const scans = nodesOf(plans[0]!).filter((n) => n['Relation Name'] === 'task_queue');
    for (const scan of scans) expect(scan['Node Type']).not.toBe('Seq Scan');
  });
});

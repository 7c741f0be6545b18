import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, MIGRATIONS_DIR } from '../server/db/migrate.js';
import { createTestDb, type TestDb } from './support/db.js';

interface PrismaField {
  model: string;
  table: string;
  column: string;
  prismaType: string;
  optional: boolean;
  dbType: string | undefined;
}

/** Reads models and scalar fields from schema.prisma (the subset skipq uses). */
function prismaFields(): PrismaField[] {
  const text = readFileSync(new URL('../prisma/schema.prisma', import.meta.url), 'utf8');
  const fields: PrismaField[] = [];
  for (const match of text.matchAll(/^model (\w+) \{([\s\S]*?)^\}/gm)) {
    const [, model, body] = match as unknown as [string, string, string];
    const table = /@@map\("([^"]+)"\)/.exec(body)?.[1] ?? model;
    for (const line of body.split('\n')) {
      const m = /^\s+(\w+)\s+(\w+(?:\[\])?)(\??)(.*)$/.exec(line);
      if (!m || line.trim().startsWith('@@') || line.trim().startsWith('//')) continue;
      const [, name, type, optional, rest] = m as unknown as [string, string, string, string, string];
      fields.push({
        model,
        table,
        column: /@map\("([^"]+)"\)/.exec(rest)?.[1] ?? name,
        prismaType: type,
        optional: optional === '?',
        dbType: /@db\.(\w+)/.exec(rest)?.[1],
      });
    }
  }
  return fields;
}

const PG_TYPE: Record<string, string> = {
  String: 'text',
  Int: 'integer',
  BigInt: 'bigint',
  Boolean: 'boolean',
  Json: 'jsonb',
  DateTime: 'timestamp without time zone',
  'DateTime:Timestamptz': 'timestamp with time zone',
  'String[]': 'ARRAY',
};

describe('schema and migrations', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb();
  });
  afterAll(() => db.drop());

  it('has every Prisma model field as a column of the matching type and nullability', async () => {
    const fields = prismaFields();
    expect(fields.length).toBeGreaterThanOrEqual(29);
    const { rows } = await db.pool.query<{ table_name: string; column_name: string; data_type: string; is_nullable: string }>(
      `SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = 'public'`,
    );
    const columns = new Map(rows.map((r) => [`${r.table_name}.${r.column_name}`, r]));
    for (const f of fields) {
      const column = columns.get(`${f.table}.${f.column}`);
      expect(column, `${f.model}.${f.column} missing from ${f.table}`).toBeDefined();
      const expected = PG_TYPE[f.dbType ? `${f.prismaType}:${f.dbType}` : f.prismaType];
      expect(column?.data_type, `${f.table}.${f.column}`).toBe(expected);
      // Prisma lists (String[]) are nullable columns in the SQL it generates.
      expect(column?.is_nullable, `${f.table}.${f.column} nullability`).toBe(f.optional || f.prismaType.endsWith('[]') ? 'YES' : 'NO');
    }
  });

  it('records each migration in _prisma_migrations with the checksum Prisma computes', async () => {
    const { rows } = await db.pool.query<{ migration_name: string; checksum: string; finished_at: Date | null }>(
      'SELECT migration_name, checksum, finished_at FROM _prisma_migrations ORDER BY migration_name',
    );
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      const sql = readFileSync(join(MIGRATIONS_DIR, row.migration_name, 'migration.sql'));
      expect(row.checksum).toBe(createHash('sha256').update(sql).digest('hex'));
      expect(row.finished_at).toBeInstanceOf(Date);
    }
  });

  it('enforces the status set and the priority range in the database', async () => {
    await expect(db.pool.query(`INSERT INTO task_queue (task_type, payload, status) VALUES ('x', '{}', 'running')`)).rejects.toThrow(/task_queue_status_check/);
    await expect(db.pool.query(`INSERT INTO task_queue (task_type, payload, priority) VALUES ('x', '{}', 11)`)).rejects.toThrow(/task_queue_priority_check/);
  });

  it('migrates once when two servers start at the same time', async () => {
    const fresh = await createTestDb();
    try {
      await fresh.pool.query('DROP TABLE task_queue CASCADE; DROP TABLE api_keys; DROP TABLE _prisma_migrations; DROP FUNCTION claim_tasks, complete_task, fail_task, schedule_task, cleanup_old_tasks, skipq_uuid_v7');
      const a = new pg.Pool({ connectionString: fresh.url, max: 2 });
      const b = new pg.Pool({ connectionString: fresh.url, max: 2 });
      const [ra, rb] = await Promise.all([migrate(a), migrate(b)]);
      await Promise.all([a.end(), b.end()]);
      expect([...ra.applied, ...rb.applied].sort()).toEqual([...ra.applied, ...ra.alreadyApplied].sort());
      expect(ra.applied.length + rb.applied.length).toBe(ra.applied.length + ra.alreadyApplied.length);
      const { rows } = await fresh.pool.query('SELECT migration_name FROM _prisma_migrations');
      expect(rows.length).toBe(ra.applied.length + ra.alreadyApplied.length);
    } finally {
      await fresh.drop();
    }
  });

  it('uses the partial claim index for the claim query', async () => {
    await db.pool.query(`INSERT INTO task_queue (task_type, payload, status, completed_at) SELECT 'x', '{}', 'completed', now() FROM generate_series(1, 20000)`);
    await db.pool.query(`INSERT INTO task_queue (task_type, payload) SELECT 'x', '{}' FROM generate_series(1, 10)`);
    await db.pool.query('ANALYZE task_queue');
    const { rows } = await db.pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN
      SELECT id FROM task_queue
      WHERE status = 'pending' AND scheduled_for <= now()
      ORDER BY priority DESC, scheduled_for, id LIMIT 50 FOR UPDATE SKIP LOCKED`);
    const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(plan).toContain('task_queue_claim_idx');
    expect(plan).not.toContain('Seq Scan');
  });
});

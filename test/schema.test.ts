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
      await fresh.pool.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public');
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

  it('claims through an ordered walk of the partial index, with stale statistics and with 200,000 finished rows', async () => {
    const client = await db.pool.connect();
    try {
      const planOf = async (call = `SELECT count(*) FROM skipq_claim('w', ARRAY['x'], NULL, 50, 1000)`): Promise<string> => {
        const logs: string[] = [];
        const onNotice = (msg: { message?: string }) => logs.push(msg.message ?? '');
        client.on('notice', onNotice);
        // auto_explain reports the plans of the statements inside skipq_claim.
        await client.query("LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; SET client_min_messages = log");
        await client.query(call);
        await client.query('RESET client_min_messages');
        client.off('notice', onNotice);
        return logs.join('\n');
      };
      // Fresh rows, never analyzed: the case where a planner left alone sorts the whole backlog.
      await client.query(`INSERT INTO task_queue (task_type, payload) SELECT 'x', '{}' FROM generate_series(1, 5000)`);
      const stale = await planOf();
      expect(stale).toContain('Index Scan using task_queue_claim_idx');
      expect(stale).not.toMatch(/Bitmap|Sort|Seq Scan on task_queue/);
      await client.query(`INSERT INTO task_queue (task_type, payload, status, completed_at) SELECT 'x', '{}', 'completed', now() FROM generate_series(1, 200000)`);
      await client.query('ANALYZE task_queue');
      const analyzed = await planOf();
      expect(analyzed).toContain('Index Scan using task_queue_claim_idx');
      expect(analyzed).not.toMatch(/Bitmap|Sort|Seq Scan on task_queue/);
      // Completing a batch held since the last ANALYZE finds each row by its primary key.
      const { rows } = await client.query<{ id: string; attempt: number }>(`SELECT id, attempt FROM skipq_claim('w', NULL, NULL, 200, 60000)`);
      const complete = await planOf(
        `SELECT count(*) FROM skipq_complete('w', '{${rows.map((r) => r.id).join(',')}}', '{${rows.map((r) => r.attempt).join(',')}}', NULL)`,
      );
      expect(complete).toContain('Index Scan using task_queue_pkey');
      expect(complete).not.toMatch(/Seq Scan on task_queue|Bitmap/);
    } finally {
      client.release();
    }
  });
});

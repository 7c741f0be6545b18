import pg from 'pg';
import { inject } from 'vitest';
import { withDatabase } from './globalSetup.js';

let counter = 0;

/** A fresh, migrated database cloned from the run's template, and a pool on it. */
export interface TestDb {
  url: string;
  pool: pg.Pool;
  drop(): Promise<void>;
}

/** Creates a database for one test file (or test). */
export async function createTestDb(): Promise<TestDb> {
  const adminUrl = inject('adminUrl');
  const template = inject('templateDb');
  const name = `skipq_t_${template.split('_').at(-1)}_${process.pid}_${counter++}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${template}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(adminUrl, name);
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  pool.on('error', () => {});
  return {
    url,
    pool,
    async drop() {
      await pool.end();
      const a = new pg.Client({ connectionString: adminUrl });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
      await a.end();
    },
  };
}

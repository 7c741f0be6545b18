import type pg from 'pg';
import { readServerRecord, startDataDirDatabase } from '../db/dataDir.js';
import { createPool } from '../db/pool.js';
import type { EmbeddedDatabase } from '../db/embedded.js';
import type { ServerEnv } from '../env.js';
import { describeDatabase } from '../waitForDatabase.js';
import { CliError, progress } from './errors.js';

/** The database an admin command (migrate, keys) works on, and how to let go of it. */
export interface AdminDatabase {
  url: string;
  pool: pg.Pool;
  /** Closes the pool, and stops the embedded PostgreSQL if this command started it. */
  close(): Promise<void>;
}

/**
 * Opens DATABASE_URL, else the embedded database of SKIPQ_DATA_DIR: the one a
 * running server recorded in `server.json`, or one started for this command
 * (a second PostgreSQL on a data directory in use fails on its lock, so a
 * command must never start one while a server runs).
 */
export async function openAdminDatabase(env: ServerEnv): Promise<AdminDatabase> {
  let url = env.DATABASE_URL;
  let embedded: EmbeddedDatabase | undefined;
  if (!url) {
    const record = await readServerRecord(env.SKIPQ_DATA_DIR);
    if (record) {
      progress(`using the embedded database of the server running on ${env.SKIPQ_DATA_DIR} (pid ${record.pid}): ${record.databaseUrl}`);
      url = record.databaseUrl;
    } else {
      progress(`starting the embedded database in ${env.SKIPQ_DATA_DIR} (no server runs on it)`);
      embedded = await startDataDirDatabase(env.SKIPQ_DATA_DIR, progress);
      url = embedded.url;
    }
  }
  const pool = createPool(url, 2);
  const close = async (): Promise<void> => {
    await pool.end().catch(() => {});
    await embedded?.stop();
  };
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    await close();
    throw new CliError(`cannot reach PostgreSQL at ${describeDatabase(url)}: ${(error as Error).message || String((error as { code?: unknown }).code ?? error)}`);
  }
  return { url, pool, close };
}

/** Runs `work` on the admin database and always lets go of it. */
export async function withAdminDatabase<T>(env: ServerEnv, work: (db: AdminDatabase) => Promise<T>): Promise<T> {
  const db = await openAdminDatabase(env);
  try {
    return await work(db);
  } finally {
    await db.close();
  }
}

import { join } from 'node:path';
import type { ServerEnv } from '../env.js';
import { startEmbeddedPostgres } from './embedded.js';
import { migrate } from './migrate.js';
import { createPool } from './pool.js';

/** `npm run db:migrate`: applies pending migrations to DATABASE_URL (or the embedded database) and exits. */
export async function migrateOnly(env: ServerEnv): Promise<void> {
  const embedded = env.DATABASE_URL ? undefined : await startEmbeddedPostgres({ dataDir: join(env.SKIPQ_DATA_DIR, 'pg') });
  const pool = createPool(env.DATABASE_URL ?? (embedded as { url: string }).url, 2);
  try {
    const { applied, alreadyApplied } = await migrate(pool);
    console.log(`[skipq] migrations applied: ${applied.length ? applied.join(', ') : 'none'}; already applied: ${alreadyApplied.length}`);
  } finally {
    await pool.end();
    await embedded?.stop();
  }
}

import { Command } from 'commander';
import type { ServerEnv } from '../env.js';
import { readEnv } from '../env.js';
import { progress } from './errors.js';

/** Applies pending migrations to DATABASE_URL or the embedded database, printing each as it goes. */
export async function runMigrations(env: ServerEnv): Promise<void> {
  const [{ migrate }, { describeDatabase }, { withAdminDatabase }] = await Promise.all([import('../db/migrate.js'), import('../waitForDatabase.js'), import('./adminDatabase.js')]);
  await withAdminDatabase(env, async ({ pool, url }) => {
    progress(`migrating ${describeDatabase(url)}`);
    const { applied, alreadyApplied } = await migrate(pool, undefined, (name) => progress(`applying ${name}`));
    console.log(`[skipq] migrations applied: ${applied.length ? applied.join(', ') : 'none'}; already applied: ${alreadyApplied.length}`);
  });
}

/** `skipq migrate`. */
export function migrateCommand(): Command {
  return new Command('migrate')
    .description('apply pending migrations to DATABASE_URL or the embedded database (a running server\'s, if one runs), then exit')
    .action(() => runMigrations(readEnv()));
}

import { Command } from 'commander';
import { join } from 'node:path';
import { readEmbeddedPort, readServerRecord } from '../db/dataDir.js';
import { embeddedUrl } from '../db/embedded.js';
import { readEnv } from '../env.js';
import { CliError, progress } from './errors.js';

/** `skipq db url`: where the database is, as a URL psql and pg take. */
export function dbCommand(): Command {
  const db = new Command('db').description('the database skipq uses');
  db.command('url')
    .description('print the database URL (DATABASE_URL, or the embedded database\'s: psql "$(skipq db url)")')
    .action(async () => {
      const env = readEnv();
      if (env.DATABASE_URL) {
        progress('DATABASE_URL is set: skipq uses it, not the embedded database');
        console.log(env.DATABASE_URL);
        return;
      }
      const record = await readServerRecord(env.SKIPQ_DATA_DIR);
      if (record) {
        console.log(record.databaseUrl);
        return;
      }
      const port = await readEmbeddedPort(env.SKIPQ_DATA_DIR);
      if (port === null) {
        throw new CliError(`the embedded database in ${join(env.SKIPQ_DATA_DIR, 'pg')} was never started: run skipq serve (npm start) first`);
      }
      progress(`no server runs on ${env.SKIPQ_DATA_DIR}, so its embedded database is stopped: skipq serve (npm start) starts it on this URL`);
      console.log(embeddedUrl(port));
    });
  return db;
}

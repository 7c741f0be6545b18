import pg from 'pg';

/** The PostgreSQL every system shares; each round gets its own database on it. */
export const PG = Object.freeze({ host: '127.0.0.1', port: 5432, user: 'postgres', adminDatabase: 'test' });

/** Connection string of a database on the shared server. */
export function databaseUrl(database: string): string {
  return `postgres://${PG.user}@${PG.host}:${PG.port}/${database}`;
}

/** Runs `fn` with a short-lived client; the bench never holds connections between steps. */
export async function withClient<T>(database: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl(database) });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

let sequence = 0;

/**
 * Creates a fresh, empty database for one round, named for the run and system
 * so leftovers are recognisable; returns its name.
 */
export async function createDatabase(system: string): Promise<string> {
  const name = `bench_${system}_${process.pid}_${++sequence}`;
  // Names are built from constants and numbers above, never from input.
  await withClient(PG.adminDatabase, (c) => c.query(`CREATE DATABASE ${name}`));
  return name;
}

/** Drops a database this run created, ending any connection still open on it. */
export async function dropDatabase(name: string): Promise<void> {
  if (!/^bench_[a-z0-9_]+$/.test(name)) throw new Error(`refusing to drop ${name}: not a bench database`);
  await withClient(PG.adminDatabase, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}

/** The server settings that decide how fast commits are, for the report. */
export async function serverSettings(): Promise<Record<string, string>> {
  return withClient(PG.adminDatabase, async (c) => {
    const out: Record<string, string> = {};
    const { rows } = await c.query<{ v: string }>('SELECT version() AS v');
    out.version = rows[0]?.v.split(' on ')[0] ?? '?';
    for (const name of ['shared_buffers', 'synchronous_commit', 'max_connections', 'fsync', 'wal_level', 'work_mem']) {
      const r = await c.query<Record<string, string>>(`SHOW ${name}`);
      out[name] = Object.values(r.rows[0] ?? {})[0] ?? '?';
    }
    return out;
  });
}

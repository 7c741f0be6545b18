import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { EMBEDDED_PORT_FILE, freePort, isPortFree, startEmbeddedPostgres, type EmbeddedDatabase } from './embedded.js';

// What a skipq data directory holds besides the cluster (`pg/`): the cluster's
// port (`pg.port`, kept from start to start so a psql URL stays valid) and, while
// a server runs on the embedded database, `server.json`, which lets a second
// process (keys, migrate, db url, a second serve) find that server and its
// PostgreSQL instead of starting a second one on a locked directory.

/** File a serving process writes into the data directory while it runs. */
export const SERVER_RECORD_FILE = 'server.json';

/** What `server.json` says about the server running on this data directory. */
export interface ServerRecord {
  pid: number;
  /** The server's tRPC endpoint. */
  url: string;
  /** Connection string of the embedded database it runs. */
  databaseUrl: string;
  startedAt: string;
}

/** True when a process with this id exists (EPERM: it exists but is not ours). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The record of the server running on `dataDir`, or null when there is none or its process is gone (a stale file). */
export async function readServerRecord(dataDir: string): Promise<ServerRecord | null> {
  let text: string;
  try {
    text = await readFile(join(dataDir, SERVER_RECORD_FILE), 'utf8');
  } catch {
    return null;
  }
  try {
    const record = JSON.parse(text) as ServerRecord;
    if (!Number.isInteger(record.pid) || typeof record.databaseUrl !== 'string') return null;
    return isAlive(record.pid) ? record : null;
  } catch {
    return null;
  }
}

/**
 * Writes this process's record; answers a function that removes it (only if it is
 * still this process's), also called at exit so a crash in between leaves no stale file
 * (a SIGKILL does; readers ignore a record whose pid is dead).
 */
export async function writeServerRecord(dataDir: string, record: Omit<ServerRecord, 'pid' | 'startedAt'>): Promise<() => void> {
  const file = join(dataDir, SERVER_RECORD_FILE);
  await mkdir(dataDir, { recursive: true });
  await writeFile(file, `${JSON.stringify({ pid: process.pid, ...record, startedAt: new Date().toISOString() }, null, 2)}\n`);
  const remove = (): void => {
    process.removeListener('exit', remove);
    try {
      if ((JSON.parse(readFileSync(file, 'utf8')) as ServerRecord).pid === process.pid) rmSync(file, { force: true });
    } catch {
      // Already gone.
    }
  };
  process.once('exit', remove);
  return remove;
}

/** The pid in a cluster's `postmaster.pid` when that process still runs PostgreSQL, else null. */
async function runningPostmaster(clusterDir: string): Promise<number | null> {
  let pid: number;
  try {
    pid = Number((await readFile(join(clusterDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return null;
  // A pid reused by an unrelated process is not a lock (where /proc tells).
  const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => 'postgres');
  return comm.trim() === 'postgres' ? pid : null;
}

/** The port the embedded database of `dataDir` listens on, and whether it is new (not yet recorded). */
export interface EmbeddedPortChoice {
  port: number;
  /** The recorded port when it was in use and a new one was chosen. */
  movedFrom?: number;
  recorded: boolean;
}

/**
 * The recorded port of `dataDir`'s embedded database when it is free, else a new
 * free one (the first start, or the recorded port taken by another program).
 * The choice is recorded by {@link recordEmbeddedPort} once PostgreSQL started on it.
 */
export async function chooseEmbeddedPort(dataDir: string): Promise<EmbeddedPortChoice> {
  const recorded = await readEmbeddedPort(dataDir);
  if (recorded !== null && (await isPortFree(recorded))) return { port: recorded, recorded: true };
  return { port: await freePort(), recorded: false, ...(recorded !== null ? { movedFrom: recorded } : {}) };
}

/** The port recorded for `dataDir`'s embedded database, or null before its first start. */
export async function readEmbeddedPort(dataDir: string): Promise<number | null> {
  try {
    const port = Number((await readFile(join(dataDir, EMBEDDED_PORT_FILE), 'utf8')).trim());
    return Number.isInteger(port) && port > 0 && port < 65536 ? port : null;
  } catch {
    return null;
  }
}

/** Records the port the embedded database of `dataDir` started on. */
export async function recordEmbeddedPort(dataDir: string, port: number): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  await writeFile(join(dataDir, EMBEDDED_PORT_FILE), `${port}\n`);
}

/**
 * Starts the embedded database of a skipq data directory (cluster in `<dataDir>/pg`)
 * on its recorded port, recording a new one at the first start.
 */
export async function startDataDirDatabase(dataDir: string, log: (message: string) => void): Promise<EmbeddedDatabase> {
  const holder = await runningPostmaster(join(dataDir, 'pg'));
  if (holder !== null) {
    throw new Error(
      `embedded PostgreSQL did not start: another PostgreSQL (pid ${holder}) already runs on its data directory ${join(dataDir, 'pg')} ` +
        '(a skipq command using it, or one left behind by a killed process: stop it, or use another SKIPQ_DATA_DIR)',
    );
  }
  const choice = await chooseEmbeddedPort(dataDir);
  if (choice.movedFrom !== undefined) log(`port ${choice.movedFrom} of the embedded database is in use by another program; moving it to port ${choice.port}`);
  const embedded = await startEmbeddedPostgres({ dataDir: join(dataDir, 'pg'), port: choice.port });
  if (!choice.recorded) await recordEmbeddedPort(dataDir, choice.port);
  return embedded;
}

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type pg from 'pg';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import type { TRPCError } from '@trpc/server';
import { ERROR_CODES, isJobRegistry, LIMITS, type JobRegistry } from '../shared/index.js';
import { QueueError } from './errors.js';
import { sendJson, sendRefusal } from './httpReply.js';
import { createAuthenticator, isLoopback, type Authenticator } from './auth.js';
import { createContextInner, type QueueContext, type ServerDeps } from './context.js';
import { createDashboard, type DashboardOptions } from './dashboard.js';
import { startDataDirDatabase } from './db/dataDir.js';
import { probeListen, type EmbeddedDatabase } from './db/embedded.js';
import { migrate } from './db/migrate.js';
import { createPool } from './db/pool.js';
import { retryingOnce } from './db/retry.js';
import { createPrisma } from './db/prisma.js';
import { createEnqueuer } from './enqueue.js';
import { createMaintenance, type Maintenance } from './maintenance.js';
import type { RetentionTuning } from './retention.js';
import { createJobWaiters } from './jobWaiters.js';
import { recordJobTypes } from './jobTypes.js';
import { createEventsRoom } from './events.js';
import { registrySchedules, upsertSchedule } from './schedules.js';
import { createNotifyHub } from './notify.js';
import { createFastCall } from './fastCall.js';
import { createSseCall } from './sseCall.js';
import { createHttpGate } from './httpGate.js';
import { createOpenApiDocument, OPENAPI_PATH } from './openapi.js';
import { createRest, REST_PREFIX } from './rest.js';
import { PACKAGE_DIR } from './packageDir.js';
import { appRouter } from './routers/_app.js';
import { describeDatabase, waitForDatabase } from './waitForDatabase.js';
import { createLogger, enabled, loggerFromLog, type SkipqLogger } from './logger.js';
import { createLimitedQueues } from './limitedQueues.js';
import { createMetrics, type ServerMetrics } from './metrics.js';
import { createProbes } from './probes.js';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { randomUUID } from 'node:crypto';

// What the gate (keys, body budget) stands before: tRPC, the REST surface and its document.
const isApiUrl = (url: string | undefined): boolean => !!url && (url.startsWith('/trpc/') || url.startsWith(REST_PREFIX) || url === OPENAPI_PATH || url.startsWith(`${OPENAPI_PATH}?`));

// An `x-request-id` sent by a proxy or the caller is kept when it looks like an id; otherwise one is made.
const REQUEST_ID = /^[\w.:@-]{1,128}$/;

const VERSION = (JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8')) as { version: string }).version;

/** Options of {@link createQueueServer}. Every one has a default; the CLI fills them from the environment. */
export interface QueueServerOptions {
  /** PostgreSQL to use. Without it an embedded PostgreSQL runs with its data under `dataDir`. */
  databaseUrl?: string;
  /** The job registry; without it any JSON payload is accepted. */
  jobs?: JobRegistry;
  /** Port to listen on (0: any free port). Default 3000. */
  port?: number;
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** Where the embedded PostgreSQL keeps its files. Default `.data`. */
  dataDir?: string;
  poolSize?: number;
  /** Largest request body (413 past it). Default 16 MiB. */
  maxBodyBytes?: number;
  /**
   * Request body bytes held at once over all requests; a request that would go
   * past it gets 429 SERVER_BUSY (with Retry-After) before its body is read.
   * At least `maxBodyBytes`. Default `maxBodyBytes` (16 MiB): one body of the
   * largest size at a time, or thousands of ordinary ones. Measured here, one
   * 15 MiB body costs about 5x its size in short-lived copies until V8 collects
   * them, so twice that let a burst of keyed 15 MiB uploads reach 420 MiB RSS;
   * this default stays near 220-300 MiB.
   */
  maxInflightBodyBytes?: number;
  maxPayloadBytes?: number;
  /** How long to wait for an unreachable PostgreSQL at start, retrying with backoff (0: fail at once). Default 60000. */
  startupTimeoutMs?: number;
  /** How often a waiting claim looks for work when no wake-up came (delayed jobs, lost LISTEN). Default 1000. */
  pollIntervalMs?: number;
  /** How often expired leases are rescued. Default 5000. */
  rescueIntervalMs?: number;
  /** How often the cron leader looks for due schedule ticks. Default 1000. */
  cronIntervalMs?: number;
  /** Days to keep completed and cancelled jobs (0: forever); `queues.configure({ retentionDays })` overrides it per queue. Default 7. */
  retentionDays?: number;
  /** Days to keep failed jobs, the dead letters (0: forever); `queues.configure({ failedRetentionDays })` overrides it per queue. Default 30. */
  failedRetentionDays?: number;
  /** How retention paces its deletes (batch size, pause, cap per pass, interval); see RETENTION_TUNING. */
  retention?: Partial<RetentionTuning>;
  /** Run rescue and cleanup in this process. Default true. */
  maintenance?: boolean;
  /** Require API keys even on loopback (they are always required beyond it). Default: required once any key exists. */
  requireAuth?: boolean;
  /** The web dashboard at `/` (false: not served). Default: served, payloads shown on click. */
  dashboard?: DashboardOptions | false;
  /** API keys remembered (and, apart, unknown key ids). Default 1000. */
  keyCacheSize?: number;
  /**
   * The clock of every job move (leases, backoff, timeouts, the rescuer).
   * Default: the database's. Tests pass one to travel in time instead of sleeping.
   */
  now?: () => Date;
  /**
   * A pino (or pino-compatible) logger. Default: {@link createLogger} (JSON lines
   * on stdout, pretty in a terminal, level from `LOG_LEVEL`). Requests at debug;
   * startup, shutdown, migrations, leader changes, rescues and retention at info;
   * every 5xx at error with its request id.
   */
  logger?: SkipqLogger;
  /**
   * Serve `/metrics`, `/healthz` and `/readyz` (also) on this port, without keys:
   * for a scraper on a private network. Absent: only on the main port, where
   * `/metrics` needs an admin key once keys exist.
   */
  metricsPort?: number;
  /** Live events: how long events keep being logged after the last subscriber left, so a reconnect with lastEventId loses nothing. Default 120000. */
  eventsResumeWindowMs?: number;
  /** Live events: how long logged events are kept (at least the resume window). Default 600000. */
  eventsRetentionMs?: number;
  /** Live events: how often this server prunes the event log (0: never). Default 10000. */
  eventsPruneIntervalMs?: number;
  /** Older form of `logger`: every line's message, whatever its level (debug dropped). Ignored when `logger` is given. */
  log?: (message: string) => void;
}

/** A running skipq server. */
export interface QueueServer {
  /** Base URL of the tRPC endpoint, e.g. `http://127.0.0.1:3000/trpc`. */
  url: string;
  port: number;
  pool: pg.Pool;
  /** Connection string of the embedded PostgreSQL this server started (null with `databaseUrl`). */
  embeddedDatabaseUrl: string | null;
  deps: ServerDeps;
  auth: Authenticator;
  maintenance: Maintenance;
  /** This server's Prometheus metrics (its own registry). */
  metrics: ServerMetrics;
  /** The port of `metricsPort`, when asked for. */
  metricsPort?: number;
  /** Stops accepting, finishes requests in flight, releases long-polls, then closes the database (and embedded PostgreSQL). */
  close(): Promise<void>;
}

/** Loads a registry from a module exporting it as `default` or `jobs`. */
export async function loadRegistry(modulePath: string): Promise<JobRegistry> {
  const specifier = /^\.{0,2}\//.test(modulePath) ? pathToFileURL(resolve(modulePath)).href : modulePath;
  const mod = (await import(specifier)) as {
    default?: unknown;
    jobs?: unknown;
  };
  const candidate = mod.jobs ?? mod.default;
  if (!isJobRegistry(candidate)) throw new Error(`${modulePath} does not export a registry made by defineJobs (as "jobs" or default)`);
  return candidate;
}

async function hasActiveKey(pool: pg.Pool): Promise<boolean> {
  const { rows } = await pool.query<{ any: boolean }>('SELECT EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL) AS any');
  return rows[0]?.any ?? false;
}

/** Why the server cannot listen, in one line that says what to do. */
function listenError(error: NodeJS.ErrnoException, port: number, host: string): Error {
  if (error.code === 'EADDRINUSE') {
    return new Error(`port ${port} on ${host} is in use (another skipq server, or another program): stop it, or choose another port with --port / PORT`, { cause: error });
  }
  if (error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND') return new Error(`cannot listen on ${host}: no such address on this machine (--host / HOST)`, { cause: error });
  if (error.code === 'EACCES') return new Error(`not allowed to listen on port ${port} (ports below 1024 need privileges): choose another with --port / PORT`, { cause: error });
  return new Error(`cannot listen on ${host}:${port}: ${error.message}`, { cause: error });
}

function rejectTooLarge(req: IncomingMessage, res: ServerResponse, maxBodyBytes: number): boolean {
  const length = Number(req.headers['content-length'] ?? 0);
  if (!(length > maxBodyBytes)) return false;
  // Through tRPC's own formatter, like every other error body.
  sendRefusal(req, res, new QueueError(ERROR_CODES.PAYLOAD_TOO_LARGE, `request body is ${length} bytes; the limit is ${maxBodyBytes}`), { connection: 'close' });
  req.resume();
  return true;
}

/**
 * Starts a skipq server: database (embedded unless `databaseUrl`), migrations,
 * LISTEN hub, maintenance, and the tRPC endpoint under `/trpc`.
 * @example const server = await createQueueServer({ databaseUrl, jobs, port: 0 });
 */
export async function createQueueServer(options: QueueServerOptions = {}): Promise<QueueServer> {
  const logger = options.logger ?? (options.log ? loggerFromLog(options.log) : createLogger());
  // Waiting for PostgreSQL and a lost LISTEN connection are warnings.
  const warn = (message: string): void => logger.warn(message);
  const log = (message: string): void => logger.info(message);
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 3000;
  // Checked before anything starts: a clash found at listen() came after the
  // embedded database had started and migrated, and left it running.
  const listenProblem = port !== 0 ? await probeListen(port, host) : null;
  if (listenProblem) throw listenError(listenProblem, port, host);
  const maxPayloadBytes = options.maxPayloadBytes ?? LIMITS.defaultPayloadBytes;
  const maxBodyBytes = options.maxBodyBytes ?? 16 * 1024 * 1024;
  const maxInflightBodyBytes = options.maxInflightBodyBytes ?? maxBodyBytes;
  if (maxInflightBodyBytes < maxBodyBytes) {
    throw new Error(`maxInflightBodyBytes (${maxInflightBodyBytes}) is below maxBodyBytes (${maxBodyBytes}): a body of the largest allowed size could never be read`);
  }
  let embedded: EmbeddedDatabase | undefined;
  let databaseUrl = options.databaseUrl;
  if (!databaseUrl) {
    const dataDir = options.dataDir ?? '.data';
    embedded = await startDataDirDatabase(dataDir, log);
    databaseUrl = embedded.url;
    log(`embedded PostgreSQL at ${embedded.url} (data in ${join(dataDir, 'pg')}; psql "${embedded.url}")`);
  }
  const pool = createPool(databaseUrl, options.poolSize ?? 10);
  let closing = false;
  // Whatever started before a failure is stopped again, newest first: a failed start leaves nothing running.
  const started: Array<() => Promise<unknown>> = [() => pool.end(), async () => embedded?.stop()];
  const undoStart = async (): Promise<void> => {
    for (const stop of started.reverse()) await stop().catch(() => {});
  };
  try {
    await waitForDatabase(pool, describeDatabase(databaseUrl), { timeoutMs: options.startupTimeoutMs ?? 60_000, log: warn });
    const { applied } = await migrate(pool);
    logger.info({ event: 'migrations', applied }, applied.length > 0 ? `applied migrations: ${applied.join(', ')}` : 'migrations: none to apply');
    if (!isLoopback(host) && !(await hasActiveKey(pool))) {
      throw new Error(
        `refusing to listen on ${host} without API keys: anyone who reaches it could run and read jobs. ` +
          'Create a key first (npm run keys -- create --role admin), or listen on 127.0.0.1.',
      );
    }
    // Open the pool's connections now, not on the first requests: a connection
    // takes a few milliseconds to establish, which the first burst of calls would pay.
    await Promise.all(Array.from({ length: options.poolSize ?? 10 }, () => pool.connect())).then((clients) => clients.forEach((c) => c.release()));
  } catch (error) {
    await undoStart();
    throw error;
  }
  const auth = createAuthenticator(pool, {
    alwaysRequired: options.requireAuth === true || !isLoopback(host),
    ...(options.keyCacheSize !== undefined ? { cacheSize: options.keyCacheSize } : {}),
  });
  const waiters = createJobWaiters(pool, log);
  const events = createEventsRoom({
    db: pool,
    pollIntervalMs: options.pollIntervalMs ?? 1000,
    log: warn,
    ...(options.eventsResumeWindowMs !== undefined ? { resumeWindowMs: options.eventsResumeWindowMs } : {}),
    ...(options.eventsRetentionMs !== undefined ? { retentionMs: options.eventsRetentionMs } : {}),
    ...(options.eventsPruneIntervalMs !== undefined ? { pruneIntervalMs: options.eventsPruneIntervalMs } : {}),
  });
  started.push(async () => events.close());
  const hub = createNotifyHub(pool, databaseUrl, warn, () => auth.invalidate(), {
    channels: { ...waiters.channels, ...events.channels },
    onListening: () => {
      waiters.onListening();
      events.onListening();
    },
  });
  started.push(() => hub.close());
  try {
    await hub.start();
  } catch (error) {
    await undoStart();
    throw error;
  }
  const registry = options.jobs ?? null;
  const metrics = createMetrics(pool);
  const limited = createLimitedQueues(pool, { log: warn });
  started.push(async () => limited.close());
  const deps: ServerDeps = {
    db: retryingOnce(pool),
    pool,
    hub,
    waiters,
    events,
    registry,
    prisma: createPrisma(pool),
    enqueuer: createEnqueuer({
      // A deadlock or serialization failure rolls the whole statement back: one retry is safe.
      db: retryingOnce(pool),
      registry,
      hub,
      maxPayloadBytes,
      maxInFlight: Math.max(1, Math.floor((options.poolSize ?? 10) / 2)),
      ...(options.now ? { now: options.now } : {}),
      metrics,
      limited,
    }),
    metrics,
    limited,
    maxPayloadBytes,
    maxBodyBytes,
    pollIntervalMs: options.pollIntervalMs ?? 1000,
    isClosing: () => closing,
    version: VERSION,
    ...(options.now ? { now: options.now } : {}),
  };
  const maintenance = createMaintenance({
    pool,
    hub,
    waiters,
    rescueIntervalMs: options.rescueIntervalMs ?? 5000,
    cronIntervalMs: options.cronIntervalMs ?? 1000,
    retentionDays: options.retentionDays ?? 7,
    failedRetentionDays: options.failedRetentionDays ?? 30,
    ...(options.retention ? { retention: options.retention } : {}),
    registry,
    logger,
    onSweep: ({ rescued, failed }) => {
      if (rescued > 0) metrics.rescued('pending', rescued);
      if (failed > 0) metrics.rescued('failed', failed);
    },
    onRetention: (report, at) => metrics.retention(report, at),
    ...(options.now ? { now: options.now } : {}),
  });
  // Every server upserts the registry's types and schedules: idempotent (an unchanged
  // schedule is not written, and keeps its next tick across restarts).
  try {
    // The registry in job_types, for SQL callers (schedule_task, enqueue_job): server/jobTypes.ts.
    const types = await recordJobTypes(deps.db, registry);
    if (types.removed.length > 0) logger.warn({ event: 'job_types_removed', jobTypes: types.removed }, `job types no longer in the registry (kept in job_types, refused by SQL enqueues): ${types.removed.join(', ')}`);
    for (const schedule of registrySchedules(registry)) await upsertSchedule({ ...deps, db: pool }, schedule, 'registry');
  } catch (error) {
    await hub.close();
    await pool.end();
    await embedded?.stop();
    throw error;
  }
  if (options.maintenance !== false) maintenance.start();
  started.push(() => maintenance.stop());

  const dashboard = createDashboard(options.dashboard);
  // Every 5xx at error, with the request id its response carries (header and error data).
  const onError = (error: TRPCError, path: string | undefined, ctx: QueueContext | undefined): void => {
    const status = getHTTPStatusCodeFromError(error);
    if (status < 500) return;
    const skipqCode = error.cause instanceof QueueError ? error.cause.code : undefined;
    logger.error(
      { requestId: ctx?.requestId, path, status, code: error.code, ...(skipqCode ? { skipqCode } : {}), err: error.cause ?? error },
      error.code === 'INTERNAL_SERVER_ERROR' ? `internal error in ${path ?? '?'}: ${error.cause?.stack ?? error.stack}` : `${path ?? '?'} failed with ${status} ${skipqCode ?? error.code}: ${error.message}`,
    );
  };
  // The gate identified the caller before the body was read; the adapter's createContext picks that up.
  const contexts = new WeakMap<IncomingMessage, QueueContext>();
  const handler = createHTTPHandler({
    router: appRouter,
    basePath: '/trpc/',
    maxBodySize: maxBodyBytes,
    maxBatchSize: 100,
    createContext: ({ req }) => contexts.get(req) ?? createContextInner(deps, null, 'this request was not authenticated'),
    onError: ({ error, path, ctx }) => onError(error, path, ctx),
  });
  const fastCall = createFastCall({ onError });
  const sseCall = createSseCall({ onError });
  const rest = createRest({ onError });
  // Made on first request: the registry's payload schemas are inlined (z.toJSONSchema).
  let openApiText: Promise<string> | undefined;
  const sendOpenApi = async (res: ServerResponse): Promise<void> => {
    openApiText ??= createOpenApiDocument({ registry, version: VERSION }).then((document) => JSON.stringify(document));
    const text = await openApiText;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-cache' });
    res.end(text);
  };
  const gate = createHttpGate({
    auth,
    maxBodyBytes,
    maxInflightBodyBytes,
    logger,
    serve(req, res, who, body) {
      const keyId = who.principal?.keyId;
      // A keyed caller's claim re-checks the key before it hands out jobs (a long-poll outlives its authentication).
      const callDeps = keyId ? { ...deps, recheckKey: () => auth.recheck(keyId) } : deps;
      const ctx: QueueContext = { ...createContextInner(callDeps, who.principal, who.error), hidePayloads: dashboard.hidesPayloadsFor(req), requestId: res.getHeader('x-request-id') as string };
      if (req.method === 'GET' && req.url?.split('?', 1)[0] === OPENAPI_PATH) {
        sendOpenApi(res).catch((error: unknown) => {
          openApiText = undefined;
          logger.error({ requestId: ctx.requestId, err: error }, `cannot make ${OPENAPI_PATH}: ${(error as Error).stack}`);
          sendJson(res, 500, { code: 'INTERNAL_SERVER_ERROR', skipqCode: ERROR_CODES.INTERNAL, message: 'internal server error (logged on the server)', requestId: ctx.requestId });
        });
        return;
      }
      if (rest(req, res, ctx, body)) return;
      if (fastCall(req, res, ctx, body)) return;
      if (sseCall(req, res, ctx)) return;
      // tRPC's adapter takes a body already read from `req.body` (as after a body parser).
      if (body !== undefined) (req as IncomingMessage & { body?: string }).body = body;
      contexts.set(req, ctx);
      handler(req, res);
    },
  });
  const probes = createProbes({ pool, metrics, auth, logger, isClosing: () => closing });
  // Read once: the request log costs nothing (no listener, no fields) when debug is off.
  const debug = enabled(logger, 'debug');
  const server: Server = createServer((req, res) => {
    if (closing) res.setHeader('connection', 'close');
    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    res.setHeader('x-request-id', requestId);
    if (debug) {
      const started = performance.now();
      res.once('finish', () =>
        logger.debug({ requestId, method: req.method, url: req.url, status: res.statusCode, ms: Math.round((performance.now() - started) * 100) / 100 }, 'request'),
      );
    }
    if (rejectTooLarge(req, res, maxBodyBytes)) return;
    if (probes.serve(req, res, true)) return;
    const api = isApiUrl(req.url);
    if (!api && dashboard.serve(req, res)) return;
    if (!api) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: `not found: the tRPC endpoint is /trpc/<procedure>; the REST API is under /api/, described at ${OPENAPI_PATH}` }));
      return;
    }
    gate.handle(req, res);
  });
  server.keepAliveTimeout = 65_000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
  } catch (error) {
    await undoStart();
    throw listenError(error as NodeJS.ErrnoException, port, host);
  }
  const address = server.address() as AddressInfo;
  let metricsServer: Server | undefined;
  if (options.metricsPort !== undefined) {
    const probeServer = createServer((req, res) => {
      if (probes.serve(req, res, false)) return;
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: /metrics, /healthz, /readyz\n');
    });
    metricsServer = probeServer;
    await new Promise<void>((resolve, reject) => {
      probeServer.once('error', reject);
      probeServer.listen(options.metricsPort, host, () => resolve());
    });
  }
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${shownHost}:${address.port}/trpc`;
  const served = registry ? ` with job types: ${Object.keys(registry).join(', ')}` : ' (no registry: any JSON payload is accepted)';
  logger.info({ event: 'listening', url, jobTypes: registry ? Object.keys(registry) : null }, `listening on ${url}${served}`);

  let closed: Promise<void> | undefined;
  return {
    url,
    port: address.port,
    pool,
    embeddedDatabaseUrl: embedded?.url ?? null,
    deps,
    auth,
    maintenance,
    metrics,
    ...(metricsServer ? { metricsPort: (metricsServer.address() as AddressInfo).port } : {}),
    close() {
      closed ??= (async () => {
        closing = true;
        logger.info({ event: 'shutdown' }, 'shutting down: finishing requests in flight');
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        // A keep-alive connection whose request was in flight turns idle once it is
        // answered; without this, close waited out the 10 s below for the client to hang up.
        const idleCloser = setInterval(() => server.closeIdleConnections(), 50).unref();
        // Releases waiting claims: they answer with no jobs at once.
        await hub.close();
        waiters.close();
        // Ends the event streams (SHUTTING_DOWN: clients reconnect with their lastEventId).
        events.close();
        limited.close();
        await deps.enqueuer.drain();
        await Promise.race([serverClosed, new Promise((r) => setTimeout(r, 10_000).unref())]);
        clearInterval(idleCloser);
        server.closeAllConnections();
        if (metricsServer) {
          metricsServer.closeAllConnections();
          await new Promise<void>((resolve) => metricsServer?.close(() => resolve()));
        }
        await maintenance.stop();
        await deps.prisma.$disconnect().catch(() => {});
        await pool.end();
        await embedded?.stop();
        logger.info({ event: 'stopped' }, 'stopped');
      })();
      return closed;
    },
  };
}

export { createTxEnqueuer, type TxEnqueuer, type TxEnqueuerOptions, type TxEnqueueOptions, type TxEnqueueItem, type TxEnqueued, type Transaction, type PgTransaction, type PrismaTransaction } from './txEnqueue.js';
export { QueueError } from './errors.js';

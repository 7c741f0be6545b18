import { Command, InvalidArgumentError } from 'commander';
import { readServerRecord, writeServerRecord } from '../db/dataDir.js';
import { readEnv } from '../env.js';
import { CliError } from './errors.js';

/** Options of `skipq serve` (also taken by `skipq` without a command, as `npm start -- ...` passes them). */
export interface ServeOptions {
  jobs?: string;
  port?: string;
  host?: string;
  startupTimeout?: string;
  requireAuth?: boolean;
  migrateOnly?: boolean;
  metricsPort?: string;
}

/** A flag's integer, checked as commander parses it: a wrong one is refused (exit 2) naming the flag, not the environment variable it stands for. */
const integer =
  (min: number, max: number) =>
  (value: string): string => {
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) throw new InvalidArgumentError(`an integer from ${min} to ${max} was expected.`);
    return value;
  };

/** Adds serve's options to `command`. */
export function withServeOptions(command: Command): Command {
  return command
    .option('--jobs <module>', 'module exporting the job registry (defineJobs) as "jobs" or default; payloads are then validated at enqueue (env SKIPQ_JOBS)')
    .option('--port <n>', 'port to listen on (env PORT, default 3000; 0 picks a free one)', integer(0, 65535))
    .option('--host <addr>', 'address to listen on (env HOST, default 127.0.0.1)')
    .option('--startup-timeout <ms>', 'how long to wait for an unreachable PostgreSQL at start, retrying with backoff (env SKIPQ_STARTUP_TIMEOUT_MS, default 60000; 0: no wait)', integer(0, 3_600_000))
    .option('--require-auth', 'require API keys even on loopback (env SKIPQ_REQUIRE_AUTH=1); beyond loopback they are always required, and the server refuses to start until a key exists')
    .option('--metrics-port <n>', 'also serve /metrics, /healthz, /readyz on this port, without keys (on the main port /metrics needs an admin key once keys exist)', integer(0, 65535))
    .option('--migrate-only', 'apply pending migrations and exit (the same as skipq migrate)');
}

export const ENV_HELP = `
Environment:
  PORT / HOST               where the HTTP server listens (--port, --host), default 3000 / 127.0.0.1
  SKIPQ_JOBS                module exporting the registry (--jobs); unset: any JSON payload is accepted
  DATABASE_URL              PostgreSQL to use; unset: embedded PostgreSQL, data under SKIPQ_DATA_DIR/pg,
                            on a port kept in SKIPQ_DATA_DIR/pg.port (skipq db url prints its URL)
  SKIPQ_DATA_DIR            default .data
  SKIPQ_PG_POOL_SIZE        default 10
  SKIPQ_MAX_BODY_BYTES      request body limit, default 16777216 (16 MiB)
  SKIPQ_MAX_INFLIGHT_BODY_BYTES
                            request body bytes held at once over all requests; past it
                            429 SERVER_BUSY before reading; default SKIPQ_MAX_BODY_BYTES
  SKIPQ_MAX_PAYLOAD_BYTES   payload/result limit, default 1048576 (1 MiB)
  SKIPQ_POLL_INTERVAL_MS    fallback poll of waiting claims, default 1000
  SKIPQ_RESCUE_INTERVAL_MS  expired-lease sweep, default 5000
  SKIPQ_CRON_INTERVAL_MS    how often the cron leader looks for due schedule ticks, default 1000
  SKIPQ_RETENTION_DAYS      keep completed/cancelled jobs this long (0: forever), default 7
  SKIPQ_FAILED_RETENTION_DAYS
                            keep failed jobs (dead letters) this long (0: forever), default 30;
                            queues.configure({ retentionDays, failedRetentionDays }) overrides per queue
  SKIPQ_STARTUP_TIMEOUT_MS  wait for PostgreSQL at start, default 60000
  SKIPQ_REQUIRE_AUTH        1: require API keys on loopback too; 0 (default): keys are
                            required once any key record exists (skipq keys revoke --all
                            removes them); without keys only Host: localhost / 127.x / [::1] is answered
  SKIPQ_DASHBOARD_PAYLOADS  0: the dashboard (at /) never shows job payloads or results
  SKIPQ_SSE_PING_MS         SSE ping of an idle events.jobs stream, default 10000 (0: none)
  LOG_LEVEL                 fatal|error|warn|info|debug|trace|silent, default info; JSON lines
                            on stdout (pretty in a terminal when pino-pretty is installed)
`;

/** Runs the server until SIGINT/SIGTERM; with an embedded database, records it in `<dataDir>/server.json` meanwhile. */
export async function serve(values: ServeOptions): Promise<void> {
  const env = readEnv({
    ...process.env,
    ...(values.port !== undefined ? { PORT: values.port } : {}),
    ...(values.host !== undefined ? { HOST: values.host } : {}),
    ...(values.startupTimeout !== undefined ? { SKIPQ_STARTUP_TIMEOUT_MS: values.startupTimeout } : {}),
  });
  if (values.migrateOnly) return (await import('./migrate.js')).runMigrations(env);
  if (!env.DATABASE_URL) {
    const running = await readServerRecord(env.SKIPQ_DATA_DIR);
    if (running) {
      throw new CliError(
        `a skipq server (pid ${running.pid}) already runs on data directory ${env.SKIPQ_DATA_DIR} at ${running.url}: ` +
          'stop it first, or use another SKIPQ_DATA_DIR (or DATABASE_URL)',
      );
    }
  }
  // Loaded here, not at the top: `skipq --help` and the other commands start without the server's modules.
  const { createQueueServer, loadRegistry } = await import('../app.js');
  const { createLogger } = await import('../logger.js');
  const logger = createLogger({ level: env.LOG_LEVEL });
  const jobsModule = values.jobs ?? env.SKIPQ_JOBS;
  const jobs = jobsModule ? await loadRegistry(jobsModule) : undefined;
  const server = await createQueueServer({
    databaseUrl: env.DATABASE_URL,
    jobs,
    port: env.PORT,
    host: env.HOST,
    dataDir: env.SKIPQ_DATA_DIR,
    poolSize: env.SKIPQ_PG_POOL_SIZE,
    maxBodyBytes: env.SKIPQ_MAX_BODY_BYTES,
    maxInflightBodyBytes: env.SKIPQ_MAX_INFLIGHT_BODY_BYTES,
    startupTimeoutMs: env.SKIPQ_STARTUP_TIMEOUT_MS,
    maxPayloadBytes: env.SKIPQ_MAX_PAYLOAD_BYTES,
    pollIntervalMs: env.SKIPQ_POLL_INTERVAL_MS,
    rescueIntervalMs: env.SKIPQ_RESCUE_INTERVAL_MS,
    cronIntervalMs: env.SKIPQ_CRON_INTERVAL_MS,
    retentionDays: env.SKIPQ_RETENTION_DAYS,
    failedRetentionDays: env.SKIPQ_FAILED_RETENTION_DAYS,
    requireAuth: values.requireAuth === true || env.SKIPQ_REQUIRE_AUTH,
    dashboard: { showPayloads: env.SKIPQ_DASHBOARD_PAYLOADS },
    logger,
    ...(values.metricsPort !== undefined ? { metricsPort: Number(values.metricsPort) } : {}),
  });
  let removeRecord = (): void => {};
  if (server.embeddedDatabaseUrl) {
    try {
      removeRecord = await writeServerRecord(env.SKIPQ_DATA_DIR, { url: server.url, databaseUrl: server.embeddedDatabaseUrl });
    } catch (error) {
      await server.close();
      throw new CliError(`could not write ${env.SKIPQ_DATA_DIR}/server.json: ${(error as Error).message}`);
    }
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ event: 'signal', signal }, `${signal}: finishing requests in flight, then stopping`);
    server.close().then(
      () => {
        removeRecord();
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'stopping failed');
        process.exit(1);
      },
    );
  };
  // server.close() also stops an embedded PostgreSQL (see db/embedded.ts on its own exit hooks).
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stop(signal));
}

/** `skipq serve`. */
export function serveCommand(): Command {
  return withServeOptions(new Command('serve').description('run the skipq server (the default command: npm start runs it)'))
    .addHelpText('after', ENV_HELP)
    .action((opts: ServeOptions) => serve(opts));
}

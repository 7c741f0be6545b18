#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { createQueueServer, loadRegistry } from './app.js';
import { readEnv } from './env.js';
import { keysCommand } from './keysCli.js';
import { createLogger } from './logger.js';

const HELP = `skipq: a type-safe job queue service on PostgreSQL

Usage: npm start -- [options]        (or: npx tsx server/main.ts [options])
       npm run keys -- create|list|revoke ...   (API keys; npm run keys for help)

Options:
  --jobs <module>   module exporting the job registry (defineJobs) as "jobs" or default;
                    payloads are then validated at enqueue (env SKIPQ_JOBS)
  --port <n>        port to listen on (env PORT, default 3000; 0 picks a free one)
  --host <addr>     address to listen on (env HOST, default 127.0.0.1)
  --migrate-only    apply pending migrations and exit (npm run db:migrate)
  --startup-timeout <ms>
                    how long to wait for an unreachable PostgreSQL at start, retrying
                    with backoff (env SKIPQ_STARTUP_TIMEOUT_MS, default 60000; 0: no wait)
  --metrics-port <n>
                    also serve /metrics, /healthz, /readyz on this port, without keys
                    (on the main port /metrics needs an admin key once keys exist)
  --require-auth    require API keys even on loopback (env SKIPQ_REQUIRE_AUTH=1);
                    beyond loopback they are always required, and the server
                    refuses to start until a key exists
  -h, --help        this text

Environment:
  DATABASE_URL              PostgreSQL to use; unset: embedded PostgreSQL, data under SKIPQ_DATA_DIR/pg
  SKIPQ_DATA_DIR            default .data
  SKIPQ_PG_POOL_SIZE        default 10
  SKIPQ_MAX_BODY_BYTES      request body limit, default 16777216 (16 MiB)
  SKIPQ_MAX_INFLIGHT_BODY_BYTES
                            request body bytes held at once over all requests; past it
                            429 SERVER_BUSY before reading; default SKIPQ_MAX_BODY_BYTES
  SKIPQ_MAX_PAYLOAD_BYTES   payload/result limit, default 1048576 (1 MiB)
  SKIPQ_POLL_INTERVAL_MS    fallback poll of waiting claims, default 1000
  SKIPQ_RESCUE_INTERVAL_MS  expired-lease sweep, default 5000
  SKIPQ_RETENTION_DAYS      keep completed/cancelled jobs this long (0: forever), default 7
  SKIPQ_STARTUP_TIMEOUT_MS  wait for PostgreSQL at start, default 60000
  SKIPQ_REQUIRE_AUTH        1: require API keys on loopback too;
                            without keys only Host: localhost / 127.x / [::1] is answered
  SKIPQ_DASHBOARD_PAYLOADS  0: the dashboard (at /) never shows job payloads or results
  LOG_LEVEL                 fatal|error|warn|info|debug|trace|silent, default info; JSON lines
                            on stdout (pretty in a terminal when pino-pretty is installed)
`;

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      role: { type: 'string' },
      queues: { type: 'string' },
      name: { type: 'string' },
      'require-auth': { type: 'boolean', default: false },
      jobs: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      'startup-timeout': { type: 'string' },
      'migrate-only': { type: 'boolean', default: false },
      'metrics-port': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (positionals[0] === 'keys') {
    const env = readEnv();
    process.exitCode = await keysCommand(env, positionals.slice(1), values);
    return;
  }
  if (values.help || positionals.length > 0) {
    process.stdout.write(HELP);
    if (positionals.length > 0) process.exitCode = 2;
    return;
  }
  const env = readEnv({
    ...process.env,
    ...(values.port ? { PORT: values.port } : {}),
    ...(values.host ? { HOST: values.host } : {}),
    ...(values['startup-timeout'] ? { SKIPQ_STARTUP_TIMEOUT_MS: values['startup-timeout'] } : {}),
  });
  const logger = createLogger({ level: env.LOG_LEVEL });
  const jobsModule = values.jobs ?? env.SKIPQ_JOBS;
  const jobs = jobsModule ? await loadRegistry(jobsModule) : undefined;
  if (values['migrate-only']) {
    const { migrateOnly } = await import('./db/migrateCli.js');
    await migrateOnly(env);
    return;
  }
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
    retentionDays: env.SKIPQ_RETENTION_DAYS,
    requireAuth: values['require-auth'] || env.SKIPQ_REQUIRE_AUTH,
    dashboard: { showPayloads: env.SKIPQ_DASHBOARD_PAYLOADS },
    logger,
    ...(values['metrics-port'] !== undefined ? { metricsPort: Number(values['metrics-port']) } : {}),
  });
  if (!jobs) logger.warn('no registry (--jobs): any JSON payload is accepted');
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ event: 'signal', signal }, `${signal}: finishing requests in flight, then stopping`);
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  // server.close() also stops an embedded PostgreSQL (see db/embedded.ts on its own exit hooks).
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stop(signal));
}

main().catch((error: unknown) => {
  console.error(`[skipq] ${(error as Error).message}`);
  process.exit(1);
});

// graphile-worker in the bench: jobs in its own schema on a fresh database.
import pg from 'pg';
import { Logger, makeWorkerUtils, run, runMigrations, type Runner } from 'graphile-worker';
import { createDatabase, databaseUrl, dropDatabase } from '../lib/postgres.js';
import { tuned } from '../lib/tuning.js';
import { packageVersion } from '../lib/versions.js';
import type { BenchPayload, SystemDriver, SystemHost } from '../systems.js';

/**
 * The settings of graphile-worker's own performance page (worker.graphile.org/docs/performance),
 * which it reports ~183,000 jobs/s with: 24 concurrent jobs, a pool of 25,
 * a local queue of 500 (one query locks a batch) and batched completions.
 * New jobs wake workers by LISTEN/NOTIFY; pollInterval only matters for jobs
 * scheduled in the future, so the default stays. Concurrency 50 (pool 51)
 * measured within noise of 24 in W3 here, so the documented values stay.
 */
export const GRAPHILE_WORKER = Object.freeze({
  concurrency: tuned('GRAPHILE_CONCURRENCY', 24),
  maxPoolSize: tuned('GRAPHILE_POOL', 25),
  localQueueSize: tuned('GRAPHILE_LOCAL_QUEUE', 500),
  completeJobBatchDelay: 0,
  failJobBatchDelay: 0,
  pollInterval: 2000,
});
/** Producers: 16 concurrent addJob calls want 16 connections. */
const PRODUCER_POOL = 20;

// Errors only: its info lines would drown the progress output.
const quietLogger = new Logger(() => (level, message) => {
  if (level === 'error') process.stderr.write(`graphile-worker: ${message}\n`);
});

export const host: SystemHost = {
  name: 'graphile',
  label: 'graphile-worker',
  version: () => `graphile-worker ${packageVersion('graphile-worker')}`,
  settings:
    `concurrency ${GRAPHILE_WORKER.concurrency}, maxPoolSize ${GRAPHILE_WORKER.maxPoolSize}, localQueue.size ${GRAPHILE_WORKER.localQueueSize}, ` +
    `completeJobBatchDelay ${GRAPHILE_WORKER.completeJobBatchDelay}, failJobBatchDelay ${GRAPHILE_WORKER.failJobBatchDelay}, pollInterval ${GRAPHILE_WORKER.pollInterval} ms; producer: makeWorkerUtils, pool ${PRODUCER_POOL}; W3-C10: concurrency 10, the rest as above (its local queue still fetches 500 ahead)`,
  async deploy(round) {
    const database = await createDatabase('graphile');
    round.defer(() => dropDatabase(database));
    // Schema first, outside any timed step.
    await runMigrations({ connectionString: databaseUrl(database), logger: quietLogger });
    return { endpoint: { system: 'graphile', databaseUrl: databaseUrl(database) }, database };
  },
};

export const driver: SystemDriver = {
  async producer(endpoint) {
    const utils = await makeWorkerUtils({ connectionString: endpoint.databaseUrl, maxPoolSize: PRODUCER_POOL, logger: quietLogger });
    return {
      enqueue: async (payload) => String((await utils.addJob('bench', payload)).id),
      enqueueMany: async (payloads) => (await utils.addJobs(payloads.map((payload) => ({ identifier: 'bench', payload })))).map((j) => String(j.id)),
      close: async () => {
        await utils.release();
      },
    };
  },
  async worker(endpoint, handle, options = {}) {
    let runner: Runner | undefined;
    // Completion is batched and not awaited by the job: a finished job is a deleted row.
    const probe = new pg.Pool({ connectionString: endpoint.databaseUrl, max: 1 });
    return {
      async start() {
        runner = await run({
          connectionString: endpoint.databaseUrl,
          concurrency: options.concurrency ?? GRAPHILE_WORKER.concurrency,
          maxPoolSize: GRAPHILE_WORKER.maxPoolSize,
          pollInterval: GRAPHILE_WORKER.pollInterval,
          noHandleSignals: true,
          logger: quietLogger,
          taskList: {
            bench: async (payload, helpers) => {
              handle(payload as BenchPayload, String(helpers.job.id));
            },
          },
          preset: {
            worker: {
              localQueue: { size: GRAPHILE_WORKER.localQueueSize },
              completeJobBatchDelay: GRAPHILE_WORKER.completeJobBatchDelay,
              failJobBatchDelay: GRAPHILE_WORKER.failJobBatchDelay,
            },
          },
        });
      },
      async allCompleted() {
        const { rows } = await probe.query<{ left: number }>('SELECT count(*)::int AS left FROM graphile_worker._private_jobs');
        return rows[0]?.left === 0;
      },
      async stop() {
        await runner?.stop();
        await probe.end();
      },
    };
  },
};

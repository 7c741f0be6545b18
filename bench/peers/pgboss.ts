// pg-boss in the bench: its schema on a fresh database, one queue "bench".
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { createDatabase, databaseUrl, dropDatabase } from '../lib/postgres.js';
import { tuned } from '../lib/tuning.js';
import { packageVersion } from '../lib/versions.js';
import type { BenchPayload, SystemDriver, SystemHost } from '../systems.js';

/**
 * pg-boss v12's throughput knobs (pgboss.io/api/workers): `work` fetches
 * `batchSize` jobs per query and completes them in one statement;
 * `localConcurrency` runs that many fetch loops; `burstWhenBatchFull` fetches
 * again at once while batches come back full. Swept batchSize 50-500 x
 * localConcurrency 1, 2, 4 with W3 here: 200 x 2 was best and steadiest (~16,600 jobs/s).
 *
 * NOTIFY (queue `notify` plus `useListenNotify`) wakes an idle worker at once
 * instead of at the next 0.5 s poll (the shortest pg-boss allows), but every
 * `send` then commits with a NOTIFY: on this machine W1 fell from ~2,000-2,300
 * to ~700-1,400 jobs/s. So pg-boss gets it in W4 only, where it decides the result.
 */
export const PGBOSS_WORKER = Object.freeze({
  batchSize: tuned('PGBOSS_BATCH', 200),
  localConcurrency: tuned('PGBOSS_LOCAL_CONCURRENCY', 2),
  pollingIntervalSeconds: 0.5,
  burstWhenBatchFull: true,
  max: 10,
});
/** Producers: 16 concurrent send calls want 16 connections. */
const PRODUCER_POOL = 20;

// Off in every bench instance: cron and maintenance would add their own queries.
const QUIET = { supervise: false, schedule: false } as const;

function report(boss: PgBoss, who: string): void {
  boss.on('error', (error: Error) => process.stderr.write(`pg-boss ${who}: ${error.message}\n`));
}

export const host: SystemHost = {
  name: 'pgboss',
  label: 'pg-boss',
  version: () => `pg-boss ${packageVersion('pg-boss')}`,
  settings:
    `work(): batchSize ${PGBOSS_WORKER.batchSize}, localConcurrency ${PGBOSS_WORKER.localConcurrency}, pollingIntervalSeconds ${PGBOSS_WORKER.pollingIntervalSeconds}, ` +
    `burstWhenBatchFull, pool ${PGBOSS_WORKER.max}; queue notify + useListenNotify in W4 only (NOTIFY per send costs W1 about half); supervise/schedule off; producer pool ${PRODUCER_POOL}; W3-C10: batchSize 10, localConcurrency 1 (batchSize 1 x 10 loops never bursts: one job per 0.5 s poll per loop)`,
  async deploy(round, options = {}) {
    const database = await createDatabase('pgboss');
    round.defer(() => dropDatabase(database));
    // Schema and queue first, outside any timed step.
    const boss = new PgBoss({ connectionString: databaseUrl(database), ...QUIET });
    report(boss, 'setup');
    await boss.start();
    await boss.createQueue('bench', { notify: options.latency === true });
    await boss.stop({ graceful: false });
    return { endpoint: { system: 'pgboss', databaseUrl: databaseUrl(database), latency: options.latency === true }, database };
  },
};

export const driver: SystemDriver = {
  async producer(endpoint) {
    const boss = new PgBoss({ connectionString: endpoint.databaseUrl, max: PRODUCER_POOL, migrate: false, ...QUIET });
    report(boss, 'producer');
    await boss.start();
    return {
      async enqueue(payload) {
        const id = await boss.send('bench', payload);
        if (id === null) throw new Error('pg-boss send returned no id');
        return id;
      },
      async enqueueMany(payloads) {
        // returnId: every peer answers a batch with its ids, as skipq's enqueueMany does.
        const ids = await boss.insert('bench', payloads.map((data) => ({ data })), { returnId: true });
        if (ids === null || ids.length !== payloads.length) throw new Error(`pg-boss insert returned ${ids?.length ?? 'no'} ids for ${payloads.length} jobs`);
        return ids;
      },
      close: () => boss.stop({ graceful: false }),
    };
  },
  async worker(endpoint, handle, options = {}) {
    // Concurrency n (W3-C10): one fetch loop of n jobs, completed together, bursting while batches come back full.
    // Not n loops of batchSize 1: pg-boss never bursts at batchSize 1, so each loop waits its 0.5 s poll
    // after every job (measured here: 20 jobs/s with 10 loops).
    const inFlight = options.concurrency;
    const settings = inFlight === undefined ? PGBOSS_WORKER : { ...PGBOSS_WORKER, batchSize: inFlight, localConcurrency: 1 };
    const boss = new PgBoss({ connectionString: endpoint.databaseUrl, max: settings.max, migrate: false, useListenNotify: endpoint.latency === true, ...QUIET });
    report(boss, 'worker');
    // pg-boss completes a batch after its handler resolves, without an event: read the table.
    const probe = new pg.Pool({ connectionString: endpoint.databaseUrl, max: 1 });
    return {
      async start() {
        await boss.start();
        await boss.work<BenchPayload>(
          'bench',
          {
            batchSize: settings.batchSize,
            localConcurrency: settings.localConcurrency,
            pollingIntervalSeconds: settings.pollingIntervalSeconds,
            burstWhenBatchFull: settings.burstWhenBatchFull,
          },
          async (batch) => {
            for (const job of batch) handle(job.data, job.id);
          },
        );
      },
      async allCompleted(expected) {
        const { rows } = await probe.query<{ done: number }>("SELECT count(*)::int AS done FROM pgboss.job WHERE name = 'bench' AND state = 'completed'");
        return (rows[0]?.done ?? 0) >= expected;
      },
      async stop() {
        await boss.stop({ graceful: true, timeout: 5000 });
        await probe.end();
      },
    };
  },
};

// BullMQ in the bench: on Redis, in a database of its own that is flushed before each round.
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { tuned } from '../lib/tuning.js';
import { packageVersion } from '../lib/versions.js';
import type { BenchPayload, SystemDriver, SystemHost } from '../systems.js';

/** The bench's Redis database; nothing else on this machine should use it. */
export const REDIS = Object.freeze({ host: '127.0.0.1', port: 6379, db: 7 });

/**
 * BullMQ's throughput knob is the worker's `concurrency` (docs.bullmq.io/guide/workers/concurrency):
 * one process, many jobs in flight. Swept 50, 100, 200, 500 with W3 on this
 * machine: all within its noise (8,000-13,000 jobs/s), so the common 100 stays.
 * Completed jobs are trimmed to the last 1,000, as its production guide advises.
 */
export const BULLMQ_WORKER = Object.freeze({ concurrency: tuned('BULLMQ_CONCURRENCY', 100), keepCompleted: 1000 });

export const host: SystemHost = {
  name: 'bullmq',
  label: 'BullMQ (Redis)',
  version: () => `bullmq ${packageVersion('bullmq')}, ioredis ${packageVersion('ioredis')}`,
  settings: `Worker concurrency ${BULLMQ_WORKER.concurrency}, removeOnComplete {count: ${BULLMQ_WORKER.keepCompleted}}, Redis db ${REDIS.db}; W3-C10: Worker concurrency 10`,
  async deploy(round) {
    const flush = async (): Promise<void> => {
      const redis = new Redis({ ...REDIS, lazyConnect: true });
      await redis.connect();
      await redis.flushdb();
      redis.disconnect();
    };
    await flush();
    round.defer(flush);
    return { endpoint: { system: 'bullmq', redis: REDIS } };
  },
};

export const driver: SystemDriver = {
  async producer(endpoint) {
    const queue = new Queue('bench', { connection: { ...endpoint.redis } });
    await queue.waitUntilReady();
    return {
      enqueue: async (payload) => (await queue.add('bench', payload)).id as string,
      enqueueMany: async (payloads) => (await queue.addBulk(payloads.map((data) => ({ name: 'bench', data })))).map((j) => j.id as string),
      close: () => queue.close(),
    };
  },
  async worker(endpoint, handle, options = {}) {
    let completed = 0;
    // Workers block on Redis, so ioredis must not give up on a slow command.
    const worker = new Worker(
      'bench',
      async (job) => {
        handle(job.data as BenchPayload, job.id as string);
      },
      {
        connection: { ...endpoint.redis, maxRetriesPerRequest: null },
        concurrency: options.concurrency ?? BULLMQ_WORKER.concurrency,
        removeOnComplete: { count: BULLMQ_WORKER.keepCompleted },
        autorun: false,
      },
    );
    // "completed" fires after the job was moved to completed in Redis.
    worker.on('completed', () => completed++);
    worker.on('error', (error) => process.stderr.write(`bullmq worker: ${error.message}\n`));
    return {
      async start() {
        void worker.run();
        await worker.waitUntilReady();
      },
      async allCompleted(expected) {
        return completed >= expected;
      },
      stop: () => worker.close(),
    };
  },
};

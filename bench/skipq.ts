// skipq in the bench: its server in its own process on a fresh database, and
// producers and workers through the public clients over HTTP.
import { createServer } from 'node:net';
import { createQueueClient, createWorker } from '../client/index.js';
import { BUILT, SERVER_BIN } from './lib/built.js';
import { sleep } from './lib/clock.js';
import { tuned } from './lib/tuning.js';
import { skipqVersion } from './lib/versions.js';
import { jobs } from './jobs.js';
import type { SystemDriver, SystemHost } from './systems.js';

/**
 * The worker's settings. A claim asks for as many jobs as there are free slots
 * (up to 1,000), and a slot stays taken until its completion is acknowledged,
 * so with no-op jobs `concurrency` is in effect the claim batch size. Swept on
 * this machine with W3 (10,000 jobs), jobs/s: 50 ~4,300, 100 ~6,200,
 * 200 ~8,000-11,500, 300 and 500 ~12,000, 1,000 ~11,500-17,000 (best in every sweep).
 */
export const SKIPQ_WORKER = Object.freeze({ concurrency: tuned('SKIPQ_CONCURRENCY', 1000) });
/**
 * W3-C10's prefetch (BENCH_SKIPQ_PREFETCH). Measured here (W3-C10, jobs/s):
 * the worker's default (= concurrency, 10) 2,834-2,962, 100 6,108-7,964, 500
 * 10,263-10,463; 500 is also graphile-worker's localQueue.size in this bench.
 */
const SKIPQ_C10_PREFETCH = tuned('SKIPQ_PREFETCH', 500);

/** A free TCP port on 127.0.0.1 (the server gets it on its command line). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

export const host: SystemHost = {
  name: 'skipq',
  label: 'skipq',
  version: skipqVersion,
  settings: `server: own process, pool ${process.env.SKIPQ_PG_POOL_SIZE ?? 10} connections, registry via --jobs, retention off; worker: concurrency ${SKIPQ_WORKER.concurrency} (W3-C10: createWorker concurrency 10, prefetch ${SKIPQ_C10_PREFETCH})`,
  async deploy(round, options = {}) {
    // Imported here, by the orchestrator alone: the producer and worker
    // processes load this module for the driver below, and a skipq client uses
    // no PostgreSQL driver (pg was 22 ms of the worker's start, inside W3's clock).
    const { createDatabase, databaseUrl, dropDatabase } = await import('./lib/postgres.js');
    const database = await createDatabase('skipq');
    round.defer(() => dropDatabase(database));
    const port = await freePort();
    const server = round.spawn({
      name: 'skipq server',
      // The package's bin on plain node, given the bench's registry built to JavaScript (lib/build.ts).
      script: SERVER_BIN,
      args: ['--port', String(port), '--host', '127.0.0.1', '--jobs', `./${BUILT['bench/jobs.ts']}`],
      nodeArgs: options.serverNodeArgs,
      env: { DATABASE_URL: databaseUrl(database), SKIPQ_RETENTION_DAYS: '0' },
    });
    const url = `http://127.0.0.1:${port}/trpc`;
    // Ready means migrated and answering: poll the public health procedure.
    for (let tries = 0; ; tries++) {
      const ok = await fetch(`${url}/health`).then((r) => r.ok, () => false);
      if (ok) break;
      if (tries > 300) throw new Error(`skipq server did not answer /trpc/health within 30 s:\n${server.tail()}`);
      await round.wait(Promise.race([sleep(100), server.exited.then(() => { throw new Error(`skipq server exited:\n${server.tail()}`); })]));
    }
    return { endpoint: { system: 'skipq', url }, serverPid: server.pid, database };
  },
};

export const driver: SystemDriver = {
  async producer(endpoint) {
    const queue = createQueueClient({ url: endpoint.url as string, jobs });
    return {
      // Concurrent calls leave the client as one jobs.enqueueMany (client-side coalescing).
      enqueue: async (payload) => (await queue.enqueue('bench', payload)).id,
      enqueueMany: async (payloads) => (await queue.enqueueMany(payloads.map((payload) => ({ type: 'bench' as const, payload })))).map((j) => j.id),
      close: () => queue.close(),
    };
  },
  async worker(endpoint, handle, options = {}) {
    let completed = 0;
    let errors = 0;
    const worker = createWorker({
      url: endpoint.url as string,
      jobs,
      concurrency: options.concurrency ?? SKIPQ_WORKER.concurrency,
      // W3-C10: a prefetch buffer as large as graphile-worker's localQueue here (500).
      ...(options.concurrency !== undefined ? { prefetch: SKIPQ_C10_PREFETCH } : {}),
      handlers: {
        bench(payload, ctx) {
          handle(payload, ctx.id);
        },
      },
      onEvent(event) {
        // "completed" is emitted once the server acknowledged the completeMany that carried it.
        if (event.kind === 'completed') completed++;
        else if (event.kind === 'error' && ++errors <= 5) process.stderr.write(`skipq worker error: ${String((event.error as Error)?.message ?? event.error)}\n`);
      },
    });
    return {
      async start() {
        worker.start();
      },
      async allCompleted(expected) {
        return completed >= expected;
      },
      stop: async () => { await worker.stop(); },
    };
  },
};

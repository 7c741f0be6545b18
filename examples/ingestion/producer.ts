// Enqueues one ingestion job per chain for a date, then waits for them to finish.
// Run: npx tsx examples/ingestion/producer.ts [YYYY-MM-DD]   (server: npm start -- --jobs ./examples/ingestion/jobs.ts)
import { createQueueClient } from '../../client/index.js';
import { jobs } from './jobs.js';

const url = process.env.SKIPQ_URL ?? 'http://127.0.0.1:3000/trpc';
const targetDate = process.argv[2] ?? new Date().toISOString().slice(0, 10);
const chains = ['konzum', 'lidl', 'spar', 'kaufland', 'plodine'];

const queue = createQueueClient({ url, jobs, apiKey: process.env.SKIPQ_API_KEY });
const enqueued = await Promise.all(
  chains.map((chainId) => queue.enqueue('ingestion', { chainId, targetDate }, { uniqueKey: `${chainId}:${targetDate}` })),
);
for (const job of enqueued) console.log(`${job.created ? 'enqueued' : 'already queued'} ${job.id}`);

const deadline = Date.now() + 60_000;
for (const { id } of enqueued) {
  for (;;) {
    const job = await queue.get(id);
    if (job.status === 'completed' || job.status === 'failed' || job.status === 'cancelled') {
      console.log(`${id} ${job.status}`, job.result ?? job.error ?? '');
      break;
    }
    if (Date.now() > deadline) throw new Error(`job ${id} is still ${job.status} after 60 s: is the worker running?`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
await queue.close();

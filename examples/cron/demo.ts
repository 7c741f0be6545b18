// npm run example:cron (DATABASE_URL set, or an embedded PostgreSQL under .data)
// Starts a server with the registry of ./jobs.ts, then shows schedules, debounce and throttle.
import { createQueueClient } from '../../client/index.js';
import { createQueueServer } from '../../server/app.js';
import { jobs } from './jobs.js';

const server = await createQueueServer({ jobs, port: 0, log: () => {}, cronIntervalMs: 200, ...(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : {}) });
const queue = createQueueClient({ url: server.url, jobs });
try {
  // Cron: a 6-field expression (seconds first), every 2 seconds.
  await queue.schedules.upsert({ name: 'every-2s', type: 'report', cron: '*/2 * * * * *', payload: { kind: 'tick' }, catchUp: 'skip' });
  for (const s of await queue.schedules.list()) console.log(s.name, s.cron, s.timezone ?? 'UTC', 'next:', s.nextRuns.map((d) => d.toISOString()).join(', '));
  await new Promise((r) => setTimeout(r, 4500));
  const ticks = await queue.list({ type: 'report' });
  console.log(`every-2s made ${ticks.jobs.length} job(s) in 4.5 s`);
  await queue.schedules.pause('every-2s');
  await queue.schedules.remove('every-2s');

  // Debounce: a burst of calls makes one job, with the last payload, 1 s after the last call.
  const calls = [];
  for (let rev = 1; rev <= 20; rev++) calls.push(await queue.enqueue('reindex', { doc: 'readme', rev }, { uniqueKey: 'doc:readme', debounceMs: 1000 }));
  const job = await queue.get(calls[0]!.id);
  console.log(`debounce: ${new Set(calls.map((c) => c.id)).size} job, payload rev ${(job.payload as { rev: number }).rev}, due ${job.scheduledFor.toISOString()}`);

  // Throttle: at most one job per key per minute, even once it completed.
  const first = await queue.enqueue('reindex', { doc: 'faq', rev: 1 }, { uniqueKey: 'doc:faq', throttleMs: 60_000 });
  const second = await queue.enqueue('reindex', { doc: 'faq', rev: 2 }, { uniqueKey: 'doc:faq', throttleMs: 60_000 });
  console.log(`throttle: first created ${first.created}, second created ${second.created}, same job ${first.id === second.id}`);
} finally {
  await queue.close();
  await server.close();
}

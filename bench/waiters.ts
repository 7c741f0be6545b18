// CPU cost of JobWaiters.finished() per finished job id, the only work the
// result waiters add to completions (the hot path). Run: npx tsx bench/waiters.ts
import { randomUUID } from 'node:crypto';
import type { Db } from '../server/db/pool.js';
import { WAITING_CHANNEL } from '../server/channels.js';
import { createJobWaiters } from '../server/jobWaiters.js';

const db = { query: async () => ({ rows: [] }) } as unknown as Db;
const waiters = createJobWaiters(db);
const batch = Array.from({ length: 500 }, () => randomUUID());

const run = (label: string): void => {
  const rounds = 20_000;
  const before = process.cpuUsage();
  for (let i = 0; i < rounds; i++) waiters.finished(batch);
  const used = process.cpuUsage(before);
  console.log(`${label}: ${(((used.user + used.system) * 1000) / rounds / batch.length).toFixed(1)} ns of CPU per finished id`);
};

run('nobody waits');
for (let i = 0; i < 1000; i++) waiters.channels[WAITING_CHANNEL]?.(`another-server:${randomUUID()}`);
run('1000 jobs awaited on other servers, none of them in the batch');
waiters.close();

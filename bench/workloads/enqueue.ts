// W1, W2 and W2-4K: how fast jobs go in, one call per job or in batches.
import type { PayloadKind } from '../payload.js';
import { MEMORY_METRICS, checkProduced, checkWorked, memoryValues, produce, rate, work } from './steps.js';
import type { Measurement, RunContext, Workload } from './types.js';

const PRODUCERS = 16;
const BATCH = 500;

async function runEnqueue(ctx: RunContext, mode: 'single' | 'batch', payload: PayloadKind = 'tiny'): Promise<Measurement> {
  const { round, sizes } = ctx;
  const system = ctx.system!;
  const deployment = await system.deploy(round, { serverNodeArgs: ctx.profileArgs });
  const produced = await produce(round, deployment.endpoint, mode === 'single' ? { mode, count: sizes.jobs, concurrency: PRODUCERS, payload } : { mode, count: sizes.jobs, batchSize: BATCH, payload });
  const problems = checkProduced(produced, sizes.jobs);
  // The server's peak of the enqueue part itself, before the check drain below adds its own.
  const { serverRss } = memoryValues(deployment, null);
  // Exactly once, untimed: drain what went in with the system's own worker (its peak RSS is the worker row).
  ctx.log('draining to check every job runs once');
  const worked = await work(round, deployment.endpoint, { expected: sizes.jobs, latency: false, payload });
  problems.push(...checkWorked(worked, sizes.jobs));
  const values: Record<string, number> = { rate: rate(sizes.jobs, produced.startedAt, produced.endedAt), ...memoryValues(deployment, worked) };
  if (serverRss !== undefined) values.serverRss = serverRss;
  return { values, problems };
}

/** W1: every job by its own enqueue call, from 16 concurrent callers in one process. */
export const enqueueSingle: Workload = {
  id: 'W1',
  title: (s) => `W1 enqueue-single: ${s.jobs.toLocaleString('en-US')} calls, ${PRODUCERS} concurrent`,
  metrics: [{ key: 'rate', label: 'jobs/s', better: 'higher' }, ...MEMORY_METRICS],
  scope: 'all',
  run: (ctx) => runEnqueue(ctx, 'single'),
};

/** W2: calls of 500 jobs, one after another. */
export const enqueueBatch: Workload = {
  id: 'W2',
  title: (s) => `W2 enqueue-batch: ${s.jobs.toLocaleString('en-US')} in calls of ${BATCH}`,
  metrics: [{ key: 'rate', label: 'jobs/s', better: 'higher' }, ...MEMORY_METRICS],
  scope: 'all',
  run: (ctx) => runEnqueue(ctx, 'batch'),
};

/** W2-4K: the same calls of 500, each job carrying a 4 KiB order (bench/payload.ts), about 2 MiB of JSON a call. */
export const enqueueBatch4k: Workload = {
  id: 'W2-4K',
  title: (s) => `W2 with 4 KiB payloads: ${s.jobs.toLocaleString('en-US')} in calls of ${BATCH}`,
  metrics: [{ key: 'rate', label: 'jobs/s', better: 'higher' }, ...MEMORY_METRICS],
  scope: 'all',
  run: (ctx) => runEnqueue(ctx, 'batch', '4k'),
};

// W1 and W2: how fast jobs go in, one call per job or in batches.
import { checkProduced, checkWorked, produce, rate, work } from './steps.js';
import type { RunContext, Workload } from './types.js';

const PRODUCERS = 16;
const BATCH = 500;

async function runEnqueue(ctx: RunContext, mode: 'single' | 'batch'): Promise<{ values: Record<string, number>; problems: string[] }> {
  const { round, sizes } = ctx;
  const system = ctx.system!;
  const deployment = await system.deploy(round);
  const produced = await produce(round, deployment.endpoint, mode === 'single' ? { mode, count: sizes.jobs, concurrency: PRODUCERS } : { mode, count: sizes.jobs, batchSize: BATCH });
  const problems = checkProduced(produced, sizes.jobs);
  // Exactly once, untimed: drain what went in with the system's own worker.
  ctx.log('draining to check every job runs once');
  const worked = await work(round, deployment.endpoint, { expected: sizes.jobs, latency: false });
  problems.push(...checkWorked(worked, sizes.jobs));
  return { values: { rate: rate(sizes.jobs, produced.startedAt, produced.endedAt) }, problems };
}

/** W1: every job by its own enqueue call, from 16 concurrent callers in one process. */
export const enqueueSingle: Workload = {
  id: 'W1',
  title: (s) => `W1 enqueue-single: ${s.jobs.toLocaleString('en-US')} calls, ${PRODUCERS} concurrent`,
  metrics: [{ key: 'rate', label: 'jobs/s', better: 'higher' }],
  scope: 'all',
  run: (ctx) => runEnqueue(ctx, 'single'),
};

/** W2: calls of 500 jobs, one after another. */
export const enqueueBatch: Workload = {
  id: 'W2',
  title: (s) => `W2 enqueue-batch: ${s.jobs.toLocaleString('en-US')} in calls of ${BATCH}`,
  metrics: [{ key: 'rate', label: 'jobs/s', better: 'higher' }],
  scope: 'all',
  run: (ctx) => runEnqueue(ctx, 'batch'),
};

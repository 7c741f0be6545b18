// MIX: a sustained mixed run. One producer offers single enqueues at a fixed
// rate for a fixed time while one worker (best settings) drains: does the
// system keep up, how long does a job wait, and what is left at the end.
import { tuned } from '../lib/tuning.js';
import { percentile } from '../lib/stats.js';
import type { WorkResult } from '../roles/work.js';
import { MEMORY_METRICS, checkProduced, checkWorked, memoryValues, produce, startWorker } from './steps.js';
import type { Measurement, RunContext, Workload } from './types.js';

/**
 * Offered jobs/s. 1,000 is what every system here can nearly carry on 2 cores
 * with the worker running beside the producer: graphile-worker's single
 * `addJob` tops out near 1,000-2,000 jobs/s in W1 (16 callers), pg-boss's
 * `send` near 2,000-4,000, so a higher rate would measure the slowest
 * producer's queueing, not the queue; a lower one would leave all of them idle.
 */
export const MIX_RATE = tuned('MIX_RATE', 1000);

async function runMix(ctx: RunContext): Promise<Measurement> {
  const { round, sizes } = ctx;
  const system = ctx.system!;
  const count = Math.round(MIX_RATE * sizes.mixSeconds);
  const deployment = await system.deploy(round);
  // The worker is up and waiting before the first job, as in W4.
  const worker = startWorker(round, deployment.endpoint, { expected: count, latency: true, times: true });
  await worker.next('started', round.signal);
  const produced = await produce(round, deployment.endpoint, { mode: 'rate', count, ratePerSec: MIX_RATE });
  const worked = (await worker.next('result', round.signal)) as unknown as WorkResult;
  await round.wait(worker.exited);
  const problems = [...checkProduced(produced, count), ...checkWorked(worked, count)];
  const window = produced.endedAt - produced.startedAt;
  // At the end of the window (the producer's last answer): how many had run, how many still waited.
  const times = worked.handledTimes ?? [];
  const handled = countUpTo(times, produced.endedAt);
  const latencies = worked.latenciesMs ?? [];
  return {
    values: {
      offered: (1000 * count) / window,
      rate: (1000 * handled) / window,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      backlog: count - handled,
      inFlight: produced.maxInFlight ?? Number.NaN,
      ...memoryValues(deployment, worked),
    },
    problems,
  };
}

/** How many of the ascending `times` are at or before `t` (binary search). */
function countUpTo(times: readonly number[], t: number): number {
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((times[mid] as number) <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export const mixed: Workload = {
  id: 'MIX',
  title: (s) => `MIX sustained: ${MIX_RATE.toLocaleString('en-US')} single enqueues/s offered for ${s.mixSeconds} s, one worker draining`,
  metrics: [
    { key: 'offered', label: 'jobs/s enqueued (first call to last answer)', better: 'higher', compare: false },
    { key: 'rate', label: 'jobs/s run in the window', better: 'higher' },
    { key: 'p50', label: 'enqueue → start p50 ms', better: 'lower' },
    { key: 'p99', label: 'enqueue → start p99 ms', better: 'lower' },
    { key: 'backlog', label: 'backlog at the end, jobs', better: 'lower' },
    { key: 'inFlight', label: 'most enqueue calls in flight', better: 'lower', compare: false },
    ...MEMORY_METRICS,
  ],
  scope: 'all',
  run: runMix,
};

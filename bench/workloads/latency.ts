// W4: enqueue-to-handler latency on an idle worker, one job every 10 ms.
import { sleep } from '../lib/clock.js';
import { percentile } from '../lib/stats.js';
import type { WorkResult } from '../roles/work.js';
import { MEMORY_METRICS, checkProduced, checkWorked, memoryValues, produce, startWorker } from './steps.js';
import type { Measurement, RunContext, Workload } from './types.js';

const INTERVAL_MS = 10;
/** How long the worker sits idle before the first job: past any startup burst, into its wait for work. */
const IDLE_MS = 1000;

async function runLatency(ctx: RunContext): Promise<Measurement> {
  const { round, sizes } = ctx;
  const system = ctx.system!;
  const deployment = await system.deploy(round, { latency: true });
  const worker = startWorker(round, deployment.endpoint, { expected: sizes.latencyJobs, latency: true });
  await worker.next('started', round.signal);
  await round.wait(sleep(IDLE_MS));
  const produced = await produce(round, deployment.endpoint, { mode: 'paced', count: sizes.latencyJobs, intervalMs: INTERVAL_MS });
  const worked = (await worker.next('result', round.signal)) as unknown as WorkResult;
  const problems = [...checkProduced(produced, sizes.latencyJobs), ...checkWorked(worked, sizes.latencyJobs)];
  const latencies = worked.latenciesMs ?? [];
  return {
    values: {
      p50: percentile(latencies, 50),
      p95: percentile(latencies, 95),
      p99: percentile(latencies, 99),
      max: Math.max(...latencies),
      // Not in the table: how much of the latency is the enqueue call itself.
      enqueueCallP50: percentile(produced.callMs ?? [], 50),
      enqueueCallP95: percentile(produced.callMs ?? [], 95),
      ...memoryValues(deployment, worked),
    },
    problems,
  };
}

export const latency: Workload = {
  id: 'W4',
  title: (s) => `W4 latency: ${s.latencyJobs} jobs ${INTERVAL_MS} ms apart, idle worker`,
  metrics: [
    { key: 'p50', label: 'p50 ms', better: 'lower' },
    { key: 'p95', label: 'p95 ms', better: 'lower' },
    { key: 'p99', label: 'p99 ms', better: 'lower' },
    { key: 'max', label: 'max ms', better: 'lower' },
    ...MEMORY_METRICS,
  ],
  scope: 'all',
  run: runLatency,
};

// W4: enqueue-to-handler latency on an idle worker, one job every 10 ms.
import { sleep } from '../lib/clock.js';
import { percentile } from '../lib/stats.js';
import type { WorkResult } from '../roles/work.js';
import { MEMORY_METRICS, checkProduced, checkWorked, memoryValues, produce, startWorker } from './steps.js';
import type { Measurement, RunContext, Workload } from './types.js';

const INTERVAL_MS = 10;
/** How long the worker sits idle before the first job: past any startup burst, into its wait for work. */
const IDLE_MS = 1000;
/**
 * Jobs sent first, the same way, and left out of the figures. The first jobs
 * of a fresh deployment measure first-time code compilation in every process
 * (skipq's first job: about 20-35 ms, producer, server and worker each a few
 * ms, its insert and claim statements 6-10 ms each, against ~2.4 ms per job
 * once warm; warming the database connections at server start left it at
 * 22 ms), and with 300 jobs p99 is the third worst: without this, W4's p99
 * was mostly the first five jobs. Every system gets the same warm-up.
 */
const WARMUP_JOBS = 20;

async function runLatency(ctx: RunContext): Promise<Measurement> {
  const { round, sizes } = ctx;
  const system = ctx.system!;
  const deployment = await system.deploy(round, { latency: true });
  const count = WARMUP_JOBS + sizes.latencyJobs;
  const worker = startWorker(round, deployment.endpoint, { expected: count, latency: true });
  await worker.next('started', round.signal);
  await round.wait(sleep(IDLE_MS));
  const produced = await produce(round, deployment.endpoint, { mode: 'paced', count, intervalMs: INTERVAL_MS });
  const worked = (await worker.next('result', round.signal)) as unknown as WorkResult;
  const problems = [...checkProduced(produced, count), ...checkWorked(worked, count)];
  // In the order the handlers began: the first WARMUP_JOBS are the warm-up.
  const latencies = (worked.latenciesMs ?? []).slice(WARMUP_JOBS);
  return {
    values: {
      p50: percentile(latencies, 50),
      p95: percentile(latencies, 95),
      p99: percentile(latencies, 99),
      max: Math.max(...latencies),
      // Not in the table: how much of the latency is the enqueue call itself.
      enqueueCallP50: percentile((produced.callMs ?? []).slice(WARMUP_JOBS), 50),
      enqueueCallP95: percentile((produced.callMs ?? []).slice(WARMUP_JOBS), 95),
      ...memoryValues(deployment, worked),
    },
    problems,
  };
}

export const latency: Workload = {
  id: 'W4',
  title: (s) => `W4 latency: ${s.latencyJobs} jobs ${INTERVAL_MS} ms apart (after ${WARMUP_JOBS} warm-up jobs), idle worker`,
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

// The steps workloads share: a producer child, a worker child, the exactly-once check, peak memory.
import { BUILT } from '../lib/built.js';
import type { Child } from '../lib/children.js';
import { sleep } from '../lib/clock.js';
import { peakRssMiB } from '../lib/procfs.js';
import type { Round } from '../lib/round.js';
import type { ProduceConfig, ProduceResult } from '../roles/produce.js';
import type { WorkConfig, WorkResult } from '../roles/work.js';
import type { Deployment, Endpoint } from '../systems.js';
import type { Metric } from './types.js';

/** Runs a producer child to the end and returns what it reported. */
export async function produce(round: Round, endpoint: Endpoint, config: Omit<ProduceConfig, 'endpoint'>): Promise<ProduceResult> {
  const child = round.spawn({ name: `${endpoint.system} producer`, script: BUILT['bench/roles/produce.ts'] as string, config: { endpoint, ...config } });
  return (await child.next('result', round.signal)) as unknown as ProduceResult;
}

/** What a worker child is asked to do, plus node flags for its process. */
type WorkerSpec = Omit<WorkConfig, 'endpoint' | 'stallMs' | 'graceMs'> & Partial<WorkConfig> & { nodeArgs?: string[] };

/** Starts a worker child; wait for "started", then "result". */
export function startWorker(round: Round, endpoint: Endpoint, spec: WorkerSpec): Child {
  const { nodeArgs, ...config } = spec;
  return round.spawn({
    name: `${endpoint.system} worker`,
    script: BUILT['bench/roles/work.ts'] as string,
    nodeArgs,
    config: { stallMs: 15_000, graceMs: 300, ...config, endpoint },
  });
}

/** Runs a worker child over `expected` jobs to the end. */
export async function work(round: Round, endpoint: Endpoint, spec: WorkerSpec): Promise<WorkResult> {
  const child = startWorker(round, endpoint, spec);
  const result = (await child.next('result', round.signal)) as unknown as WorkResult;
  // It exits by itself right after; let it (a --cpu-prof profile is written on the way out).
  await round.wait(Promise.race([child.exited, sleep(5000)]));
  return result;
}

/** Problems with what a producer reported: failed calls, or fewer distinct ids than jobs. */
export function checkProduced(result: ProduceResult, expected: number): string[] {
  const problems: string[] = [];
  if (result.failures > 0) problems.push(`${result.failures} enqueue calls failed (first: ${result.firstError})`);
  if (result.enqueued !== expected) problems.push(`enqueued ${result.enqueued} of ${expected} jobs`);
  if (result.distinctIds !== expected) problems.push(`got ${result.distinctIds} distinct job ids for ${expected} jobs`);
  return problems;
}

/** Problems with what a worker saw: every job n must have run exactly once and been recorded complete. */
export function checkWorked(result: WorkResult, expected: number): string[] {
  const problems: string[] = [];
  if (result.missing > 0) problems.push(`${result.missing} of ${expected} jobs never ran (worker stalled)`);
  if (result.duplicates > 0) problems.push(`${result.duplicates} jobs ran more than once (${result.executions} executions for ${expected} jobs)`);
  if (result.outOfRange > 0) problems.push(`${result.outOfRange} executions of jobs that were never enqueued`);
  if (result.corrupt > 0) problems.push(`${result.corrupt} handlers found a document that was missing or not their job's`);
  if (result.missing === 0 && result.distinctIds !== expected) problems.push(`${result.distinctIds} distinct job ids ran for ${expected} jobs`);
  if (result.missing === 0 && !(typeof result.completedAt === 'number' && Number.isFinite(result.completedAt))) {
    problems.push('every handler ran but the system did not record all jobs as completed within 30 s');
  }
  return problems;
}

/** Jobs per second over an interval in ms. */
export const rate = (jobs: number, fromMs: number, toMs: number): number => jobs / ((toMs - fromMs) / 1000);

/** The memory rows every workload with processes shows (issue 13: server ≤ 200 MiB in every workload, worker ≤ 150 MiB). */
export const MEMORY_METRICS: Metric[] = [
  { key: 'workerRss', label: 'worker peak RSS, MiB', better: 'lower' },
  { key: 'serverRss', label: 'server peak RSS, MiB', better: 'lower', compare: false },
];

/**
 * Peak RSS of the worker child (its own VmHWM, read as it finished) and of the
 * skipq server so far. VmHWM is a high-water mark, so reading the server's
 * after the timed part covers all of it.
 */
export function memoryValues(deployment: Deployment, worked: WorkResult | null): Record<string, number> {
  const values: Record<string, number> = {};
  if (worked?.peakRssMiB != null) values.workerRss = worked.peakRssMiB;
  const serverRss = deployment.serverPid ? peakRssMiB(deployment.serverPid) : null;
  if (serverRss !== null) values.serverRss = serverRss;
  return values;
}

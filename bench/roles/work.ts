// Child process: runs one system's worker over `expected` jobs, counts every
// handler execution per job, and reports timing, latency and peak memory.
// Started by bench/run.ts with BENCH_CONFIG; prints "started", then "result".
import { exitWhenFlushed, readConfig, send } from '../lib/children.js';
import { now, sleep } from '../lib/clock.js';
import { cpuTimeMs, machineCpuMs, peakRssMiB } from '../lib/procfs.js';
import { orderIdOf, type PayloadKind } from '../payload.js';
import { loadSystem, type Endpoint, type Handle } from '../systems.js';

/** What the orchestrator asks of a worker. */
export interface WorkConfig {
  endpoint: Endpoint;
  /** Jobs n = 0..expected-1 are coming. */
  expected: number;
  /** A process whose CPU time over the timed window is reported too (the skipq server). */
  observePid?: number;
  /** Give up when no new job arrived for this long (a lost job, not a slow one). */
  stallMs: number;
  /** Record enqueue-to-handler latency from payload.t. */
  latency: boolean;
  /** After the last job: how long to keep listening for a second execution. */
  graceMs: number;
  /** Jobs in flight (W3-C10); default the system's best settings. */
  concurrency?: number;
  /** 4k: every handler reads doc.orderId and checks it is job n's. */
  payload?: PayloadKind;
  /** Report when each job's handler first began (MIX counts what was done by the end of its window). */
  times?: boolean;
}

/** What a worker reports. */
export interface WorkResult {
  event: 'result';
  /** Just before the worker was started. */
  startedAt: number;
  /** The handler of the last new job began. */
  handledAt: number;
  /** The system recorded the last job as completed (NaN if it never did). */
  completedAt: number;
  executions: number;
  /** Jobs n never executed, executed more than once, and n outside 0..expected-1. */
  missing: number;
  duplicates: number;
  outOfRange: number;
  distinctIds: number;
  /** 4k: handlers that found a document missing or not job n's. */
  corrupt: number;
  latenciesMs?: number[];
  /** times only: first handler start of every job that ran, ascending. */
  handledTimes?: number[];
  peakRssMiB: number | null;
  /** CPU used from start to last completion: this worker process, the observed process, and the whole machine (busy %, all cores = 100). */
  workerCpuMs: number;
  observedCpuMs: number | null;
  machineBusyPct: number;
}

const config = readConfig<WorkConfig>();
const { driver } = await loadSystem(config.endpoint.system);
const runs = new Uint32Array(config.expected);
const ids = new Set<string>();
const latencies: number[] = [];
const firstRun = config.times ? new Float64Array(config.expected) : null;
let executions = 0;
let corrupt = 0;
let distinct = 0;
let outOfRange = 0;
let handledAt = Number.NaN;
let lastArrival = now();
let allSeen: () => void = () => {};
const seen = new Promise<void>((resolve) => (allSeen = resolve));

const handle: Handle = (payload, jobId) => {
  const at = now();
  executions++;
  lastArrival = at;
  ids.add(jobId);
  const n = payload.n;
  if (!Number.isInteger(n) || n < 0 || n >= config.expected) {
    outOfRange++;
    return;
  }
  // The handler touches its payload: one field of the document, as a real one would read it.
  if (config.payload === '4k' && payload.doc?.orderId !== orderIdOf(n)) corrupt++;
  if ((runs[n] = (runs[n] as number) + 1) === 1) {
    distinct++;
    if (firstRun) firstRun[n] = at;
    if (config.latency && typeof payload.t === 'number') latencies.push(at - payload.t);
    if (distinct === config.expected) {
      handledAt = at;
      allSeen();
    }
  }
};
const worker = await driver.worker(config.endpoint, handle, { concurrency: config.concurrency });

const cpuBefore = { self: process.cpuUsage(), observed: config.observePid ? cpuTimeMs(config.observePid) : null, machine: machineCpuMs() };
const startedAt = now();
await worker.start();
send({ event: 'started' });

// Every job seen, or stalled: a lost job shows as "missing", not as a hang.
for (;;) {
  const stalled = sleep(250).then(() => 'tick' as const);
  if ((await Promise.race([seen.then(() => 'all' as const), stalled])) === 'all') break;
  if (now() - lastArrival > config.stallMs) break;
}

// Handlers done is not the end: wait until the system recorded every completion.
let completedAt = Number.NaN;
if (distinct === config.expected) {
  const until = now() + 30_000;
  while (now() < until) {
    if (await worker.allCompleted(config.expected)) {
      completedAt = now();
      break;
    }
    await sleep(2);
  }
}
const selfCpu = process.cpuUsage(cpuBefore.self);
const observedAfter = config.observePid ? cpuTimeMs(config.observePid) : null;
const machineAfter = machineCpuMs();
// A job run twice would most likely show up right after the first run.
await sleep(config.graceMs);
await Promise.race([worker.stop(), sleep(10_000)]);

let missing = 0;
let duplicates = 0;
for (const r of runs) {
  if (r === 0) missing++;
  else if (r > 1) duplicates++;
}
send({
  event: 'result',
  startedAt,
  handledAt,
  completedAt,
  executions,
  missing,
  duplicates,
  outOfRange,
  distinctIds: ids.size,
  corrupt,
  ...(config.latency ? { latenciesMs: latencies } : {}),
  ...(firstRun ? { handledTimes: Array.from(firstRun).filter((t) => t > 0).sort((a, b) => a - b) } : {}),
  peakRssMiB: peakRssMiB('self'),
  workerCpuMs: (selfCpu.user + selfCpu.system) / 1000,
  observedCpuMs: observedAfter !== null && cpuBefore.observed !== null ? observedAfter - cpuBefore.observed : null,
  machineBusyPct: (100 * (machineAfter.busy - cpuBefore.machine.busy)) / Math.max(1, machineAfter.total - cpuBefore.machine.total),
} satisfies WorkResult);
exitWhenFlushed();

// Child process: enqueues jobs through one system's client and reports timing.
// Started by bench/run.ts with BENCH_CONFIG; prints one "result" message.
import { exitWhenFlushed, readConfig, send } from '../lib/children.js';
import { now, sleep } from '../lib/clock.js';
import { orderDoc, type PayloadKind } from '../payload.js';
import { loadSystem, type BenchPayload, type BenchProducer, type Endpoint } from '../systems.js';

/** What the orchestrator asks of a producer. */
export interface ProduceConfig {
  endpoint: Endpoint;
  /**
   * single: one call per job from `concurrency` loops; batch: calls of `batchSize`;
   * paced: one at a time, `intervalMs` apart, payload carries t;
   * rate: open loop at `ratePerSec` (job i leaves at start + i / rate whether or not earlier calls have answered), payload carries t.
   */
  mode: 'single' | 'batch' | 'paced' | 'rate';
  count: number;
  concurrency?: number;
  batchSize?: number;
  intervalMs?: number;
  ratePerSec?: number;
  /** Default tiny ({ n }). */
  payload?: PayloadKind;
}

/** What a producer reports. */
export interface ProduceResult {
  event: 'result';
  startedAt: number;
  endedAt: number;
  enqueued: number;
  distinctIds: number;
  failures: number;
  firstError?: string;
  /** paced only: how long each enqueue call took, ms (to split W4 latency into enqueue and pickup). */
  callMs?: number[];
  /** rate only: the most calls that were waiting for an answer at once. */
  maxInFlight?: number;
}

const config = readConfig<ProduceConfig>();
const { driver } = await loadSystem(config.endpoint.system);
const producer: BenchProducer = await driver.producer(config.endpoint);
const ids = new Set<string>();
let enqueued = 0;
let failures = 0;
let firstError: string | undefined;
const callMs: number[] = [];
const failed = (error: unknown): void => {
  failures++;
  firstError ??= error instanceof Error ? error.message : String(error);
};

const withDoc = config.payload === '4k';
const payloadOf = (n: number): BenchPayload => (withDoc ? { n, doc: orderDoc(n) } : { n });
// Batches are built before the clock starts: building 10,000 documents is the producer's work, not the system's.
const batches: BenchPayload[][] = [];
if (config.mode === 'batch') {
  const size = config.batchSize ?? 500;
  for (let from = 0; from < config.count; from += size) batches.push(Array.from({ length: Math.min(size, config.count - from) }, (_, i) => payloadOf(from + i)));
}
let maxInFlight = 0;

const startedAt = now();
if (config.mode === 'single') {
  // `concurrency` independent callers, each awaiting its own call, sharing one counter.
  let next = 0;
  await Promise.all(
    Array.from({ length: config.concurrency ?? 1 }, async () => {
      while (next < config.count) {
        const n = next++;
        try {
          ids.add(await producer.enqueue(payloadOf(n)));
          enqueued++;
        } catch (error) {
          failed(error);
        }
      }
    }),
  );
} else if (config.mode === 'batch') {
  for (const payloads of batches) {
    try {
      for (const id of await producer.enqueueMany(payloads)) ids.add(id);
      enqueued += payloads.length;
    } catch (error) {
      failed(error);
    }
  }
} else if (config.mode === 'rate') {
  // Open loop: a system that answers slowly gets more calls in flight, not fewer offered; t is taken just before each call, as in paced.
  const perMs = (config.ratePerSec ?? 1000) / 1000;
  const calls: Promise<void>[] = [];
  let inFlight = 0;
  let n = 0;
  while (n < config.count) {
    const due = Math.min(config.count, Math.floor((now() - startedAt) * perMs) + 1);
    for (; n < due; n++) {
      const t = now();
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      calls.push(
        producer.enqueue({ ...payloadOf(n), t }).then(
          (id) => {
            ids.add(id);
            enqueued++;
          },
          failed,
        ).finally(() => inFlight--),
      );
    }
    // The next job's departure (timers are ~1 ms coarse: jobs due by then leave together).
    if (n < config.count) await sleep(Math.max(0, startedAt + n / perMs - now()));
  }
  await Promise.all(calls);
} else {
  // Paced: job i leaves at start + i * interval (or at once when late), one call at a time.
  const interval = config.intervalMs ?? 10;
  for (let n = 0; n < config.count; n++) {
    const wait = startedAt + n * interval - now();
    if (wait > 0) await sleep(wait);
    try {
      const t = now();
      ids.add(await producer.enqueue({ ...payloadOf(n), t }));
      callMs.push(now() - t);
      enqueued++;
    } catch (error) {
      failed(error);
    }
  }
}
const endedAt = now();
await producer.close();
send({ event: 'result', startedAt, endedAt, enqueued, distinctIds: ids.size, failures, ...(firstError ? { firstError } : {}), ...(config.mode === 'paced' ? { callMs } : {}), ...(config.mode === 'rate' ? { maxInFlight } : {}) } satisfies ProduceResult);
exitWhenFlushed();

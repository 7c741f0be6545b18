// The worker's reporting against a stubbed server, for answers today's server
// never gives (per-item `failed` outcomes, `rejected` progress): the shared
// contract has them, the server side is being built.
import { describe, expect, it } from 'vitest';
import { defineJobs, type ClaimedJob } from '../shared/index.js';
import { z } from 'zod';
import type { SkipqTrpc } from '../client/trpc.js';
import { workerConfigOf } from '../client/worker/config.js';
import { createDeliveryWindow } from '../client/worker/deliveryWindow.js';
import { createHeartbeats } from '../client/worker/heartbeats.js';
import { checkJsonValue } from '../client/worker/jsonValue.js';
import { describeThrown, truncateText } from '../client/worker/describeError.js';
import { createReporter } from '../client/worker/reporting.js';
import type { Run } from '../client/worker/run.js';
import type { WorkerEvent } from '../client/worker/types.js';
import { waitFor } from './support/factories.js';

const jobs = defineJobs({ echo: { payload: z.object({}) } });
const config = workerConfigOf({ url: 'http://127.0.0.1:1/trpc', jobs, handlers: { echo: () => undefined }, leaseMs: 150 });

const jobOf = (id: string): ClaimedJob => ({ id, type: 'echo', queue: 'default', payload: {}, priority: 0, attempt: 1, retryCount: 0, maxRetries: 3, timeoutMs: null });
const runOf = (id: string, progress?: unknown): Run => ({
  job: jobOf(id),
  deadlineAt: null,
  controller: undefined,
  abortReason: undefined,
  progress: progress === undefined ? undefined : { value: progress, dirty: true },
  settled: false,
  timer: undefined,
});
const stub = (worker: Record<string, { mutate: (input: never) => Promise<unknown> }>) => ({ worker }) as unknown as SkipqTrpc;

describe('worker reporting', () => {
  it('a completion the server answers "failed" is a failure with INVALID_RESULT and no retry; the others in its batch complete', async () => {
    const events: WorkerEvent[] = [];
    const trpc = stub({
      completeMany: {
        mutate: async (input: { jobs: Array<{ id: string }> }) => ({
          results: input.jobs.map((j) => (j.id === 'bad' ? { id: j.id, outcome: 'failed', error: 'result of job bad is not JSON' } : { id: j.id, outcome: 'completed' })),
        }),
      },
    });
    const reporter = createReporter({ trpc, config, window: createDeliveryWindow(), emit: (e) => events.push(e) });
    for (const id of ['a', 'bad', 'b']) reporter.complete(runOf(id), { ok: true }, 20);
    await reporter.settled();
    expect(events).toEqual([
      { kind: 'completed', id: 'a', type: 'echo', attempt: 1 },
      { kind: 'failed', id: 'bad', type: 'echo', attempt: 1, error: 'result of job bad is not JSON', code: 'INVALID_RESULT', willRetry: false },
      { kind: 'completed', id: 'b', type: 'echo', attempt: 1 },
    ]);
  });

  it('a heartbeat that names a progress value rejected reports it, drops it, and abandons nothing', async () => {
    const events: WorkerEvent[] = [];
    const abandoned: string[] = [];
    const sent: unknown[] = [];
    const runs = [runOf('p', { step: 1 }), runOf('q', { step: 2 })];
    const trpc = stub({
      heartbeat: {
        mutate: async (input: { jobs: unknown[] }) => {
          sent.push(input.jobs);
          return { extended: [], lost: [], cancelled: [], rejected: sent.length === 1 ? [{ id: 'p', error: 'progress of job p is over the limit' }] : [] };
        },
      },
    });
    const beats = createHeartbeats({ trpc, config, runs: () => runs, abandon: (id) => abandoned.push(id), emit: (e) => events.push(e) });
    beats.start();
    await waitFor(() => sent.length >= 2, 5000, 'two heartbeats');
    beats.stop();
    expect(events).toEqual([{ kind: 'progress_rejected', id: 'p', type: 'echo', attempt: 1, error: 'progress of job p is over the limit' }]);
    expect(abandoned).toEqual([]);
    expect(runs[0]?.progress).toBeUndefined();
    // Delivered progress is not sent again; the rejected one is not resent either.
    expect(sent[0]).toEqual([{ id: 'p', attempt: 1, progress: { step: 1 } }, { id: 'q', attempt: 1, progress: { step: 2 } }]);
    expect(sent[1]).toEqual([{ id: 'p', attempt: 1 }, { id: 'q', attempt: 1 }]);
  });

  it('a heartbeat that fails as a whole abandons nothing and resends the progress next time', async () => {
    const events: WorkerEvent[] = [];
    const abandoned: string[] = [];
    const sent: unknown[] = [];
    const runs = [runOf('p', { step: 1 })];
    const trpc = stub({
      heartbeat: {
        mutate: async (input: { jobs: unknown[] }) => {
          sent.push(input.jobs);
          if (sent.length === 1) throw new Error('server unavailable');
          return { extended: [], lost: [], cancelled: [] };
        },
      },
    });
    const beats = createHeartbeats({ trpc, config, runs: () => runs, abandon: (id) => abandoned.push(id), emit: (e) => events.push(e) });
    beats.start();
    await waitFor(() => sent.length >= 2, 5000, 'two heartbeats');
    beats.stop();
    expect(abandoned).toEqual([]);
    expect(events.map((e) => e.kind)).toEqual(['error']);
    expect(sent[1]).toEqual([{ id: 'p', attempt: 1, progress: { step: 1 } }]);
  });
});

describe('checkJsonValue', () => {
  it('accepts what JSON stores unchanged, at exactly the size and depth limits', () => {
    expect(checkJsonValue({ a: [1, 'é', null, true], d: new Date(0), skip: undefined }, 1000)).toMatchObject({ ok: true });
    const text = 'x'.repeat(98); // "xxx…" is 100 bytes of JSON
    expect(checkJsonValue(text, 100)).toEqual({ ok: true, bytes: 100 });
    expect(checkJsonValue(text, 99)).toMatchObject({ ok: false, problem: 'too_large' });
    let deep: unknown = 1;
    for (let i = 0; i < 64; i++) deep = [deep];
    expect(checkJsonValue(deep, 1000)).toMatchObject({ ok: true });
    expect(checkJsonValue([deep], 1000)).toMatchObject({ ok: false, problem: 'too_deep' });
  });

  it('names the path of the first value JSON cannot hold', () => {
    expect(checkJsonValue({ a: [{ b: 1n }] }, 1000)).toEqual({ ok: false, problem: 'not_json', message: 'at a[0].b: a BigInt is not JSON; convert it to a number or a string' });
    expect(checkJsonValue({ 'odd key': new Set() }, 1000)).toMatchObject({ message: expect.stringMatching(/^at \["odd key"\]: a Set is not JSON/) });
    // eslint-disable-next-line no-sparse-arrays
    expect(checkJsonValue([1, , 3], 1000)).toMatchObject({ message: 'at [1]: a hole in an array is not JSON' });
    expect(checkJsonValue({ get boom() { throw new Error('getter'); } }, 1000)).toMatchObject({ ok: false, message: 'reading it threw: getter' });
  });
});

describe('describeThrown', () => {
  it('never throws, bounds causes and length', () => {
    const loop: Error & { cause?: unknown } = new Error('a');
    loop.cause = loop;
    expect(describeThrown(loop)).toBe('Error: a');
    const proxy = new Proxy({}, { get() { throw new Error('trap'); }, getPrototypeOf() { throw new Error('trap'); } });
    expect(typeof describeThrown(proxy)).toBe('string');
    expect(describeThrown(new AggregateError([new Error('x'), 'y'], 'both'))).toBe("AggregateError: both [2 errors: Error: x; y]");
    expect(describeThrown('z'.repeat(100), 40)).toHaveLength(40);
    expect(truncateText('x'.repeat(100), 40)).toBe(`${'x'.repeat(16)}… [truncated: 100 chars]`);
  });
});

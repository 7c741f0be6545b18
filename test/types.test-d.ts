// Compile-time guarantees of the typed clients. vitest typechecks this file in
// `npm test`: an @ts-expect-error that no longer errors fails the run.
import { z } from 'zod';
import { describe, expectTypeOf, it } from 'vitest';
import { createQueueClient, createWorker, type EnqueuedFlowRef, type EnqueuedJobRef } from '../client/index.js';
import { defineJobs, type PayloadOf } from '../shared/index.js';

const jobs = defineJobs({
  ingestion: {
    payload: z.object({ chainId: z.string(), targetDate: z.string() }),
    result: z.object({ rows: z.number() }),
  },
  email: { payload: z.object({ to: z.string(), cc: z.array(z.string()).optional() }) },
});

const queue = createQueueClient({ url: 'http://127.0.0.1:3000/trpc', jobs });

describe('createQueueClient', () => {
  it('accepts a payload of the right shape and answers a ref whose id remembers its type', () => {
    expectTypeOf(queue.enqueue('ingestion', { chainId: 'konzum', targetDate: '2026-01-23' })).toEqualTypeOf<Promise<EnqueuedJobRef<'ingestion'>>>();
    expectTypeOf(queue.enqueue('email', { to: 'a@b.co' }, { priority: 3, uniqueKey: 'k' })).toEqualTypeOf<Promise<EnqueuedJobRef<'email'>>>();
  });

  it("types result() by the job type's result schema", async () => {
    const ref = await queue.enqueue('ingestion', { chainId: 'konzum', targetDate: '2026-01-23' });
    expectTypeOf(queue.result(ref.id)).toEqualTypeOf<Promise<{ rows: number }>>();
    expectTypeOf(queue.result(ref.id, { timeoutMs: 1000 })).resolves.toHaveProperty('rows').toEqualTypeOf<number>();
    expectTypeOf(queue.enqueueAndWait('ingestion', { chainId: 'konzum', targetDate: '2026-01-23' }, { waitTimeoutMs: 5000 })).toEqualTypeOf<Promise<{ rows: number }>>();
    // A type without a result schema resolves to unknown; so does a bare string id of a mixed registry.
    const mail = await queue.enqueue('email', { to: 'a@b.co' });
    expectTypeOf(queue.result(mail.id)).toEqualTypeOf<Promise<unknown>>();
    // @ts-expect-error rows is a number, not a string
    const wrong: Promise<{ rows: string }> = queue.result(ref.id);
    void wrong;
    // @ts-expect-error enqueueAndWait checks the payload like enqueue
    void queue.enqueueAndWait('ingestion', { chainId: 1, targetDate: 'x' });
  });

  it('types JobView.result wherever the job type is known', async () => {
    const ref = await queue.enqueue('ingestion', { chainId: 'konzum', targetDate: '2026-01-23' });
    const job = await queue.get(ref.id);
    expectTypeOf(job.type).toEqualTypeOf<'ingestion'>();
    expectTypeOf(job.result).toEqualTypeOf<{ rows: number } | null>();
    const { job: waited } = await queue.waitFor(ref.id, { timeoutMs: 100 });
    expectTypeOf(waited.result).toEqualTypeOf<{ rows: number } | null>();
    const { jobs: page } = await queue.list();
    const first = page[0];
    if (first?.type === 'ingestion') expectTypeOf(first.result).toEqualTypeOf<{ rows: number } | null>();
  });

  it('rejects a wrong payload, a missing field and an unknown type at compile time', () => {
    // @ts-expect-error chainId must be a string
    void queue.enqueue('ingestion', { chainId: 42, targetDate: '2026-01-23' });
    // @ts-expect-error targetDate is missing
    void queue.enqueue('ingestion', { chainId: 'konzum' });
    // @ts-expect-error no such job type
    void queue.enqueue('ingestoin', { chainId: 'konzum', targetDate: '2026-01-23' });
    // @ts-expect-error the payload of email is not the payload of ingestion
    void queue.enqueue('email', { chainId: 'konzum', targetDate: '2026-01-23' });
    // @ts-expect-error enqueueMany checks each item against its own type
    void queue.enqueueMany([{ type: 'email', payload: { chainId: 'x', targetDate: 'y' } }]);
    // @ts-expect-error unknown option
    void queue.enqueue('email', { to: 'a@b.co' }, { priorty: 3 });
  });
});

describe('createWorker', () => {
  it('types each handler payload from the registry and checks its result', () => {
    createWorker({
      url: 'http://127.0.0.1:3000/trpc',
      jobs,
      handlers: {
        ingestion: async (payload, ctx) => {
          expectTypeOf(payload).toEqualTypeOf<{ chainId: string; targetDate: string }>();
          expectTypeOf(ctx.signal).toEqualTypeOf<AbortSignal>();
          expectTypeOf(ctx.attempt).toEqualTypeOf<number>();
          return { rows: 1 };
        },
        email: (payload) => {
          expectTypeOf(payload).toEqualTypeOf<PayloadOf<typeof jobs, 'email'>>();
        },
      },
    });
    createWorker({
      url: 'http://127.0.0.1:3000/trpc',
      jobs,
      handlers: {
        // @ts-expect-error the result schema says rows is a number
        ingestion: async () => ({ rows: 'many' }),
      },
    });
    createWorker({
      url: 'http://127.0.0.1:3000/trpc',
      jobs,
      handlers: {
        // @ts-expect-error no such job type
        sms: async () => undefined,
      },
    });
  });
});

describe('schedules and debounce/throttle options', () => {
  it('types a schedule payload by its job type, and the enqueue options', () => {
    void queue.schedules.upsert({ name: 'nightly', type: 'email', cron: '0 3 * * *', payload: { to: 'ops@b.co' }, catchUp: 'all' });
    // @ts-expect-error the payload of email is not the payload of ingestion
    void queue.schedules.upsert({ name: 'nightly', type: 'email', cron: '0 3 * * *', payload: { chainId: 'x', targetDate: 'y' } });
    // @ts-expect-error catchUp is skip, latest or all
    void queue.schedules.upsert({ name: 'nightly', type: 'email', cron: '0 3 * * *', payload: { to: 'a' }, catchUp: 'never' });
    expectTypeOf(queue.enqueue('email', { to: 'a@b.co' }, { uniqueKey: 'k', debounceMs: 500 })).toEqualTypeOf<Promise<EnqueuedJobRef<'email'>>>();
    expectTypeOf(queue.enqueue('email', { to: 'a@b.co' }, { uniqueKey: 'k', throttleMs: 60_000 })).toEqualTypeOf<Promise<EnqueuedJobRef<'email'>>>();
  });
});

describe('flows', () => {
  it('types every job of a flow by its type, the parent id by the parent type, and ctx.children() by the registry', async () => {
    const flow = queue.enqueueFlow({
      parent: { type: 'ingestion', payload: { chainId: 'all', targetDate: '2026-01-23' }, onChildFailure: 'continue' },
      children: [
        { type: 'email', payload: { to: 'a@b.co' }, delayMs: 10 },
        { parent: { type: 'email', payload: { to: 'b@b.co' } }, children: [{ type: 'ingestion', payload: { chainId: 'x', targetDate: 'y' } }] },
      ],
    });
    expectTypeOf(flow).toEqualTypeOf<Promise<EnqueuedFlowRef<'ingestion'>>>();
    expectTypeOf(queue.result((await flow).id)).toEqualTypeOf<Promise<{ rows: number }>>();
    // @ts-expect-error a child's payload is checked against its own type
    void queue.enqueueFlow({ parent: { type: 'email', payload: { to: 'a' } }, children: [{ type: 'ingestion', payload: { to: 'a' } }] });
    // @ts-expect-error a parent runs when its children are done: no delayMs
    void queue.enqueueFlow({ parent: { type: 'email', payload: { to: 'a' }, delayMs: 5 }, children: [{ type: 'email', payload: { to: 'b' } }] });
    // @ts-expect-error uniqueKey is not taken in a flow
    void queue.enqueueFlow({ parent: { type: 'email', payload: { to: 'a' } }, children: [{ type: 'email', payload: { to: 'b' }, uniqueKey: 'k' }] });
    createWorker({
      url: 'http://127.0.0.1:3000/trpc',
      jobs,
      handlers: {
        ingestion: async (_payload, ctx) => {
          const children = await ctx.children();
          for (const child of children) {
            if (child.type === 'ingestion') expectTypeOf(child.result).toEqualTypeOf<{ rows: number } | null>();
            else expectTypeOf(child.result).toEqualTypeOf<unknown>();
          }
          return { rows: children.length };
        },
      },
    });
  });
});

// The output schemas the REST surface needs (shared/outputs.ts) did not change
// what tRPC clients see: every answer has the type it had when it was inferred
// from the procedure's code. Compiled by test/types.test.ts.
import type { inferRouterInputs, inferRouterOutputs } from '@trpc/server';
import { describe, expectTypeOf, it } from 'vitest';
import type { AppRouter } from '../server/routers/_app.js';
import type {
  AttemptsAnswer,
  ChildrenAnswer,
  EnqueuedFlow,
  JobDetail,
  ClaimAnswer,
  CompleteAnswer,
  EnqueuedJob,
  EnqueuedRef,
  FailAnswer,
  HeartbeatAnswer,
  JobExplanation,
  JobView,
  QueueView,
} from '../shared/index.js';

type Out = inferRouterOutputs<AppRouter>;
type In = inferRouterInputs<AppRouter>;

describe('tRPC answers keep their types', () => {
  it('jobs', () => {
    expectTypeOf<Out['jobs']['enqueue']>().toEqualTypeOf<EnqueuedJob>();
    expectTypeOf<Out['jobs']['enqueueMany']>().toEqualTypeOf<{ jobs: EnqueuedRef[] }>();
    expectTypeOf<Out['jobs']['get']>().toEqualTypeOf<JobDetail>();
    expectTypeOf<Out['jobs']['enqueueFlow']>().toEqualTypeOf<EnqueuedFlow>();
    expectTypeOf<Out['jobs']['attempts']>().toEqualTypeOf<AttemptsAnswer>();
    expectTypeOf<Out['jobs']['children']>().toEqualTypeOf<ChildrenAnswer>();
    expectTypeOf<Out['jobs']['cancel']>().toEqualTypeOf<JobView>();
    expectTypeOf<Out['jobs']['retry']>().toEqualTypeOf<JobView>();
    expectTypeOf<Out['jobs']['list']>().toEqualTypeOf<{ jobs: JobView[]; nextCursor: string | null }>();
    expectTypeOf<Out['jobs']['waitFor']>().toEqualTypeOf<{ finished: boolean; job: JobView }>();
    expectTypeOf<Out['jobs']['explain']>().toEqualTypeOf<JobExplanation>();
  });

  it('worker', () => {
    expectTypeOf<Out['worker']['claim']>().toEqualTypeOf<ClaimAnswer>();
    expectTypeOf<Out['worker']['start']>().toEqualTypeOf<{ started: string[]; lost: string[]; cancelled: string[] }>();
    expectTypeOf<Out['worker']['heartbeat']>().toEqualTypeOf<HeartbeatAnswer>();
    expectTypeOf<Out['worker']['complete']>().toEqualTypeOf<{ id: string; status: 'completed' } | { id: string; status: 'failed'; error: string }>();
    expectTypeOf<Out['worker']['completeMany']>().toEqualTypeOf<{ results: CompleteAnswer[] }>();
    expectTypeOf<Out['worker']['fail']>().toEqualTypeOf<{ id: string; status: 'pending' | 'failed'; scheduledFor: Date; retryCount: number }>();
    expectTypeOf<Out['worker']['failMany']>().toEqualTypeOf<{ results: FailAnswer[] }>();
    expectTypeOf<Out['worker']['children']>().toEqualTypeOf<ChildrenAnswer>();
    expectTypeOf<Out['worker']['release']>().toEqualTypeOf<{ released: string[]; lost: string[]; cancelled: string[] }>();
  });

  it('queues and health', () => {
    expectTypeOf<Out['queues']['list']>().toEqualTypeOf<{ queues: QueueView[] }>();
    expectTypeOf<Out['queues']['stats']>().toEqualTypeOf<{ counts: Array<{ queue: string; type: string; status: string; count: number; oldestScheduledFor: Date | null }> }>();
    expectTypeOf<Out['health']>().toEqualTypeOf<{ ok: boolean; database: 'up' | 'down'; listening: boolean; version: string }>();
  });

  it('jobs.list takes no input', () => {
    expectTypeOf<undefined>().toExtend<In['jobs']['list']>();
  });
});

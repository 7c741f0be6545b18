import { healthOutputSchema } from '../../shared/index.js';
import { isDatabaseUnavailable } from '../errors.js';
import { createCallerFactory, publicProcedure, router } from '../trpc.js';
import { eventsRouter } from './events.js';
import { jobsRouter } from './jobs.js';
import { queuesRouter } from './queues.js';
import { schedulesRouter } from './schedules.js';
import { workerRouter } from './worker.js';
import { workersRouter } from './workers.js';

/** skipq's root router. */
export const appRouter = router({
  jobs: jobsRouter,
  worker: workerRouter,
  queues: queuesRouter,
  schedules: schedulesRouter,
  workers: workersRouter,
  events: eventsRouter,
  /** Whether the database answers, and the server's version. Needs no key. */
  health: publicProcedure
    .meta({ openapi: { method: 'GET', path: '/api/health', summary: 'Whether the database answers, and the server version', protect: false } })
    .output(healthOutputSchema)
    .query(async ({ ctx }) => {
    let database: 'up' | 'down' = 'up';
    try {
      await ctx.deps.pool.query('SELECT 1');
    } catch (error) {
      if (!isDatabaseUnavailable(error)) throw error;
      database = 'down';
    }
    return { ok: database === 'up', database, listening: ctx.deps.hub.listening, version: ctx.deps.version };
  }),
});

/** The router's type: the only thing clients import from the server. */
export type AppRouter = typeof appRouter;

/** Calls procedures in-process (tests, scripts) with a context from `createContextInner`. */
export const createCaller = createCallerFactory(appRouter);

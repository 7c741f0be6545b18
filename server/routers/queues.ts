import {
  JOB_STATUSES,
  queueConfigureInputSchema,
  queueListInputSchema,
  queueRefInputSchema,
  statsInputSchema,
  statsOutputSchema,
  queueListOutputSchema,
  type JobStatus,
  type QueueView,
} from '../../shared/index.js';
import { queueConfigure, queueList, queueSetPaused, type QueueRow } from '../queries/queues.js';
import { queueStats } from '../queries/stats.js';
import { adminProcedure, assertQueueAllowed, router } from '../trpc.js';

/** A queue's settings as the API shows them. */
function settingsOf(row: QueueRow) {
  return {
    name: row.name,
    paused: row.paused,
    concurrency: row.concurrency,
    rateLimit: row.rate_max !== null && row.rate_period_ms !== null ? { max: row.rate_max, periodMs: row.rate_period_ms } : null,
    keyConcurrency: row.key_concurrency,
    retentionDays: row.retention_days,
    failedRetentionDays: row.failed_retention_days,
  };
}

/** Queue-level views and settings. Changing a queue needs an admin key allowed that queue. */
export const queuesRouter = router({
  /** Job counts per queue, type and status, with the oldest scheduled_for of each; a key limited to some queues sees only those. */
  stats: adminProcedure
    .meta({ openapi: { method: 'GET', path: '/api/stats', summary: 'Job counts per queue, type and status (admin)' } })
    .output(statsOutputSchema)
    .input(statsInputSchema).query(async ({ ctx }) => {
    const allowed = ctx.principal.queues;
    const rows = (await queueStats(ctx.deps.db)).filter((r) => !allowed || allowed.includes(r.queue));
    return {
      counts: rows.map((r) => ({ queue: r.queue, type: r.task_type, status: r.status, count: r.count, oldestScheduledFor: r.oldest_scheduled_for })),
    };
  }),

  /** Every queue with a row or jobs: its settings and its jobs per status. A key limited to some queues sees only those. */
  list: adminProcedure
    .meta({ openapi: { method: 'GET', path: '/api/queues', summary: 'Every queue with its settings and jobs per status (admin)' } })
    .output(queueListOutputSchema)
    .input(queueListInputSchema).query(async ({ ctx }) => {
    const allowed = ctx.principal.queues;
    const byName = new Map<string, QueueView>();
    for (const row of await queueList(ctx.deps.db)) {
      if (allowed && !allowed.includes(row.name)) continue;
      let view = byName.get(row.name);
      if (!view) {
        view = { ...settingsOf(row), counts: Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number> };
        byName.set(row.name, view);
      }
      if (row.status !== null) view.counts[row.status as JobStatus] = row.count;
    }
    return { queues: [...byName.values()] };
  }),

  /** Stops claims from the queue (over HTTP and claim_tasks); enqueues still go in. */
  pause: adminProcedure.input(queueRefInputSchema).mutation(async ({ ctx, input }) => {
    assertQueueAllowed(ctx, input.queue);
    return settingsOf(await queueSetPaused(ctx.deps.db, { queue: input.queue, paused: true }));
  }),

  /** Lets claims take the queue's jobs again, and wakes waiting claims. */
  resume: adminProcedure.input(queueRefInputSchema).mutation(async ({ ctx, input }) => {
    assertQueueAllowed(ctx, input.queue);
    const row = await queueSetPaused(ctx.deps.db, { queue: input.queue, paused: false });
    ctx.deps.hub.wake([input.queue]);
    return settingsOf(row);
  }),

  /**
   * Sets the queue's concurrency, rate limit, key concurrency and retention
   * (days to keep completed/cancelled and failed jobs; 0 forever, `null` the
   * server's default); a field left out keeps its setting, `null` clears it.
   * Answers the settings now in force.
   */
  configure: adminProcedure.input(queueConfigureInputSchema).mutation(async ({ ctx, input }) => {
    assertQueueAllowed(ctx, input.queue);
    const row = await queueConfigure(ctx.deps.pool, input);
    await ctx.deps.limited?.refresh();
    ctx.deps.hub.wake([input.queue]);
    return settingsOf(row);
  }),
});

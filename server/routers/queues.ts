import { statsInputSchema } from '../../shared/index.js';
import { queueStats } from '../queries/stats.js';
import { adminProcedure, router } from '../trpc.js';

/** Queue-level views. */
export const queuesRouter = router({
  /** Job counts per queue, type and status, with the oldest scheduled_for of each; a key limited to some queues sees only those. */
  stats: adminProcedure.input(statsInputSchema).query(async ({ ctx }) => {
    const allowed = ctx.principal.queues;
    const rows = (await queueStats(ctx.deps.db)).filter((r) => !allowed || allowed.includes(r.queue));
    return {
      counts: rows.map((r) => ({ queue: r.queue, type: r.task_type, status: r.status, count: r.count, oldestScheduledFor: r.oldest_scheduled_for })),
    };
  }),
});

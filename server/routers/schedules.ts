import { ERROR_CODES, scheduleRefInputSchema, scheduleUpsertInputSchema, type ScheduleView } from '../../shared/index.js';
import type { Principal, QueueContext } from '../context.js';
import { QueueError } from '../errors.js';
import { queueOf } from '../registryCheck.js';
import { scheduleGet, scheduleList, schedulePause, scheduleRemove, scheduleResume } from '../queries/schedules.js';
import { databaseNow } from '../queries/schedules.js';
import { parseCron, toScheduleView, upsertSchedule } from '../schedules.js';
import { adminProcedure, assertQueueAllowed, router } from '../trpc.js';
import type { ScheduleRow } from '../queries/schedules.js';

const notFound = (name: string): QueueError => new QueueError(ERROR_CODES.SCHEDULE_NOT_FOUND, `no schedule named "${name}"`);

async function viewOrThrow(ctx: QueueContext, name: string): Promise<ScheduleView> {
  const row = await scheduleGet(ctx.deps.db, name);
  if (!row) throw notFound(name);
  return toScheduleView(row);
}

/** The queue a schedule's jobs go to: its own, else its type's, else `default`. */
const queueOfRow = (ctx: QueueContext, row: ScheduleRow): string => queueOf(ctx.deps.registry, { type: row.task_type, queue: row.queue ?? undefined });

/** A key limited to some queues manages only the schedules that enqueue into them (FORBIDDEN otherwise). */
async function allowedRow(ctx: QueueContext & { principal: Principal }, name: string): Promise<ScheduleRow> {
  const row = await scheduleGet(ctx.deps.db, name);
  if (!row) throw notFound(name);
  assertQueueAllowed(ctx, queueOfRow(ctx, row));
  return row;
}

/** Cron schedules, managed at run time (admin keys). Registry schedules are upserted by every server at start. */
export const schedulesRouter = router({
  /**
   * Creates or replaces a schedule by name. The payload is checked against the
   * server's registry schema for the type (BAD_REQUEST with the issues). Its
   * next tick is kept unless the cron or time zone changed.
   */
  upsert: adminProcedure.input(scheduleUpsertInputSchema).mutation(async ({ ctx, input }) => {
    assertQueueAllowed(ctx, queueOf(ctx.deps.registry, input));
    const existing = await scheduleGet(ctx.deps.db, input.name);
    if (existing) assertQueueAllowed(ctx, queueOfRow(ctx, existing));
    await upsertSchedule(ctx.deps, input, 'api');
    return viewOrThrow(ctx, input.name);
  }),
  /** Every schedule with its next 3 run times. */
  list: adminProcedure.query(async ({ ctx }) => {
    const allowed = ctx.principal.queues;
    const rows = (await scheduleList(ctx.deps.db)).filter((r) => !allowed || allowed.includes(queueOfRow(ctx, r)));
    return { schedules: rows.map(toScheduleView) };
  }),
  /** Deletes a schedule (a registry schedule comes back at the next server start). Jobs it made stay. */
  remove: adminProcedure.input(scheduleRefInputSchema).mutation(async ({ ctx, input }) => {
    await allowedRow(ctx, input.name);
    if (!(await scheduleRemove(ctx.deps.db, input.name))) throw notFound(input.name);
    return { name: input.name, removed: true };
  }),
  /** Stops a schedule's ticks until `resume`. */
  pause: adminProcedure.input(scheduleRefInputSchema).mutation(async ({ ctx, input }) => {
    await allowedRow(ctx, input.name);
    const row = await schedulePause(ctx.deps.db, input.name);
    if (!row) throw notFound(input.name);
    return toScheduleView(row);
  }),
  /** Runs a paused schedule again from its next tick after now; ticks due while it was paused are not made. */
  resume: adminProcedure.input(scheduleRefInputSchema).mutation(async ({ ctx, input }) => {
    for (let round = 0; round < 3; round++) {
      const row = await allowedRow(ctx, input.name);
      const now = ctx.deps.now?.() ?? (await databaseNow(ctx.deps.db));
      const next = parseCron(row.cron, row.timezone).nextRun(now);
      if (!next) throw new QueueError(ERROR_CODES.WRONG_STATE, `schedule "${input.name}" has no tick left after ${now.toISOString()}`);
      const resumed = await scheduleResume(ctx.deps.db, { name: row.name, cron: row.cron, timezone: row.timezone, nextRunAt: next });
      if (resumed) return toScheduleView(resumed);
    }
    throw new Error(`schedule "${input.name}" kept changing while resuming; try again`);
  }),
});

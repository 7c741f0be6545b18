import { eventsInputSchema } from '../../shared/index.js';
import { QueueError } from '../errors.js';
import { ERROR_CODES } from '../../shared/index.js';
import { assertQueueAllowed, producerProcedure, router } from '../trpc.js';

/** Live events: a subscription over SSE (tRPC's httpSubscriptionLink). */
export const eventsRouter = router({
  /**
   * Every change of the jobs matching the filters (ids, queues, types; all
   * given must match), as it happens: `{ id, type, queue, kind, status,
   * attempt, progress?, error?, at }`, each tracked by its event id. With
   * `lastEventId` it resumes right after that event; EVENTS_LOST (CONFLICT)
   * when events after it are gone. Who may read a job may subscribe to it
   * (producer and admin keys); a key limited to queues sees only those.
   */
  jobs: producerProcedure.input(eventsInputSchema).subscription(async ({ ctx, input, signal }) => {
    const room = ctx.deps.events;
    if (!room) throw new QueueError(ERROR_CODES.SHUTTING_DOWN, 'this server does not serve events');
    for (const q of input.queues ?? []) assertQueueAllowed(ctx, q);
    const queues = input.queues ?? (ctx.principal.queues ? [...ctx.principal.queues] : null);
    const subscription = await room.open({ ids: input.ids ?? null, queues, types: input.types ?? null }, input.lastEventId);
    return subscription.events(signal);
  }),
});

import { z } from 'zod';
import { jobIdSchema } from './api.js';
import { nameSchema } from './names.js';
import type { JobStatus } from './statuses.js';

/**
 * What happened to a job, as `events.jobs` tells it. `status` is the job's
 * status after the change; a status added later arrives as its own kind.
 */
export const JOB_EVENT_KINDS = [
  'enqueued',
  'rescheduled',
  'claimed',
  'started',
  'progress',
  'completed',
  'failed',
  'retry_scheduled',
  'rescued',
  'released',
  'cancelled',
  'retried',
] as const;

/** One of {@link JOB_EVENT_KINDS}. */
export type JobEventKind = (typeof JOB_EVENT_KINDS)[number];

/**
 * An event's id (`lastEventId`): `<tx>:<seq>`, the key the server orders events by.
 * @example '7315:42'
 */
export const eventIdSchema = z.string().regex(/^\d{1,20}:\d{1,19}$/, 'must be an event id from events.jobs (<tx>:<seq>)');

/**
 * Input of `events.jobs`. Each filter given narrows (ids AND queues AND
 * types); a key limited to queues sees only those. `lastEventId` resumes after
 * that event (tRPC's httpSubscriptionLink sends it by itself on a reconnect).
 */
export const eventsInputSchema = z
  .object({
    ids: z.array(jobIdSchema).min(1).max(1000).optional(),
    queues: z.array(nameSchema).min(1).max(100).optional(),
    types: z.array(nameSchema).min(1).max(100).optional(),
    lastEventId: eventIdSchema.nullish(),
  })
  .strict();

/** Input of `events.jobs`. */
export type EventsInput = z.input<typeof eventsInputSchema>;

/** One change of one job. */
export interface JobEvent {
  /** The job's id. */
  id: string;
  /** The job's type. */
  type: string;
  queue: string;
  kind: JobEventKind;
  status: JobStatus;
  attempt: number;
  /** The progress the worker reported (kind `progress`). */
  progress?: unknown;
  /** The error of the attempt that ended (kinds `failed`, `retry_scheduled`, `rescued`). */
  error?: string;
  /** When the change happened, by the clock of the move. */
  at: Date;
}

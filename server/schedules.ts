import { createHash } from 'node:crypto';
import { Cron } from 'croner';
import { DEFAULT_QUEUE, ERROR_CODES, type CatchUp, type JobRegistry, type ScheduleView } from '../shared/index.js';
import type { Db } from './db/pool.js';
import { QueueError } from './errors.js';
import { toJsonText } from './json.js';
import { typeConcurrencyKey } from './enqueue.js';
import { checkPayload } from './registryCheck.js';
import {
  databaseNow,
  scheduleAdvance,
  scheduleLockDue,
  scheduleTickInsert,
  scheduleUpsert,
  type ScheduleRow,
  type ScheduleWrite,
} from './queries/schedules.js';

/** A tick older than this when the leader gets to it was missed (downtime), and `catchUp` decides; a younger one always runs. */
export const MISSED_AFTER_MS = 10_000;
/** Most ticks one schedule produces in one sweep (`catchUp: 'all'` after a long outage): the newest ones. */
export const CATCH_UP_LIMIT = 100;
/** Most due schedules one sweep handles; the rest are due at the next. */
const SCHEDULES_PER_SWEEP = 100;

// Any fixed 16 bytes: the namespace of tick ids.
const TICK_NAMESPACE = Buffer.from('9f3b1c2e6a7d4e0f8b5a2c1d0e9f8a7b', 'hex');

/**
 * The id of a schedule's job for one tick: a UUID v7 (RFC 9562) whose time is
 * the tick's and whose other 74 bits come from a SHA-1 of (name, tick time).
 * Every leader computes the same id for the same tick, so the primary key
 * makes a second insert of it a no-op: one job per tick, however many leaders.
 * Version 7 and not v5 (a name-based hash, which this was before): job lists
 * are newest first by id, and every other id skipq makes is a v7, so a tick's
 * job sorts by its tick among them instead of wherever its hash fell.
 */
export function tickJobId(name: string, tick: Date): string {
  const id = createHash('sha1').update(TICK_NAMESPACE).update(`${name}\u0000${tick.toISOString()}`).digest().subarray(0, 16);
  // 48 bits of milliseconds: 1970 to the year 10889 (ticks stop at 9999-12-31).
  id.writeUIntBE(Math.min(Math.max(tick.getTime(), 0), 2 ** 48 - 1), 0, 6);
  id[6] = ((id[6] as number) & 0x0f) | 0x70;
  id[8] = ((id[8] as number) & 0x3f) | 0x80;
  const hex = id.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** The uniqueKey of a schedule's jobs when it allows no overlap: one live run at a time. */
export const overlapKeyOf = (name: string): string => `schedule:${name}`;

/** Parses a 5- or 6-field cron expression in a time zone (UTC by default); throws INVALID_INPUT saying why. */
export function parseCron(expression: string, timezone: string | null): Cron {
  try {
    const cron = new Cron(expression, { paused: true, mode: '5-or-6-parts', timezone: timezone ?? 'UTC' });
    // croner checks the time zone only when it computes a time.
    cron.nextRun(new Date(0));
    return cron;
  } catch (error) {
    throw new QueueError(ERROR_CODES.INVALID_INPUT, `cron "${expression}"${timezone ? ` in time zone "${timezone}"` : ''} is not valid: ${(error as Error).message}`);
  }
}

/** The first tick strictly after `after`; a schedule with no tick left (a past date) is parked ten thousand years on. */
function nextAfter(cron: Cron, after: Date): Date {
  return cron.nextRun(after) ?? new Date(253402300799000);
}

/** The next `n` ticks from `from` (inclusive). */
function runsFrom(cron: Cron, from: Date, n: number): Date[] {
  return cron.nextRuns(n, new Date(from.getTime() - 1));
}

/**
 * The due ticks (next_run_at .. now) that run, per the catch-up policy. Ticks
 * younger than MISSED_AFTER_MS are on time and always run (a leader that
 * sweeps late, or a new leader after a crash, loses nothing); older ones were
 * missed: `skip` drops them, `latest` runs the newest of them unless a tick is
 * on time anyway, `all` runs them all. At most CATCH_UP_LIMIT, the newest.
 */
export function ticksToRun(cron: Cron, from: Date, now: Date, catchUp: CatchUp): Date[] {
  let due = runsFrom(cron, from, CATCH_UP_LIMIT + 1).filter((t) => t <= now);
  if (due.length > CATCH_UP_LIMIT) due = cron.previousRuns(CATCH_UP_LIMIT, new Date(now.getTime() + 1)).filter((t) => t >= from).reverse();
  const onTime = due.filter((t) => now.getTime() - t.getTime() <= MISSED_AFTER_MS);
  const missed = due.filter((t) => now.getTime() - t.getTime() > MISSED_AFTER_MS);
  if (catchUp === 'all') return due;
  if (catchUp === 'latest') return onTime.length > 0 ? onTime : missed.slice(-1);
  return onTime;
}

/** A schedule as the API shows it. */
export function toScheduleView(row: ScheduleRow): ScheduleView {
  const cron = parseCron(row.cron, row.timezone);
  return {
    name: row.name,
    type: row.task_type,
    cron: row.cron,
    timezone: row.timezone,
    payload: row.payload,
    queue: row.queue,
    priority: row.priority,
    maxRetries: row.max_retries,
    timeoutMs: row.timeout_ms,
    catchUp: row.catch_up,
    allowOverlap: row.allow_overlap,
    paused: row.paused,
    source: row.source,
    nextRuns: row.paused ? [] : runsFrom(cron, row.next_run_at, 3),
    lastRunAt: row.last_run_at,
    lastJobId: row.last_job_id,
  };
}

/** A schedule to upsert, from the registry or `schedules.upsert`. */
export interface ScheduleInput {
  name: string;
  type: string;
  cron: string;
  timezone?: string | undefined;
  payload: unknown;
  queue?: string | undefined;
  priority?: number | undefined;
  maxRetries?: number | undefined;
  timeoutMs?: number | undefined;
  catchUp?: CatchUp | undefined;
  allowOverlap?: boolean | undefined;
}

/**
 * Validates and upserts a schedule: cron and time zone parsed, the payload
 * checked against the registry's schema for its type (as an enqueue would be)
 * and stored as the schema's output. Answers the row when it was written.
 */
export async function upsertSchedule(
  deps: { db: Db; registry: JobRegistry | null; maxPayloadBytes: number; now?: (() => Date) | undefined },
  input: ScheduleInput,
  source: 'registry' | 'api',
): Promise<ScheduleRow | undefined> {
  const timezone = input.timezone ?? null;
  const cron = parseCron(input.cron, timezone);
  const { payload } = checkPayload(deps.registry, input.type, input.payload);
  const now = deps.now?.() ?? (await databaseNow(deps.db));
  const write: ScheduleWrite = {
    name: input.name,
    type: input.type,
    cron: input.cron,
    timezone,
    payloadJson: toJsonText(payload, deps.maxPayloadBytes, `payload of schedule "${input.name}"`),
    queue: input.queue ?? null,
    priority: input.priority ?? null,
    maxRetries: input.maxRetries ?? null,
    timeoutMs: input.timeoutMs ?? null,
    catchUp: input.catchUp ?? 'latest',
    allowOverlap: input.allowOverlap ?? true,
    source,
    nextRunAt: nextAfter(cron, now),
  };
  return scheduleUpsert(deps.db, write);
}

/** Every schedule the registry declares, as schedule inputs. */
export function registrySchedules(registry: JobRegistry | null): ScheduleInput[] {
  if (!registry) return [];
  return Object.entries(registry).flatMap(([type, def]) => (def.schedules ?? []).map((s) => ({ ...s, type })));
}

/** What one sweep of the ticker did. */
export interface TickReport {
  /** Jobs made. */
  enqueued: number;
  /** Due ticks not run: dropped by the catch-up policy, or skipped because the previous run was live. */
  skipped: number;
}

/**
 * The type's concurrencyKey for a schedule's payload. A key function that
 * fails leaves the tick's job without a key rather than stopping every
 * schedule of the sweep (the payload itself was checked at upsert).
 */
function tickConcurrencyKey(registry: JobRegistry | null, type: string, payload: unknown): string | null {
  try {
    return typeConcurrencyKey(registry, type, payload);
  } catch {
    return null;
  }
}

/**
 * Produces the jobs of due ticks, inside the caller's transaction (the
 * maintenance leader's, under its advisory lock): locks the due schedules,
 * inserts one job per tick to run (id from name and tick) and advances each
 * schedule past `now`, all in one commit. A crash before the commit leaves
 * nothing; a second leader by accident inserts the same ids, which do nothing.
 */
export async function tickSchedules(db: Db, deps: { registry: JobRegistry | null; now: Date | null }): Promise<TickReport> {
  const now = deps.now ?? (await databaseNow(db));
  const report: TickReport = { enqueued: 0, skipped: 0 };
  for (const row of await scheduleLockDue(db, { now, limit: SCHEDULES_PER_SWEEP })) {
    const cron = parseCron(row.cron, row.timezone);
    const due = runsFrom(cron, row.next_run_at, CATCH_UP_LIMIT + 1).filter((t) => t <= now).length;
    const ticks = ticksToRun(cron, row.next_run_at, now, row.catch_up);
    const def = deps.registry?.[row.task_type];
    const inserted =
      ticks.length === 0
        ? []
        : await scheduleTickInsert(db, {
            ticks: ticks.map((tick) => ({ id: tickJobId(row.name, tick), tick })),
            queue: row.queue ?? def?.queue ?? DEFAULT_QUEUE,
            type: row.task_type,
            payloadJson: JSON.stringify(row.payload),
            priority: row.priority ?? def?.priority ?? 0,
            maxRetries: row.max_retries ?? def?.maxRetries ?? 3,
            uniqueKey: row.allow_overlap ? null : overlapKeyOf(row.name),
            timeoutMs: row.timeout_ms ?? def?.timeoutMs ?? null,
            concurrencyKey: tickConcurrencyKey(deps.registry, row.task_type, row.payload),
          });
    const lastTick = ticks.at(-1);
    await scheduleAdvance(db, {
      name: row.name,
      from: row.next_run_at,
      nextRunAt: nextAfter(cron, now),
      lastRunAt: inserted.length > 0 && lastTick ? lastTick : null,
      lastJobId: inserted.at(-1) ?? null,
    });
    report.enqueued += inserted.length;
    report.skipped += Math.max(due, ticks.length) - inserted.length;
  }
  return report;
}

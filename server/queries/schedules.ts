import type { Db } from '../db/pool.js';

/** A row of `schedules`. */
export interface ScheduleRow {
  name: string;
  task_type: string;
  cron: string;
  timezone: string | null;
  payload: unknown;
  queue: string | null;
  priority: number | null;
  max_retries: number | null;
  timeout_ms: number | null;
  catch_up: 'skip' | 'latest' | 'all';
  allow_overlap: boolean;
  paused: boolean;
  source: 'registry' | 'api';
  next_run_at: Date;
  last_run_at: Date | null;
  last_job_id: string | null;
}

/** What {@link scheduleUpsert} writes; `nextRunAt` is used only when the schedule is new or its cron or time zone changed. */
export interface ScheduleWrite {
  name: string;
  type: string;
  cron: string;
  timezone: string | null;
  payloadJson: string;
  queue: string | null;
  priority: number | null;
  maxRetries: number | null;
  timeoutMs: number | null;
  catchUp: 'skip' | 'latest' | 'all';
  allowOverlap: boolean;
  source: 'registry' | 'api';
  nextRunAt: Date;
}

/**
 * scheduleUpsert: creates or replaces a schedule by name. Its place in time
 * (next_run_at) is kept unless the cron or time zone changed, so a server
 * restarting after downtime upserts its registry schedules without losing the
 * missed ticks its catch-up policy is about. A schedule whose every field is
 * already as given is not written at all (every server upserts at start).
 * Paused stays as it was. Answers the row when it was written.
 */
export async function scheduleUpsert(db: Db, s: ScheduleWrite): Promise<ScheduleRow | undefined> {
  const { rows } = await db.query<ScheduleRow>({
    name: 'scheduleUpsert',
    text: `
INSERT INTO schedules AS s (name, task_type, cron, timezone, payload, queue, priority, max_retries, timeout_ms, catch_up, allow_overlap, source, next_run_at)
VALUES ($1::text, $2::text, $3::text, $4::text, $5::jsonb, $6::text, $7::int, $8::int, $9::int, $10::text, $11::boolean, $12::text, $13::timestamptz)
ON CONFLICT (name) DO UPDATE
SET task_type = EXCLUDED.task_type,
    cron = EXCLUDED.cron,
    timezone = EXCLUDED.timezone,
    payload = EXCLUDED.payload,
    queue = EXCLUDED.queue,
    priority = EXCLUDED.priority,
    max_retries = EXCLUDED.max_retries,
    timeout_ms = EXCLUDED.timeout_ms,
    catch_up = EXCLUDED.catch_up,
    allow_overlap = EXCLUDED.allow_overlap,
    source = EXCLUDED.source,
    next_run_at = CASE
      WHEN (s.cron, s.timezone) IS DISTINCT FROM (EXCLUDED.cron, EXCLUDED.timezone) THEN EXCLUDED.next_run_at
      ELSE s.next_run_at
    END,
    updated_at = now()
WHERE (s.task_type, s.cron, s.timezone, s.payload, s.queue, s.priority, s.max_retries, s.timeout_ms, s.catch_up, s.allow_overlap, s.source)
  IS DISTINCT FROM
      (EXCLUDED.task_type, EXCLUDED.cron, EXCLUDED.timezone, EXCLUDED.payload, EXCLUDED.queue, EXCLUDED.priority, EXCLUDED.max_retries,
       EXCLUDED.timeout_ms, EXCLUDED.catch_up, EXCLUDED.allow_overlap, EXCLUDED.source)
RETURNING s.*`,
    values: [s.name, s.type, s.cron, s.timezone, s.payloadJson, s.queue, s.priority, s.maxRetries, s.timeoutMs, s.catchUp, s.allowOverlap, s.source, s.nextRunAt],
  });
  return rows[0];
}

/** scheduleGet: one schedule by name. */
export async function scheduleGet(db: Db, name: string): Promise<ScheduleRow | undefined> {
  const { rows } = await db.query<ScheduleRow>({ name: 'scheduleGet', text: 'SELECT * FROM schedules WHERE name = $1::text', values: [name] });
  return rows[0];
}

/** scheduleList: every schedule, by name. */
export async function scheduleList(db: Db): Promise<ScheduleRow[]> {
  const { rows } = await db.query<ScheduleRow>({ name: 'scheduleList', text: 'SELECT * FROM schedules ORDER BY name COLLATE "C"' });
  return rows;
}

/** scheduleRemove: deletes a schedule; answers whether one was there. Jobs it made stay. */
export async function scheduleRemove(db: Db, name: string): Promise<boolean> {
  const { rowCount } = await db.query({ name: 'scheduleRemove', text: 'DELETE FROM schedules WHERE name = $1::text', values: [name] });
  return (rowCount ?? 0) > 0;
}

/** schedulePause: stops a schedule's ticks; answers the row, or nothing when there is no such schedule. */
export async function schedulePause(db: Db, name: string): Promise<ScheduleRow | undefined> {
  const { rows } = await db.query<ScheduleRow>({
    name: 'schedulePause',
    text: `
UPDATE schedules
SET paused = true,
    updated_at = now()
WHERE name = $1::text
RETURNING *`,
    values: [name],
  });
  return rows[0];
}

/**
 * scheduleResume: a paused schedule runs again from `nextRunAt` (its first
 * tick after now: ticks due while paused are not caught up). Guarded by the
 * cron and time zone `nextRunAt` was computed from; a schedule that was not
 * paused keeps its next_run_at. Nothing answered: no such schedule, or it
 * changed in between (the caller reads it again).
 */
export async function scheduleResume(db: Db, params: { name: string; cron: string; timezone: string | null; nextRunAt: Date }): Promise<ScheduleRow | undefined> {
  const { rows } = await db.query<ScheduleRow>({
    name: 'scheduleResume',
    text: `
UPDATE schedules
SET paused = false,
    next_run_at = CASE WHEN paused THEN $4::timestamptz ELSE next_run_at END,
    updated_at = now()
WHERE name = $1::text
  AND cron = $2::text
  AND timezone IS NOT DISTINCT FROM $3::text
RETURNING *`,
    values: [params.name, params.cron, params.timezone, params.nextRunAt],
  });
  return rows[0];
}

/**
 * scheduleLockDue: running schedules whose next tick is due at `now`, locked
 * for this transaction (SKIP LOCKED: an upsert holding one is not waited for;
 * the schedule is due again at the next sweep).
 */
export async function scheduleLockDue(db: Db, params: { now: Date; limit: number }): Promise<ScheduleRow[]> {
  const { rows } = await db.query<ScheduleRow>({
    name: 'scheduleLockDue',
    text: `
SELECT *
FROM schedules
WHERE NOT paused
  AND next_run_at <= $1::timestamptz
ORDER BY next_run_at
LIMIT $2::int
FOR UPDATE SKIP LOCKED`,
    values: [params.now, params.limit],
  });
  return rows;
}

/** One tick's job. */
export interface TickJob {
  id: string;
  tick: Date;
}

/**
 * scheduleTickInsert: the jobs of a schedule's ticks, due at their tick times.
 * ON CONFLICT DO NOTHING on every unique index: a tick whose id (derived from
 * schedule and tick) exists is already made, by this or another leader; with
 * `uniqueKey` (allowOverlap false) a tick is skipped while a run of the
 * schedule is live. NOTIFY once per queue, as skipq_enqueue does. Answers the
 * ids it inserted.
 */
export async function scheduleTickInsert(
  db: Db,
  p: {
    ticks: readonly TickJob[];
    queue: string;
    type: string;
    payloadJson: string;
    priority: number;
    maxRetries: number;
    uniqueKey: string | null;
    timeoutMs: number | null;
    concurrencyKey: string | null;
  },
): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>({
    name: 'scheduleTickInsert',
    text: `
WITH inserted AS (
  INSERT INTO task_queue AS t (id, queue, task_type, payload, priority, scheduled_for, max_retries, unique_key, timeout_ms, concurrency_key)
  SELECT i.id, $3::text, $4::text, $5::jsonb, $6::int, i.tick, $7::int, $8::text, $9::int, $10::text
  FROM unnest($1::text[], $2::timestamptz[]) AS i(id, tick)
  ORDER BY i.tick
  ON CONFLICT DO NOTHING
  RETURNING t.id, t.queue
),
woken AS (
  SELECT count(pg_notify('skipq_jobs', q.queue)) AS n
  FROM (SELECT DISTINCT inserted.queue FROM inserted) AS q
)
SELECT inserted.id
FROM inserted, woken`,
    values: [p.ticks.map((t) => t.id), p.ticks.map((t) => t.tick), p.queue, p.type, p.payloadJson, p.priority, p.maxRetries, p.uniqueKey, p.timeoutMs, p.concurrencyKey],
  });
  return rows.map((r) => r.id);
}

/**
 * scheduleAdvance: moves a schedule past the ticks just handled. Guarded by
 * the next_run_at it was read with, so a tick is advanced past once.
 */
export async function scheduleAdvance(db: Db, p: { name: string; from: Date; nextRunAt: Date; lastRunAt: Date | null; lastJobId: string | null }): Promise<boolean> {
  const { rowCount } = await db.query({
    name: 'scheduleAdvance',
    text: `
UPDATE schedules
SET next_run_at = $3::timestamptz,
    last_run_at = coalesce($4::timestamptz, last_run_at),
    last_job_id = coalesce($5::text, last_job_id)
WHERE name = $1::text
  AND next_run_at = $2::timestamptz`,
    values: [p.name, p.from, p.nextRunAt, p.lastRunAt, p.lastJobId],
  });
  return (rowCount ?? 0) > 0;
}

/** The database's clock as the move functions read it (skipq_now(): the skipq.now setting, else now()). */
export async function databaseNow(db: Db): Promise<Date> {
  const { rows } = await db.query<{ now: Date }>({ name: 'databaseNow', text: 'SELECT skipq_now() AS now' });
  return (rows[0] as { now: Date }).now;
}

/**
 * throttleWindowCleanup: deletes windows that ended over an hour ago, in a
 * bounded batch. A key without a row has no window, which is what an ended
 * window means too, so this changes no answer; it keeps the table small.
 */
export async function throttleWindowCleanup(db: Db, params: { now: Date | null; limit: number }): Promise<number> {
  const { rowCount } = await db.query({
    name: 'throttleWindowCleanup',
    text: `
DELETE FROM throttle_windows
WHERE (queue, task_type, unique_key) IN (
  SELECT w.queue, w.task_type, w.unique_key
  FROM throttle_windows AS w
  WHERE w.ends_at < coalesce($1::timestamptz, skipq_now()) - interval '1 hour'
  LIMIT $2::int
)`,
    values: [params.now, params.limit],
  });
  return rowCount ?? 0;
}

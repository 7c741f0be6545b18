import type { Db } from '../db/pool.js';

// The statements of live events (migration 20261201000600_events). An event's
// key is (tx, seq); a cursor is a key as two decimal strings.

/** A position in the event log: after the event with this key. */
export interface EventCursor {
  tx: string;
  seq: string;
}

/** One logged event, as read. */
export interface EventRow {
  tx: string;
  seq: string;
  kind: string;
  job_id: string | null;
  queue: string | null;
  task_type: string | null;
  status: string | null;
  attempt: number | null;
  progress: unknown;
  error: string | null;
  at: string | null;
}

/** Filters of a read; null: any. */
export interface EventFilter {
  ids: readonly string[] | null;
  queues: readonly string[] | null;
  types: readonly string[] | null;
}

/** What {@link eventsRead} answers. */
export interface EventPage {
  /** The matching events past the cursor, in key order (gap markers always match). */
  events: EventRow[];
  /** The last key the read looked at (matching or not): the next read starts after it. Null when it looked at none. */
  last: EventCursor | null;
  /** How many events the read looked at (the limit: there may be more). */
  scanned: number;
  /** Some events past the cursor are not yet deliverable (a writer of the queue that started before them is still open): read again soon. */
  held: boolean;
}

/**
 * eventsListen: this server holds subscribers until now + liveMs (refreshed
 * while it does). Answers the key of the gap marker written when no server
 * was listening before, else null.
 */
export async function eventsListen(db: Db, params: { serverId: string; liveMs: number }): Promise<EventCursor | null> {
  const { rows } = await db.query<{ gap_tx: string; gap_seq: string }>({
    name: 'eventsListen',
    text: 'SELECT l.gap_tx, l.gap_seq::text AS gap_seq FROM skipq_events_listen($1::text, $2::int) AS l',
    values: [params.serverId, params.liveMs],
  });
  const row = rows[0];
  return row ? { tx: row.gap_tx, seq: row.gap_seq } : null;
}

/**
 * eventsStart: where a new subscription starts: every transaction that
 * starts from here on is logged (the caller's listener row is committed), so
 * the cursor is the snapshot's xmax; transactions still open are not
 * promised to the new subscriber. When logging has just (re)started, the
 * cursor is past its 'gap' marker: the marker is keyed at least at the xmax
 * its listen saw, which can equal this snapshot's (a higher xid committed
 * during that listen), and a fresh subscriber must not read it as events it
 * lost (migration 20261201001400_events_one_start). Markers keyed below this
 * xmax precede the cursor anyway; the pkey range from xmax up is only what is
 * being written now.
 */
export async function eventsStart(db: Db): Promise<EventCursor> {
  const { rows } = await db.query<EventCursor>({
    name: 'eventsStart',
    text: `
WITH s AS (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax)
SELECT coalesce(g.tx, s.xmax)::text AS tx, coalesce(g.seq, 0)::text AS seq
FROM s
LEFT JOIN LATERAL (
  SELECT e.tx, e.seq FROM job_events AS e
  WHERE e.tx >= s.xmax AND e.kind = 'gap'
  ORDER BY e.tx DESC, e.seq DESC
  LIMIT 1
) AS g ON true`,
  });
  return rows[0] ?? { tx: '0', seq: '0' };
}

/** eventsPrunedThrough: the last key pruning deleted; a cursor below it may have lost events. */
export async function eventsPrunedThrough(db: Db): Promise<EventCursor> {
  const { rows } = await db.query<{ tx: string; seq: string }>({
    name: 'eventsPrunedThrough',
    text: 'SELECT s.pruned_tx::text AS tx, s.pruned_seq::text AS seq FROM job_event_state AS s WHERE s.id = 1',
  });
  return rows[0] ?? { tx: '0', seq: '0' };
}

/**
 * eventsHorizon: how far a read that starts after this may deliver (see
 * skipq_events_horizon): no event keyed below it can still commit.
 */
export async function eventsHorizon(db: Db): Promise<string> {
  const { rows } = await db.query<{ horizon: string }>({
    name: 'eventsHorizon',
    text: 'SELECT skipq_events_horizon()::text AS horizon',
  });
  return rows[0]?.horizon ?? '0';
}

/**
 * eventsRead: up to `limit` events past the cursor and keyed below
 * `horizon` (from {@link eventsHorizon}, called before this statement), in
 * key order, of which those matching the filter are answered. Walks the
 * primary key from the cursor; `last` lets the next read skip what did not match.
 */
export async function eventsRead(db: Db, params: { after: EventCursor; horizon: string; filter: EventFilter; limit: number }): Promise<EventPage> {
  const { rows } = await db.query<{ events: EventRow[] | null; last_tx: string | null; last_seq: string | null; scanned: number; held: boolean }>({
    name: 'eventsRead',
    text: `
WITH scanned AS (
  SELECT e.tx, e.seq, e.kind, e.job_id, e.queue, e.task_type, e.status, e.attempt, e.progress, e.error, e.at
  FROM job_events AS e
  WHERE (e.tx, e.seq) > ($1::bigint, $2::bigint)
    AND e.tx < $7::bigint
  ORDER BY e.tx, e.seq
  LIMIT $6::int
),
matching AS (
  SELECT s.*
  FROM scanned AS s
  WHERE s.kind = 'gap'
     OR (($3::text[] IS NULL OR s.job_id = ANY ($3::text[]))
         AND ($4::text[] IS NULL OR s.queue = ANY ($4::text[]))
         AND ($5::text[] IS NULL OR s.task_type = ANY ($5::text[])))
),
tail AS (
  SELECT s.tx, s.seq FROM scanned AS s ORDER BY s.tx DESC, s.seq DESC LIMIT 1
)
SELECT (SELECT json_agg(json_build_object(
          'tx', m.tx::text, 'seq', m.seq::text, 'kind', m.kind, 'job_id', m.job_id, 'queue', m.queue,
          'task_type', m.task_type, 'status', m.status, 'attempt', m.attempt, 'progress', m.progress,
          'error', m.error, 'at', m.at) ORDER BY m.tx, m.seq)
        FROM matching AS m) AS events,
       (SELECT t.tx::text FROM tail AS t) AS last_tx,
       (SELECT t.seq::text FROM tail AS t) AS last_seq,
       (SELECT count(*)::int FROM scanned) AS scanned,
       EXISTS (SELECT 1 FROM job_events AS e WHERE e.tx >= $7::bigint AND (e.tx, e.seq) > ($1::bigint, $2::bigint)) AS held`,
    values: [params.after.tx, params.after.seq, params.filter.ids, params.filter.queues, params.filter.types, params.limit, params.horizon],
  });
  const row = rows[0];
  return {
    events: row?.events ?? [],
    last: row?.last_tx && row.last_seq ? { tx: row.last_tx, seq: row.last_seq } : null,
    scanned: row?.scanned ?? 0,
    held: row?.held ?? false,
  };
}

/** eventsPrune: deletes up to `limit` of the oldest events logged more than `keepMs` ago. Answers how many. */
export async function eventsPrune(db: Db, params: { keepMs: number; limit: number }): Promise<number> {
  const { rows } = await db.query<{ deleted: number }>({
    name: 'eventsPrune',
    text: 'SELECT skipq_events_prune($1::bigint, $2::int) AS deleted',
    values: [params.keepMs, params.limit],
  });
  return rows[0]?.deleted ?? 0;
}

-- Live events (events.jobs): a log of job changes that exists only while
-- somebody subscribes.
--
-- Who writes: two statement-level triggers on task_queue observe every move
-- from the outside (the server's moves, the rescuer, the SQL API from psql or
-- Go alike), so no move function knows about events.
--
-- What it costs when nobody subscribes: each INSERT or UPDATE statement on
-- task_queue runs one PL/pgSQL call that asks the tiny job_event_listeners
-- table whether any server holds a subscriber, and returns; the transition
-- tables PostgreSQL keeps for the statement are copies of the rows in memory.
-- No row is written, no NOTIFY sent. A row-level trigger would have paid a
-- PL/pgSQL call per job instead of per batch (see server/events.ts for the
-- micro-benchmark that decided it).
--
-- Ordering and completeness: an event's key is (tx, seq). tx is at least the
-- writing transaction's xid, and at least the key of the job's previous event
-- (so one job's events are in the order they happened even when a batch that
-- took its xid early moves a row after a later transaction did). A reader
-- delivers only events with tx below the xmin of its snapshot: every
-- transaction that could still add an event below that bound has ended, so
-- reading in key order past a cursor never skips an event that commits later.
-- A long-running transaction anywhere in the cluster delays events (holds
-- xmin back); it never loses them.
--
-- Resume window: a server refreshes its listener row while it has
-- subscribers; the row lives on for the resume window after the last one
-- left, so events are still logged for a subscriber that reconnects with its
-- lastEventId. When logging starts after a time with no listener, a 'gap'
-- marker is logged: a reader resuming from before it, or reading across it,
-- is told that events may be missing. Pruning (bounded batches) deletes events
-- past the retention and records how far it deleted in job_event_state, so a
-- cursor older than that is refused rather than silently short.

CREATE TABLE "job_events" (
  "tx" xid8 NOT NULL,
  "seq" BIGINT GENERATED ALWAYS AS IDENTITY,
  -- enqueued, rescheduled, claimed, started, progress, completed, failed,
  -- retry_scheduled, rescued, released, cancelled, retried; or 'gap'.
  "kind" TEXT NOT NULL,
  -- The job's id, in the collation of task_queue.id (so lookups by it use the index).
  "job_id" TEXT COLLATE "C",
  "queue" TEXT,
  "task_type" TEXT,
  "status" TEXT,
  "attempt" INTEGER,
  "progress" JSONB,
  "error" TEXT,
  -- The job's own time of the change (its updated_at: the movers' clock).
  "at" TIMESTAMPTZ(6),
  -- The database's time of logging: what retention counts from.
  "logged_at" TIMESTAMPTZ(6) NOT NULL DEFAULT now(),
  CONSTRAINT "job_events_pkey" PRIMARY KEY ("tx", "seq"),
  CONSTRAINT "job_events_kind_check" CHECK ("kind" = 'gap' OR "job_id" IS NOT NULL)
);
-- The previous event of a job (ordering) and subscriptions by job id.
CREATE INDEX "job_events_job_idx" ON "job_events" ("job_id", "tx");

-- One row per server that holds (or recently held) a subscriber.
CREATE TABLE "job_event_listeners" (
  "server_id" TEXT NOT NULL,
  "live_until" TIMESTAMPTZ(6) NOT NULL,
  CONSTRAINT "job_event_listeners_pkey" PRIMARY KEY ("server_id")
);

-- How far pruning deleted: cursors at or below it may have lost events.
CREATE TABLE "job_event_state" (
  "id" INTEGER NOT NULL DEFAULT 1,
  "pruned_tx" xid8 NOT NULL DEFAULT '0',
  "pruned_seq" BIGINT NOT NULL DEFAULT 0,
  CONSTRAINT "job_event_state_pkey" PRIMARY KEY ("id"),
  CONSTRAINT "job_event_state_one_row" CHECK ("id" = 1)
);
INSERT INTO "job_event_state" ("id") VALUES (1);

-- Whether some server holds a subscriber (or held one within its resume window).
CREATE FUNCTION skipq_events_live() RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM job_event_listeners WHERE live_until > now())
$$;

-- The trigger bodies. No ORDER BY and no sequential scan anywhere: they run
-- inside move functions that turn sorts, bitmap and sequential scans off for
-- their own statements, and a disabled sort here made the planner price this
-- small insert at 10^10 and JIT-compile it (700 ms a batch). The previous
-- event of a job is read through job_events_job_idx, ordered on both its
-- columns so no plan walks the primary key instead. Each job appears once
-- per statement, so the order of seq within a statement does not matter.
CREATE FUNCTION skipq_log_enqueues() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM job_event_listeners WHERE live_until > now()) THEN
    RETURN NULL;
  END IF;
  INSERT INTO job_events (tx, kind, job_id, queue, task_type, status, attempt, progress, error, at)
  SELECT greatest(pg_current_xact_id(), p.tx),
         'enqueued', n.id, n.queue, n.task_type, n.status, n.attempt, NULL, NULL, n.created_at
  FROM new_rows AS n
  LEFT JOIN LATERAL (
    SELECT e.tx FROM job_events AS e WHERE e.job_id = n.id ORDER BY e.job_id DESC, e.tx DESC LIMIT 1
  ) AS p ON true;
  IF FOUND THEN
    PERFORM pg_notify('skipq_events', '');
  END IF;
  RETURN NULL;
END
$$;

CREATE FUNCTION skipq_log_moves() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM job_event_listeners WHERE live_until > now()) THEN
    RETURN NULL;
  END IF;
  INSERT INTO job_events (tx, kind, job_id, queue, task_type, status, attempt, progress, error, at)
  SELECT greatest(pg_current_xact_id(), p.tx),
         c.kind, n.id, n.queue, n.task_type, n.status, n.attempt,
         CASE WHEN c.kind = 'progress' THEN n.progress END,
         CASE WHEN c.kind IN ('failed', 'retry_scheduled', 'rescued') THEN n.error_message END,
         n.updated_at
  FROM new_rows AS n
  JOIN old_rows AS o ON o.id = n.id
  CROSS JOIN LATERAL (
    SELECT CASE
      WHEN n.status = o.status THEN
        CASE
          WHEN n.progress IS DISTINCT FROM o.progress THEN 'progress'
          WHEN n.status = 'pending' AND n.scheduled_for IS DISTINCT FROM o.scheduled_for THEN 'rescheduled'
        END
      WHEN n.status = 'claimed' THEN 'claimed'
      WHEN n.status = 'processing' THEN 'started'
      WHEN n.status = 'completed' THEN 'completed'
      WHEN n.status = 'failed' THEN 'failed'
      WHEN n.status = 'cancelled' THEN 'cancelled'
      WHEN n.status = 'pending' AND o.status IN ('failed', 'cancelled') THEN 'retried'
      WHEN n.status = 'pending' AND n.ended_by = 'rescue' THEN 'rescued'
      WHEN n.status = 'pending' AND n.ended_by = 'release' THEN 'released'
      WHEN n.status = 'pending' THEN 'retry_scheduled'
      -- A status added later (flows) is its own kind.
      ELSE n.status
    END AS kind
  ) AS c
  LEFT JOIN LATERAL (
    SELECT e.tx FROM job_events AS e WHERE e.job_id = n.id ORDER BY e.job_id DESC, e.tx DESC LIMIT 1
  ) AS p ON true
  WHERE c.kind IS NOT NULL;
  IF FOUND THEN
    PERFORM pg_notify('skipq_events', '');
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER "task_queue_log_enqueues"
AFTER INSERT ON "task_queue"
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT
EXECUTE FUNCTION skipq_log_enqueues();

CREATE TRIGGER "task_queue_log_moves"
AFTER UPDATE ON "task_queue"
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT
EXECUTE FUNCTION skipq_log_moves();

-- A server announces it holds subscribers until now + p_live_ms. When no
-- server was live, logging starts now: a 'gap' marker says so. Answers the
-- marker's key (NULL when logging was already on).
CREATE FUNCTION skipq_events_listen(p_server_id text, p_live_ms integer)
RETURNS TABLE (gap_tx text, gap_seq bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_was_live boolean := skipq_events_live();
BEGIN
  INSERT INTO job_event_listeners AS l (server_id, live_until)
  VALUES (p_server_id, now() + p_live_ms * interval '1 millisecond')
  ON CONFLICT (server_id) DO UPDATE SET live_until = greatest(l.live_until, EXCLUDED.live_until);
  IF NOT v_was_live THEN
    RETURN QUERY
    INSERT INTO job_events (tx, kind) VALUES (pg_current_xact_id(), 'gap')
    RETURNING job_events.tx::text, job_events.seq;
  END IF;
  -- Rows of servers long gone.
  DELETE FROM job_event_listeners WHERE live_until < now() - interval '1 day';
END
$$;

-- Deletes up to p_limit events logged before now - p_keep_ms, oldest key
-- first, stopping at the first younger one (so what is left after a cursor is
-- whole), and moves job_event_state past them. Answers how many it deleted.
CREATE FUNCTION skipq_events_prune(p_keep_ms bigint, p_limit integer)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_tx xid8;
  v_seq bigint;
  v_deleted integer;
BEGIN
  SELECT d.tx, d.seq INTO v_tx, v_seq
  FROM (
    SELECT e.tx, e.seq, bool_and(e.logged_at < now() - p_keep_ms * interval '1 millisecond') OVER (ORDER BY e.tx, e.seq) AS due
    FROM (SELECT tx, seq, logged_at FROM job_events ORDER BY tx, seq LIMIT greatest(p_limit, 0)) AS e
  ) AS d
  WHERE d.due
  ORDER BY d.tx DESC, d.seq DESC
  LIMIT 1;
  IF v_tx IS NULL THEN
    RETURN 0;
  END IF;
  UPDATE job_event_state AS s
  SET pruned_tx = v_tx, pruned_seq = v_seq
  WHERE s.id = 1 AND (s.pruned_tx, s.pruned_seq) < (v_tx, v_seq);
  DELETE FROM job_events AS e WHERE (e.tx, e.seq) <= (v_tx, v_seq);
  GET DIAGNOSTICS v_deleted = ROW_COUNT;
  RETURN v_deleted;
END
$$;

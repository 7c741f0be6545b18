-- Live events (events.jobs): a log of job changes that exists only while
-- somebody subscribes.
--
-- Who writes: two statement-level triggers on task_queue observe every move
-- from the outside (the server's moves, the rescuer, the SQL API from psql or
-- Go alike), so no move function knows about events.
--
-- What it costs when nobody subscribes: nothing. The triggers exist only
-- while some server has a live listener row (skipq_events_arm / _disarm
-- below). While they exist, each INSERT or UPDATE statement on task_queue
-- runs one PL/pgSQL call that asks the tiny job_event_listeners table whether
-- any server holds a subscriber. A row-level trigger would have paid a
-- PL/pgSQL call per job instead of per batch (server/events.ts has the
-- figures of bench/eventsCost.ts that decided it).
--
-- Ordering and completeness: an event's key is (tx, seq), tx from
-- skipq_event_key() (never below the writer's xid nor the snapshot's xmax, so
-- one job's events are keyed in the order they happened). A reader delivers
-- only events keyed below skipq_events_horizon(), read by a statement that
-- starts after it: no event below that bound can commit later, so reading in
-- key order past a cursor never skips one. A transaction that writes
-- task_queue and stays open (an app's own transaction around an enqueue)
-- delays events until it ends; it never loses them.
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
  -- An xid8 as bigint (64 bits, epoch included), so Prisma can describe it.
  "tx" BIGINT NOT NULL,
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

-- One row per server that holds (or recently held) a subscriber.
CREATE TABLE "job_event_listeners" (
  "server_id" TEXT NOT NULL,
  "live_until" TIMESTAMPTZ(6) NOT NULL,
  CONSTRAINT "job_event_listeners_pkey" PRIMARY KEY ("server_id")
);

-- How far pruning deleted: cursors at or below it may have lost events.
CREATE TABLE "job_event_state" (
  "id" INTEGER NOT NULL DEFAULT 1,
  "pruned_tx" BIGINT NOT NULL DEFAULT 0,
  "pruned_seq" BIGINT NOT NULL DEFAULT 0,
  CONSTRAINT "job_event_state_pkey" PRIMARY KEY ("id"),
  CONSTRAINT "job_event_state_one_row" CHECK ("id" = 1)
);
INSERT INTO "job_event_state" ("id") VALUES (1);

-- An event's key: the writing transaction's xid, or the snapshot's xmax
-- when that is higher (xids as bigint). Both never go down, so a later change
-- of a job (which waited for the earlier one's row lock) gets a key at least
-- as high, and an event logged after a reader's snapshot is keyed at or past
-- that snapshot's xmax (see skipq_events_horizon).
CREATE FUNCTION skipq_event_key() RETURNS bigint
LANGUAGE sql VOLATILE AS $$
  SELECT greatest(pg_current_xact_id(), pg_snapshot_xmax(pg_current_snapshot()))::text::bigint
$$;

-- Whether some server holds a subscriber (or held one within its resume window).
CREATE FUNCTION skipq_events_live() RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM job_event_listeners WHERE live_until > now())
$$;

-- The trigger bodies. No ORDER BY and no sequential scan anywhere: they run
-- inside move functions that turn sorts, bitmap and sequential scans off for
-- their own statements, and a disabled sort here made the planner price this
-- small insert at 10^10 and JIT-compile it (700 ms a batch). Each job
-- appears once per statement, so the order of seq within a statement does
-- not matter.
CREATE FUNCTION skipq_log_enqueues() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM job_event_listeners WHERE live_until > now()) THEN
    RETURN NULL;
  END IF;
  INSERT INTO job_events (tx, kind, job_id, queue, task_type, status, attempt, progress, error, at)
  SELECT skipq_event_key(),
         'enqueued', n.id, n.queue, n.task_type, n.status, n.attempt, NULL, NULL, n.created_at
  FROM new_rows AS n;
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
  SELECT skipq_event_key(),
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
  WHERE c.kind IS NOT NULL;
  IF FOUND THEN
    PERFORM pg_notify('skipq_events', '');
  END IF;
  RETURN NULL;
END
$$;

-- The two triggers exist only while some server listens. A trigger with
-- transition tables makes PostgreSQL copy the old and new rows of every
-- UPDATE and INSERT of task_queue, even when its body returns at once, and
-- even while disabled: measured with `npm run bench` W3 on this machine
-- (10,000 jobs, medians of 3, one sitting): 10,717-12,915 jobs/s with the
-- idle triggers present against 13,178 without them. So the first listener
-- creates them (skipq_events_arm, from skipq_events_listen) and pruning drops
-- them once no listener is live any more (skipq_events_disarm, from
-- skipq_events_prune): a queue nobody watches pays nothing.
--
-- Both run under one advisory lock: a listener registering while the last
-- one's triggers are being dropped either waits and then creates them, or
-- commits first and is then seen live by the dropper, which keeps them.
-- CREATE TRIGGER waits for the statements writing task_queue to end, so
-- every statement after it is logged. SECURITY DEFINER: a server may run as a
-- role that does not own task_queue.
CREATE FUNCTION skipq_events_arm() RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('skipq_events_triggers'));
  IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'task_queue'::regclass AND tgname = 'task_queue_log_moves') THEN
    RETURN false;
  END IF;
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
  RETURN true;
END
$$;

-- Drops the triggers when they exist and no listener is live; answers whether
-- it dropped them. The common case (no triggers) is one catalog lookup.
CREATE FUNCTION skipq_events_disarm() RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'task_queue'::regclass AND tgname IN ('task_queue_log_moves', 'task_queue_log_enqueues')) THEN
    RETURN false;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('skipq_events_triggers'));
  IF EXISTS (SELECT 1 FROM job_event_listeners WHERE live_until > now()) THEN
    RETURN false;
  END IF;
  DROP TRIGGER IF EXISTS "task_queue_log_enqueues" ON "task_queue";
  DROP TRIGGER IF EXISTS "task_queue_log_moves" ON "task_queue";
  RETURN true;
END
$$;

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
  PERFORM skipq_events_arm();
  IF NOT v_was_live THEN
    RETURN QUERY
    INSERT INTO job_events (tx, kind) VALUES (skipq_event_key(), 'gap')
    RETURNING job_events.tx::text, job_events.seq;
  END IF;
  -- Rows of servers long gone.
  DELETE FROM job_event_listeners WHERE live_until < now() - interval '1 day';
END
$$;

-- How far a reader may deliver: every event with a key below the answer that
-- will ever commit is visible to a statement that starts after this returns.
-- Start from this snapshot's xmax; each transaction still open at the
-- snapshot (xip) holds the horizon at its xid when it writes task_queue or
-- job_events in this database (it may commit events keyed from its xid) or
-- when it ended meanwhile (it may have). An open transaction that writes
-- neither yet can only key its events at or past this xmax later. So only
-- writers of the queue hold events back, not every long transaction of the
-- cluster (the snapshot's xmin would). Locks are read before the status:
-- a writer holds its locks until it ends.
CREATE FUNCTION skipq_events_horizon() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_snap pg_snapshot := pg_current_snapshot();
  v_horizon bigint := pg_snapshot_xmax(v_snap)::text::bigint;
  v_xip bigint[];
  v_writers bigint[];
BEGIN
  SELECT array_agg(x::text::bigint) INTO v_xip FROM pg_snapshot_xip(v_snap) AS x;
  IF v_xip IS NULL THEN
    RETURN v_horizon;
  END IF;
  -- pg_locks names 32-bit xids.
  SELECT array_agg(t.transactionid::text::bigint) INTO v_writers
  FROM pg_locks AS r
  JOIN pg_locks AS t ON t.pid = r.pid AND t.locktype = 'transactionid' AND t.mode = 'ExclusiveLock'
  WHERE r.locktype = 'relation'
    AND r.database = (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database())
    AND r.relation IN ('task_queue'::regclass, 'job_events'::regclass)
    AND r.mode = 'RowExclusiveLock'
    AND r.granted;
  SELECT least(v_horizon, min(x)) INTO v_horizon
  FROM unnest(v_xip) AS x
  WHERE x % 4294967296 = ANY (coalesce(v_writers, '{}'))
     OR pg_xact_status(x::text::xid8) IS DISTINCT FROM 'in progress';
  RETURN v_horizon;
END
$$;

-- Deletes up to p_limit events logged before now - p_keep_ms, oldest key
-- first, stopping at the first younger one (so what is left after a cursor is
-- whole), and moves job_event_state past them. Answers how many it deleted.
CREATE FUNCTION skipq_events_prune(p_keep_ms bigint, p_limit integer)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_tx bigint;
  v_seq bigint;
  v_deleted integer;
BEGIN
  PERFORM skipq_events_disarm();
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

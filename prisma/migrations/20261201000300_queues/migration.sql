-- Queues as things: pause, a concurrency limit, a rate limit and per-key
-- concurrency, all decided inside the one claim function (skipq_claim).
--
-- Unused policy costs nothing: a claim first asks the tiny queues table
-- whether any queue in its scope has a policy; when none has, it runs exactly
-- the statement it ran before this migration.
--
-- Counters a limited claim must read live in small rows (queues.held,
-- queue_keys.held, the rate window in queues), never counted by scanning
-- task_queue. They go up in the claim's own transaction. They go down through
-- an append-only ledger (queue_releases): a held job that was counted and
-- leaves claimed/processing (complete, fail, rescue, release, cancel, the SQL
-- API, a delete) adds one row there from a trigger, and the next limited
-- claim of that queue folds the ledger into the counters while it holds the
-- queue's row lock.
--
-- Why a ledger and not `UPDATE queues SET held = held - 1` in the trigger:
-- the move functions lock their jobs in id order; a trigger that also took
-- the queue's (or key's) row lock in the middle of that walk would make two
-- statements over overlapping jobs lock rows in different orders, and could
-- deadlock (test/deadlock.test.ts runs exactly such statements). An INSERT
-- waits for no row lock, so the moves keep their one lock order, and only
-- claims take the queue row lock (claims never wait for job rows: SKIP LOCKED).

CREATE TABLE "queues" (
  "name" TEXT NOT NULL,
  "paused" BOOLEAN NOT NULL DEFAULT false,
  "concurrency" INTEGER,
  "rate_max" INTEGER,
  "rate_period_ms" INTEGER,
  "key_concurrency" INTEGER,
  "held" INTEGER NOT NULL DEFAULT 0,
  "rate_window_start" TIMESTAMPTZ(6),
  "rate_window_count" INTEGER NOT NULL DEFAULT 0,
  "key_cursor" TEXT,
  "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "updated_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT "queues_pkey" PRIMARY KEY ("name")
);
ALTER TABLE "queues" ADD CONSTRAINT "queues_concurrency_check" CHECK ("concurrency" >= 1);
ALTER TABLE "queues" ADD CONSTRAINT "queues_key_concurrency_check" CHECK ("key_concurrency" >= 1);
ALTER TABLE "queues" ADD CONSTRAINT "queues_rate_check"
  CHECK (("rate_max" IS NULL) = ("rate_period_ms" IS NULL) AND "rate_max" >= 1 AND "rate_period_ms" >= 1);
-- Updated on every limited claim: keep those updates HOT.
ALTER TABLE "queues" SET (fillfactor = 50);

-- Held jobs per (queue, concurrency key), for queues with key_concurrency.
CREATE TABLE "queue_keys" (
  "queue" TEXT NOT NULL,
  "concurrency_key" TEXT NOT NULL,
  "held" INTEGER NOT NULL DEFAULT 0,
  CONSTRAINT "queue_keys_pkey" PRIMARY KEY ("queue", "concurrency_key")
);
ALTER TABLE "queue_keys" SET (fillfactor = 50);

-- Counted held jobs that left held since the last fold (see above).
CREATE TABLE "queue_releases" (
  "id" BIGSERIAL NOT NULL,
  "queue" TEXT NOT NULL,
  "concurrency_key" TEXT,
  CONSTRAINT "queue_releases_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "queue_releases_queue_idx" ON "queue_releases" ("queue");

-- concurrency_key: the job's lane within its queue (written at enqueue from
-- the caller's concurrencyKey or the type's concurrencyKey(payload)).
-- counted: this held job is counted in queues.held (and queue_keys.held);
-- set by a limited claim, cleared by the trigger when the job leaves held.
ALTER TABLE "task_queue" ADD COLUMN "concurrency_key" TEXT;
ALTER TABLE "task_queue" ADD COLUMN "counted" BOOLEAN NOT NULL DEFAULT false;


CREATE FUNCTION skipq_count_release() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO queue_releases (queue, concurrency_key) VALUES (OLD.queue, OLD.concurrency_key);
  IF TG_OP = 'UPDATE' THEN
    NEW.counted := false;
    RETURN NEW;
  END IF;
  RETURN OLD;
END
$$;

-- The WHEN is evaluated without calling the function: a job that was never
-- counted (every job of a queue without limits) pays one boolean test.
CREATE TRIGGER "task_queue_release_counted"
BEFORE UPDATE OF "status" ON "task_queue"
FOR EACH ROW
WHEN (OLD.counted AND NEW.status NOT IN ('claimed', 'processing'))
EXECUTE FUNCTION skipq_count_release();

CREATE TRIGGER "task_queue_delete_counted"
BEFORE DELETE ON "task_queue"
FOR EACH ROW
WHEN (OLD.counted AND OLD.status IN ('claimed', 'processing'))
EXECUTE FUNCTION skipq_count_release();

-- Folds a queue's ledger into its counters. The caller holds the queue's row
-- lock, so no other fold of that queue runs meanwhile. Answers how many held
-- jobs of the queue were released.
CREATE FUNCTION skipq_fold_releases(p_queue text) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_freed integer;
BEGIN
  WITH gone AS (
    DELETE FROM queue_releases AS r
    WHERE r.queue = p_queue
    RETURNING r.concurrency_key
  ),
  by_key AS (
    SELECT g.concurrency_key, count(*)::integer AS n
    FROM gone AS g
    WHERE g.concurrency_key IS NOT NULL
    GROUP BY g.concurrency_key
  ),
  keyed AS (
    UPDATE queue_keys AS k
    SET held = greatest(k.held - b.n, 0)
    FROM by_key AS b
    WHERE k.queue = p_queue
      AND k.concurrency_key = b.concurrency_key
    RETURNING k.concurrency_key
  )
  SELECT count(*)::integer INTO v_freed FROM gone;
  UPDATE queues AS q SET held = greatest(q.held - v_freed, 0) WHERE q.name = p_queue AND v_freed > 0;
  RETURN v_freed;
END
$$;

-- Makes a queue's counters true again, from task_queue: every held job of the
-- queue becomes counted, the ledger is emptied. configure calls it (under the
-- queue's row lock) whenever it sets a concurrency or key limit; when both are
-- cleared it uncounts the queue's jobs instead, so nothing feeds a ledger no
-- claim folds any more. An admin call: it scans the queue's held jobs.
-- A claim that began before the configure committed may still hand out jobs
-- it does not count (up to one claim batch, until those jobs finish).
CREATE FUNCTION skipq_queue_recount(p_queue text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_counts boolean;
BEGIN
  SELECT q.concurrency IS NOT NULL INTO v_counts
  FROM queues AS q WHERE q.name = p_queue FOR UPDATE;
  DELETE FROM queue_releases AS r WHERE r.queue = p_queue;
  DELETE FROM queue_keys AS k WHERE k.queue = p_queue;
  IF coalesce(v_counts, false) THEN
    UPDATE task_queue AS t SET counted = true
    WHERE t.queue = p_queue AND t.status IN ('claimed', 'processing') AND NOT t.counted;
    INSERT INTO queue_keys (queue, concurrency_key, held)
    SELECT p_queue, t.concurrency_key, count(*)
    FROM task_queue AS t
    WHERE t.queue = p_queue AND t.status IN ('claimed', 'processing') AND t.concurrency_key IS NOT NULL
    GROUP BY t.concurrency_key;
    UPDATE queues AS q
    SET held = (SELECT count(*) FROM task_queue AS t WHERE t.queue = p_queue AND t.status IN ('claimed', 'processing'))
    WHERE q.name = p_queue;
  ELSE
    -- The trigger fires on status changes only; clearing the flag here adds no ledger rows.
    UPDATE task_queue AS t SET counted = false WHERE t.queue = p_queue AND t.counted;
    UPDATE queues AS q SET held = 0 WHERE q.name = p_queue;
  END IF;
END
$$;

-- claim, with the queue policies (same arguments and answer as before).
--
-- 1. No queue in the claim's scope has a policy (the usual case, and every
--    queue without a queues row): the claim is the statement of the lifecycle
--    migration, unchanged. The check reads the tiny queues table.
-- 2. Otherwise each limited queue in scope is claimed from on its own, in
--    name order, under its row lock (FOR UPDATE: limited claims of one queue
--    take turns, which is what makes the limits hold under concurrent claims;
--    claims never wait for job rows, so they cannot deadlock): the ledger is
--    folded, the room left by the concurrency limit and the rate window is
--    worked out, at most that many jobs are claimed, and the counters go up. Paused
--    queues are skipped. Then the rest of the batch comes from every other
--    queue in scope with the plain statement, the limited and paused queues
--    excluded. Jobs of limited queues thus come first in a mixed batch; the
--    priority order holds within each queue.
CREATE OR REPLACE FUNCTION skipq_claim(
  p_worker_id text,
  p_task_types text[],
  p_queues text[],
  p_max_tasks integer,
  p_lease_ms integer,
  p_now timestamptz
)
RETURNS SETOF task_queue
LANGUAGE plpgsql VOLATILE
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, skipq_now());
  v_left integer := greatest(p_max_tasks, 0);
  v_skip text[] := '{}';
  v_name text;
  q queues%ROWTYPE;
  v_allow integer;
  v_counts boolean;
  v_window timestamptz;
  v_used integer;
  v_n integer;
  v_keyed integer;
  v_lo text;
BEGIN
  IF NOT EXISTS (
    SELECT 1
    FROM queues AS pq
    WHERE (pq.paused OR pq.concurrency IS NOT NULL OR pq.rate_max IS NOT NULL)
      AND (p_queues IS NULL OR pq.name = ANY (p_queues))
  ) THEN
    RETURN QUERY
    WITH next AS (
      SELECT tq.id
      FROM task_queue AS tq
      WHERE tq.status = 'pending'
        AND tq.scheduled_for <= v_now
        AND (p_task_types IS NULL OR tq.task_type = ANY (p_task_types))
        AND (p_queues IS NULL OR tq.queue = ANY (p_queues))
      ORDER BY tq.priority DESC, tq.scheduled_for, tq.id
      LIMIT v_left
      FOR UPDATE SKIP LOCKED
    )
    UPDATE task_queue AS t
    SET status = 'claimed',
        worker_id = p_worker_id,
        attempt = t.attempt + 1,
        started_at = v_now,
        lease_expires_at = v_now + least(p_lease_ms, coalesce(t.timeout_ms, p_lease_ms)) * interval '1 millisecond',
        ended_by = NULL,
        updated_at = v_now
    FROM next
    WHERE t.id = next.id
    RETURNING t.*;
    RETURN;
  END IF;

  FOR v_name IN
    SELECT pq.name
    FROM queues AS pq
    WHERE (pq.paused OR pq.concurrency IS NOT NULL OR pq.rate_max IS NOT NULL)
      AND (p_queues IS NULL OR pq.name = ANY (p_queues))
    ORDER BY pq.name
  LOOP
    v_skip := v_skip || v_name;
    CONTINUE WHEN v_left = 0;
    -- The row as it is once locked: a configure or pause that committed while
    -- this claim waited is what counts.
    SELECT * INTO q FROM queues AS pq WHERE pq.name = v_name FOR UPDATE;
    CONTINUE WHEN q.paused;
    v_counts := q.concurrency IS NOT NULL;
    IF v_counts THEN
      q.held := q.held - skipq_fold_releases(v_name);
    END IF;
    v_allow := v_left;
    IF q.concurrency IS NOT NULL THEN
      v_allow := least(v_allow, q.concurrency - q.held);
    END IF;
    v_window := q.rate_window_start;
    v_used := q.rate_window_count;
    IF q.rate_max IS NOT NULL THEN
      -- Fixed windows of rate_period_ms, back to back from the first claim:
      -- at most rate_max claims start in each.
      IF v_window IS NULL OR v_now >= v_window + q.rate_period_ms * interval '1 millisecond' THEN
        v_window := CASE
          WHEN v_window IS NULL THEN v_now
          ELSE v_window + floor(extract(epoch FROM v_now - v_window) * 1000 / q.rate_period_ms) * q.rate_period_ms * interval '1 millisecond'
        END;
        v_used := 0;
      END IF;
      v_allow := least(v_allow, q.rate_max - v_used);
    END IF;
    v_n := 0;
    v_keyed := 0;
    -- key_concurrency is reserved (queues.configure refuses it for now): a
    -- round-robin keyed claim was written and hung under concurrent
    -- complete-and-claim statements in testing, so it is not shipped.
    IF v_allow - v_keyed > 0 THEN
      -- The queue's jobs without a key (all of them when it has no key limit).
      RETURN QUERY
      WITH next AS (
        SELECT tq.id
        FROM task_queue AS tq
        WHERE tq.status = 'pending'
          AND tq.scheduled_for <= v_now
          AND tq.queue = v_name
          AND (p_task_types IS NULL OR tq.task_type = ANY (p_task_types))
        ORDER BY tq.priority DESC, tq.scheduled_for, tq.id
        LIMIT v_allow - v_keyed
        FOR UPDATE SKIP LOCKED
      )
      UPDATE task_queue AS t
      SET status = 'claimed',
          worker_id = p_worker_id,
          attempt = t.attempt + 1,
          started_at = v_now,
          lease_expires_at = v_now + least(p_lease_ms, coalesce(t.timeout_ms, p_lease_ms)) * interval '1 millisecond',
          ended_by = NULL,
          counted = v_counts,
          updated_at = v_now
      FROM next
      WHERE t.id = next.id
      RETURNING t.*;
      GET DIAGNOSTICS v_n = ROW_COUNT;
    END IF;
    v_n := v_n + v_keyed;
    UPDATE queues AS uq
    SET held = CASE WHEN v_counts THEN q.held + v_n ELSE uq.held END,
        rate_window_start = v_window,
        rate_window_count = v_used + v_n
    WHERE uq.name = v_name;
    v_left := v_left - v_n;
  END LOOP;

  IF v_left > 0 THEN
    RETURN QUERY
    WITH next AS (
      SELECT tq.id
      FROM task_queue AS tq
      WHERE tq.status = 'pending'
        AND tq.scheduled_for <= v_now
        AND (p_task_types IS NULL OR tq.task_type = ANY (p_task_types))
        AND (p_queues IS NULL OR tq.queue = ANY (p_queues))
        AND NOT (tq.queue = ANY (v_skip))
      ORDER BY tq.priority DESC, tq.scheduled_for, tq.id
      LIMIT v_left
      FOR UPDATE SKIP LOCKED
    )
    UPDATE task_queue AS t
    SET status = 'claimed',
        worker_id = p_worker_id,
        attempt = t.attempt + 1,
        started_at = v_now,
        lease_expires_at = v_now + least(p_lease_ms, coalesce(t.timeout_ms, p_lease_ms)) * interval '1 millisecond',
        ended_by = NULL,
        updated_at = v_now
    FROM next
    WHERE t.id = next.id
    RETURNING t.*;
  END IF;
END
$$;

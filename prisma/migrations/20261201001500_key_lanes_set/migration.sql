-- The keyed claim path made cheap (issue 8: W3-K1000 at least 70% of W3).
--
-- Where the time went (auto_explain, a claim of 550 with keyConcurrency 1
-- over 1,000 keys, then the completion of those 550, one connection): a
-- cycle took 35-46 ms against 16-20 ms without keys. The claim walked the
-- keys twice over (skipq_key_walk visits up to 2 × room + 16 keys whatever
-- the claim needs: all 1,000 here, every claim), then went down into each
-- key a second time to take its job (skipq_claim_lanes); the completion's
-- row trigger wrote one queue_releases row per job, and the next claim's
-- fold deleted them one by one.
--
-- Now:
-- 1. Turn 1 of a keyed claim is one walk that picks as it goes
--    (skipq_key_pick): the descent that finds a key's first pending entry
--    in task_queue_key_claim_idx is that key's first job in claim order, so
--    when it is due, of a wanted type and its key has room, it is the pick,
--    with no second descent. The walk stops once it has picked room jobs
--    (or visited its 2 × room + 16 keys, or reached the end), instead of
--    visiting them all first. The picks are then claimed in one statement
--    (skipq_claim_picked, SKIP LOCKED as before). Turn order, the cursor,
--    the lane of jobs without a key and the later turns are as in
--    20261201001000_key_lanes.
-- 2. skipq_complete (complete, completeMany, complete_task, the SQL API's
--    complete) writes one ledger row per statement for the counted jobs it
--    finished, their keys in an array (queue_releases.n, .keys), instead of
--    the row trigger's one row per job. The trigger still covers every other
--    way out of held (fail, rescue, release, cancel, delete, a hand-written
--    UPDATE). A completed job keeps counted = true: the trigger now asks
--    whether the job left held (OLD.status), so the flag left on a finished
--    row releases nothing twice, and skipq_queue_recount uncounts held jobs
--    only.
--
-- Measured (this machine, 2 cores shared with other sessions at a load
-- average of 2.4-5; SQL only, one connection, 40,000 jobs, a cycle = claim
-- 550 + complete those 550, 40 cycles alternated between three databases,
-- three runs): backend CPU per 1,000 jobs with keyConcurrency 1 over 1,000
-- keys 83.6-86.4 ms before, 62.3-65.5 ms after (claim 55.5-59.1 -> 42.7-44.1,
-- completion 27.3-28.2 -> 19.5-21.4); the same cycle without keys 64.1-68.2
-- ms. Wall per cycle, median: 53.5-61.5 ms before, 40.8-47.5 after, 42.1-51.8
-- without keys. Two connections draining 20,000 keyed jobs at once (each
-- completing half of what it holds and claiming again, one transaction):
-- 2,585 -> 1,428 ms (median of 5), against 923 ms without keys: limited
-- claims of one queue still take turns on its row lock.

-- One row per release statement: n held jobs of the queue released, `keys`
-- their concurrency keys (with repeats; jobs without a key are counted in n
-- only). The trigger's rows keep their shape (n = 1, concurrency_key).
ALTER TABLE "queue_releases" ADD COLUMN "n" INTEGER NOT NULL DEFAULT 1;
ALTER TABLE "queue_releases" ADD COLUMN "keys" TEXT[];

-- Held jobs of a queue released and not yet folded (what a claim would take
-- off queues.held). For explain and tests: the ledger's shape stays here.
CREATE FUNCTION skipq_released(p_queue text) RETURNS integer
LANGUAGE sql STABLE AS $$
  SELECT coalesce(sum(r.n), 0)::integer FROM queue_releases AS r WHERE r.queue = p_queue
$$;

-- Held jobs of one key of a queue released and not yet folded.
CREATE FUNCTION skipq_released_key(p_queue text, p_key text) RETURNS integer
LANGUAGE sql STABLE AS $$
  SELECT (
    (SELECT count(*) FROM queue_releases AS r WHERE r.queue = p_queue AND r.concurrency_key = p_key)
    + (SELECT count(*) FROM queue_releases AS r CROSS JOIN LATERAL unnest(r.keys) AS u(k) WHERE r.queue = p_queue AND u.k = p_key)
  )::integer
$$;

-- As in the queues migration, for both shapes of ledger row.
CREATE OR REPLACE FUNCTION skipq_fold_releases(p_queue text) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_freed integer;
BEGIN
  WITH gone AS (
    DELETE FROM queue_releases AS r
    WHERE r.queue = p_queue
    RETURNING r.concurrency_key, r.n, r.keys
  ),
  by_key AS (
    SELECT a.k, count(*)::integer AS n
    FROM (
      SELECT g.concurrency_key AS k FROM gone AS g WHERE g.concurrency_key IS NOT NULL
      UNION ALL
      SELECT u.k FROM gone AS g CROSS JOIN LATERAL unnest(g.keys) AS u(k)
    ) AS a
    GROUP BY a.k
  ),
  keyed AS (
    UPDATE queue_keys AS k
    SET held = greatest(k.held - b.n, 0)
    FROM by_key AS b
    WHERE k.queue = p_queue
      AND k.concurrency_key = b.k
    RETURNING k.concurrency_key
  )
  SELECT coalesce(sum(g.n), 0)::integer INTO v_freed FROM gone AS g;
  UPDATE queues AS q SET held = greatest(q.held - v_freed, 0) WHERE q.name = p_queue AND v_freed > 0;
  RETURN v_freed;
END
$$;

-- The release trigger: a counted job leaving held, except by skipq_complete
-- (ended_by complete or complete_task, which only it writes; a claim clears
-- ended_by, so a held job's is NULL until its move sets it), which adds its
-- own row for the whole batch. OLD.status: a finished job keeps counted =
-- true (nothing clears it on completion any more), and leaving completed
-- (a retry) is no release.
DROP TRIGGER "task_queue_release_counted" ON "task_queue";
CREATE TRIGGER "task_queue_release_counted"
BEFORE UPDATE OF "status" ON "task_queue"
FOR EACH ROW
WHEN (OLD.counted
  AND OLD.status IN ('claimed', 'processing')
  AND NEW.status NOT IN ('claimed', 'processing')
  AND NOT (NEW.status = 'completed' AND coalesce(NEW.ended_by IN ('complete', 'complete_task'), false)))
EXECUTE FUNCTION skipq_count_release();

-- As in 20261201001000_key_lanes, but uncounting touches held jobs only: a
-- completed job now keeps counted = true, and clearing the flag on every
-- finished job of the queue (a million rows, with retention off) would make
-- a configure that clears the limits rewrite them all. Completed is an end
-- state (retry takes failed and cancelled jobs only), so the flag left there
-- is never read.
CREATE OR REPLACE FUNCTION skipq_queue_recount(p_queue text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_counts boolean;
BEGIN
  -- A type's queue gets its row here (as its first claim would make it), so
  -- its held counter is kept from now on.
  IF skipq_queue_type_keyed(p_queue) THEN
    INSERT INTO queues (name) VALUES (p_queue) ON CONFLICT (name) DO NOTHING;
  END IF;
  SELECT q.concurrency IS NOT NULL OR q.key_concurrency IS NOT NULL INTO v_counts
  FROM queues AS q WHERE q.name = p_queue FOR UPDATE;
  v_counts := coalesce(v_counts, false) OR skipq_queue_type_keyed(p_queue);
  DELETE FROM queue_releases AS r WHERE r.queue = p_queue;
  DELETE FROM queue_keys AS k WHERE k.queue = p_queue;
  IF v_counts THEN
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
    UPDATE task_queue AS t SET counted = false
    WHERE t.queue = p_queue AND t.status IN ('claimed', 'processing') AND t.counted;
    UPDATE queues AS q SET held = 0 WHERE q.name = p_queue;
  END IF;
END
$$;

-- complete, as in 20261201000700_flows_attempts, plus the ledger row of the
-- counted jobs it finished (one per queue; a batch without counted jobs, every
-- batch of a queue without limits, writes none). counted as returned is the
-- row's own (this update does not change it), read under the row's lock, so a
-- recount that counted the job while this statement waited is seen.
CREATE OR REPLACE FUNCTION skipq_complete(
  p_worker_id text,
  p_ids text[],
  p_attempts integer[],
  p_results text[],
  p_now timestamptz DEFAULT NULL
)
RETURNS SETOF skipq_move_result
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, skipq_now());
  v_by text := CASE WHEN p_worker_id IS NULL THEN 'complete_task' ELSE 'complete' END;
  v_moved text[];
  v_children text[];
BEGIN
  WITH moved AS (
    UPDATE task_queue AS t
    SET status = 'completed',
        result = j.result::jsonb,
        completed_at = v_now,
        lease_expires_at = NULL,
        ended_by = v_by,
        updated_at = v_now
    FROM (
      SELECT u.id, u.attempt, u.result
      FROM unnest(p_ids, p_attempts, p_results) AS u(id, attempt, result)
      ORDER BY u.id COLLATE "C"
    ) AS j
    WHERE t.id = j.id
      AND (p_worker_id IS NULL OR (t.worker_id = p_worker_id AND t.attempt = j.attempt))
      AND t.status IN ('claimed', 'processing')
    RETURNING t.id, t.attempt, t.worker_id, t.started_at, t.parent_id, t.queue, t.concurrency_key, t.counted
  ),
  recorded AS (
    INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, ended_by)
    SELECT m.id, m.attempt, m.worker_id, m.started_at, v_now, 'completed', v_by
    FROM moved AS m
  ),
  released AS (
    INSERT INTO queue_releases (queue, n, keys)
    SELECT m.queue, count(*)::integer, array_agg(m.concurrency_key) FILTER (WHERE m.concurrency_key IS NOT NULL)
    FROM moved AS m
    WHERE m.counted
    GROUP BY m.queue
  )
  SELECT coalesce(array_agg(moved.id), '{}'), array_agg(moved.id) FILTER (WHERE moved.parent_id IS NOT NULL)
  INTO v_moved, v_children
  FROM moved;
  IF v_children IS NOT NULL THEN
    PERFORM skipq_flow_settle(v_children, v_now);
  END IF;
  RETURN QUERY
  SELECT m.id, true, 'completed'::text, NULL::integer, p_worker_id, v_by, NULL::text, NULL::timestamptz, NULL::integer, NULL::timestamptz
  FROM unnest(v_moved) AS m(id);
  IF cardinality(v_moved) < cardinality(p_ids) THEN
    RETURN QUERY SELECT * FROM skipq_unmoved(p_ids, v_moved);
  END IF;
END
$$;

-- Turn 1 over the keys of a keyed queue, as one walk: the keys with pending
-- jobs in key order, after p_after (from the first when NULL), none past
-- p_upto (no end when NULL). Each key visited gives at most one job: its
-- first due job of a wanted type (p_typed: whose type's keyConcurrency its
-- held count is below), while its held count is below p_key_limit. The walk
-- stops after p_room picks or p_visits keys. Answers how many keys it
-- visited, the last of them, and the picked job ids with their keys, in walk
-- order. Read only; the caller holds the queue's row lock and claims the
-- picks (skipq_claim_picked).
--
-- One descent of task_queue_key_claim_idx per key: the entry that ends it
-- (the key's first in claim order) is the pick when it is due and wanted;
-- only then is the key gone into again for a later entry. The plan settings
-- are those of skipq_claim_lanes (20261201001000_key_lanes).
CREATE FUNCTION skipq_key_pick(
  p_queue text,
  p_task_types text[],
  p_after text,
  p_upto text,
  p_visits integer,
  p_room integer,
  p_key_limit integer,
  p_typed boolean,
  p_now timestamptz,
  OUT visited integer,
  OUT last_key text,
  OUT picks text[],
  OUT pick_keys text[]
)
LANGUAGE plpgsql STABLE
SET enable_bitmapscan = off
SET enable_sort = off
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
SET jit = off
AS $$
BEGIN
  WITH RECURSIVE walk(k, pos, taken, pick) AS (
    -- The seed stands before the first key (p_after, or NULL: before all).
    SELECT p_after, 0, 0, NULL::text COLLATE "C"
    UNION ALL
    SELECT f.concurrency_key, w.pos + 1, w.taken + CASE WHEN c.pick IS NULL THEN 0 ELSE 1 END, c.pick
    FROM walk AS w
    CROSS JOIN LATERAL (
      -- The next key's first entry. Two branches so that each bound is an
      -- index bound (an OR with IS NULL is not): at most one runs.
      (
        SELECT tq.concurrency_key, tq.id, tq.scheduled_for, tq.task_type
        FROM task_queue AS tq
        WHERE tq.status = 'pending'
          AND tq.concurrency_key IS NOT NULL
          AND tq.queue = p_queue
          AND tq.concurrency_key > w.k
        ORDER BY tq.concurrency_key, tq.priority DESC, tq.scheduled_for, tq.id
        LIMIT 1
      )
      UNION ALL
      (
        SELECT tq.concurrency_key, tq.id, tq.scheduled_for, tq.task_type
        FROM task_queue AS tq
        WHERE w.k IS NULL
          AND tq.status = 'pending'
          AND tq.concurrency_key IS NOT NULL
          AND tq.queue = p_queue
        ORDER BY tq.concurrency_key, tq.priority DESC, tq.scheduled_for, tq.id
        LIMIT 1
      )
    ) AS f
    CROSS JOIN LATERAL (
      SELECT coalesce((
        SELECT qk.held
        FROM queue_keys AS qk
        WHERE qk.queue = p_queue
          AND qk.concurrency_key = f.concurrency_key
      ), 0) AS held
      -- OFFSET 0 keeps h and c subqueries, computed once per key: flattened,
      -- the held lookup and the pick ran once for taken and again for pick.
      OFFSET 0
    ) AS h
    CROSS JOIN LATERAL (
      SELECT CASE
        WHEN h.held >= p_key_limit THEN NULL
        WHEN NOT p_typed
          AND f.scheduled_for <= p_now
          AND (p_task_types IS NULL OR f.task_type = ANY (p_task_types)) THEN f.id
        ELSE (
          SELECT tq.id
          FROM task_queue AS tq
          WHERE tq.status = 'pending'
            AND tq.concurrency_key IS NOT NULL
            AND tq.queue = p_queue
            AND tq.concurrency_key = f.concurrency_key
            AND tq.scheduled_for <= p_now
            AND (p_task_types IS NULL OR tq.task_type = ANY (p_task_types))
            AND (NOT p_typed OR h.held < coalesce((
              SELECT jt.key_concurrency
              FROM job_types AS jt
              WHERE jt.name = tq.task_type
                AND jt.removed_at IS NULL
            ), p_key_limit))
          ORDER BY tq.priority DESC, tq.scheduled_for, tq.id
          LIMIT 1)
      END AS pick
      OFFSET 0
    ) AS c
    WHERE w.pos < p_visits
      AND w.taken < p_room
      AND (p_upto IS NULL OR f.concurrency_key <= p_upto)
  )
  -- The walk goes up in key order: its last key is its greatest.
  SELECT count(*) FILTER (WHERE w.pos > 0)::integer,
         max(w.k) FILTER (WHERE w.pos > 0),
         coalesce(array_agg(w.pick) FILTER (WHERE w.pick IS NOT NULL), '{}'),
         coalesce(array_agg(w.k) FILTER (WHERE w.pick IS NOT NULL), '{}')
  INTO visited, last_key, picks, pick_keys
  FROM walk AS w;
END
$$;

-- Claims the jobs skipq_key_pick picked: each still pending and not locked
-- by anyone else (SKIP LOCKED; one that is gives nothing this claim),
-- counted, and its key's held counter up by one. The caller holds the
-- queue's row lock. Plan settings as skipq_claim_lanes.
CREATE FUNCTION skipq_claim_picked(
  p_worker_id text,
  p_queue text,
  p_ids text[],
  p_lease_ms integer,
  p_now timestamptz
)
RETURNS SETOF task_queue
LANGUAGE plpgsql VOLATILE
SET enable_bitmapscan = off
SET enable_sort = off
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
SET jit = off
AS $$
BEGIN
  RETURN QUERY
  WITH next AS (
    SELECT tq.id
    FROM unnest(p_ids) WITH ORDINALITY AS u(id, ord)
    JOIN task_queue AS tq ON tq.id = u.id
    WHERE tq.status = 'pending'
      AND tq.queue = p_queue
    FOR UPDATE OF tq SKIP LOCKED
  ),
  moved AS (
    UPDATE task_queue AS t
    SET status = 'claimed',
        worker_id = p_worker_id,
        attempt = t.attempt + 1,
        started_at = p_now,
        lease_expires_at = p_now + least(p_lease_ms, coalesce(t.timeout_ms, p_lease_ms)) * interval '1 millisecond',
        ended_by = NULL,
        counted = true,
        updated_at = p_now
    FROM next
    WHERE t.id = next.id
    RETURNING t.*
  ),
  bumped AS (
    INSERT INTO queue_keys AS qk (queue, concurrency_key, held)
    SELECT p_queue, m.concurrency_key, count(*)::integer
    FROM moved AS m
    GROUP BY m.concurrency_key
    ON CONFLICT (queue, concurrency_key) DO UPDATE SET held = qk.held + EXCLUDED.held
  )
  SELECT m.* FROM moved AS m;
END
$$;

-- claim, as in 20261201001000_key_lanes; turn 1 of a keyed queue is
-- skipq_key_pick + skipq_claim_picked (see the header), the rest unchanged.
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
SET jit = off
AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, skipq_now());
  v_left integer := greatest(p_max_tasks, 0);
  v_skip text[] := '{}';
  v_name text;
  q queues%ROWTYPE;
  v_allow integer;
  v_room integer;
  v_counts boolean;
  v_keyed boolean;
  v_typed boolean;
  v_window timestamptz;
  v_used integer;
  v_n integer;
  v_visits integer;
  v_key_limit integer;
  v_wrap boolean;
  v_lanes text[];
  v_per integer;
  v_asked integer;
  v_got text[];
  v_u_open boolean;
  v_u_got integer;
  v_served1 text;
  v_served2 text;
  v_u_served boolean;
  v_last1 text;
  v_last2 text;
  v_visited1 integer;
  v_visited2 integer;
  v_picks text[];
  v_pick_keys text[];
  v_any_key boolean;
  r task_queue%ROWTYPE;
BEGIN
  v_typed := EXISTS (SELECT 1 FROM job_types AS jt WHERE jt.key_concurrency IS NOT NULL AND jt.removed_at IS NULL);
  IF NOT EXISTS (
    SELECT 1
    FROM queues AS pq
    WHERE (pq.paused OR pq.concurrency IS NOT NULL OR pq.rate_max IS NOT NULL OR pq.key_concurrency IS NOT NULL)
      AND (p_queues IS NULL OR pq.name = ANY (p_queues))
  ) AND NOT (v_typed AND EXISTS (
    SELECT 1
    FROM job_types AS jt
    WHERE jt.key_concurrency IS NOT NULL
      AND jt.removed_at IS NULL
      AND (p_queues IS NULL OR jt.queue = ANY (p_queues))
  )) THEN
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
    SELECT l.name
    FROM (
      SELECT pq.name
      FROM queues AS pq
      WHERE (pq.paused OR pq.concurrency IS NOT NULL OR pq.rate_max IS NOT NULL OR pq.key_concurrency IS NOT NULL)
        AND (p_queues IS NULL OR pq.name = ANY (p_queues))
      UNION
      SELECT jt.queue
      FROM job_types AS jt
      WHERE jt.key_concurrency IS NOT NULL
        AND jt.removed_at IS NULL
        AND (p_queues IS NULL OR jt.queue = ANY (p_queues))
    ) AS l
    ORDER BY l.name
  LOOP
    v_skip := v_skip || v_name;
    CONTINUE WHEN v_left = 0;
    -- The row as it is once locked: a configure or pause that committed while
    -- this claim waited is what counts. A type's queue may have no row yet.
    SELECT * INTO q FROM queues AS pq WHERE pq.name = v_name FOR UPDATE;
    IF NOT FOUND THEN
      INSERT INTO queues (name) VALUES (v_name) ON CONFLICT (name) DO NOTHING;
      SELECT * INTO q FROM queues AS pq WHERE pq.name = v_name FOR UPDATE;
    END IF;
    CONTINUE WHEN q.paused;
    v_keyed := q.key_concurrency IS NOT NULL OR skipq_queue_type_keyed(v_name);
    v_counts := q.concurrency IS NOT NULL OR v_keyed;
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
    v_allow := greatest(v_allow, 0);
    v_room := v_allow;

    IF v_room > 0 AND NOT v_keyed THEN
      -- A queue without keys: its jobs in priority order.
      RETURN QUERY
      WITH next AS (
        SELECT tq.id
        FROM task_queue AS tq
        WHERE tq.status = 'pending'
          AND tq.scheduled_for <= v_now
          AND tq.queue = v_name
          AND (p_task_types IS NULL OR tq.task_type = ANY (p_task_types))
        ORDER BY tq.priority DESC, tq.scheduled_for, tq.id
        LIMIT v_room
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
      v_room := v_room - v_n;
    ELSIF v_room > 0 THEN
      -- The lanes of the turn (20261201001000_key_lanes): keys after the
      -- cursor, then U if the walk reached the last key, then keys from the
      -- first up to the cursor, at most 2 × room + 16 keys in all. A key's
      -- limit: the queue's, else no limit of the queue's own (a type's is
      -- checked job by job).
      v_key_limit := coalesce(q.key_concurrency, 2147483647);
      v_visits := v_room * 2 + 16;
      v_served1 := NULL;
      v_served2 := NULL;
      v_last2 := NULL;
      v_visited2 := 0;
      v_u_served := false;
      v_u_open := true;
      v_got := '{}';
      -- Turn 1, keys after the cursor. A walk that stops short of its visits
      -- without filling the batch reached the last key.
      SELECT p.visited, p.last_key, p.picks, p.pick_keys INTO v_visited1, v_last1, v_picks, v_pick_keys
      FROM skipq_key_pick(v_name, p_task_types, q.key_cursor, NULL, v_visits, v_room, v_key_limit, v_typed, v_now) AS p;
      v_wrap := v_visited1 < v_visits AND cardinality(v_picks) < v_room;
      IF cardinality(v_picks) > 0 THEN
        RETURN QUERY SELECT * FROM skipq_claim_picked(p_worker_id, v_name, v_picks, p_lease_ms, v_now);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_room := v_room - v_n;
        v_got := v_pick_keys;
        v_served1 := v_pick_keys[cardinality(v_pick_keys)];
      END IF;
      IF v_room > 0 AND v_wrap THEN
        -- U's place in the turn: all of the room when no key has pending jobs.
        v_any_key := v_visited1 > 0 OR (q.key_cursor IS NOT NULL AND cardinality(skipq_key_walk(v_name, NULL, q.key_cursor, 1)) > 0);
        v_asked := CASE WHEN v_any_key THEN 1 ELSE v_room END;
        RETURN QUERY SELECT * FROM skipq_claim_unkeyed(p_worker_id, p_task_types, v_name, v_asked, true, p_lease_ms, v_now);
        GET DIAGNOSTICS v_u_got = ROW_COUNT;
        v_room := v_room - v_u_got;
        v_u_served := v_u_got > 0;
        v_u_open := v_u_got = v_asked;
      END IF;
      IF v_room > 0 AND v_wrap AND q.key_cursor IS NOT NULL THEN
        -- Turn 1, keys from the first up to the cursor.
        SELECT p.visited, p.last_key, p.picks, p.pick_keys INTO v_visited2, v_last2, v_picks, v_pick_keys
        FROM skipq_key_pick(v_name, p_task_types, NULL, q.key_cursor, v_visits - v_visited1, v_room, v_key_limit, v_typed, v_now) AS p;
        IF cardinality(v_picks) > 0 THEN
          RETURN QUERY SELECT * FROM skipq_claim_picked(p_worker_id, v_name, v_picks, p_lease_ms, v_now);
          GET DIAGNOSTICS v_n = ROW_COUNT;
          v_room := v_room - v_n;
          v_got := v_got || v_pick_keys;
          v_served2 := v_pick_keys[cardinality(v_pick_keys)];
        END IF;
      END IF;
      -- The cursor: the last lane served in walk order (U: NULL); when none
      -- gave a job, the last key visited, so the next claim looks further on.
      -- (A pick lost to SKIP LOCKED counts as served: rare, and harmless.)
      UPDATE queues AS uq
      SET key_cursor = CASE
            WHEN v_served2 IS NOT NULL THEN v_served2
            WHEN v_u_served THEN NULL
            WHEN v_served1 IS NOT NULL THEN v_served1
            WHEN v_visited2 > 0 THEN v_last2
            WHEN v_visited1 > 0 THEN v_last1
            ELSE uq.key_cursor
          END
      WHERE uq.name = v_name;
      -- Later turns: the lanes that gave all they were asked, up to v_per
      -- each (one each when a type's limit must be checked job by job, or
      -- every key's room was 1).
      -- A key limit of 1 leaves no key room after turn 1.
      v_lanes := CASE WHEN v_key_limit = 1 THEN '{}' ELSE v_got END;
      WHILE v_room > 0 AND (cardinality(v_lanes) > 0 OR (v_u_served AND v_u_open)) LOOP
        v_per := CASE
          WHEN v_typed THEN 1
          ELSE greatest(1, v_room / (cardinality(v_lanes) + CASE WHEN v_u_served AND v_u_open THEN 1 ELSE 0 END))
        END;
        v_got := '{}';
        IF cardinality(v_lanes) > 0 THEN
          FOR r IN SELECT * FROM skipq_claim_lanes(p_worker_id, p_task_types, v_name, v_lanes, v_key_limit, v_per, v_room, v_typed, p_lease_ms, v_now) LOOP
            RETURN NEXT r;
            v_got := v_got || r.concurrency_key;
          END LOOP;
          v_room := v_room - cardinality(v_got);
          -- A lane that gave fewer than asked has nothing more due, or no room.
          SELECT coalesce(array_agg(g.k ORDER BY g.k), '{}') INTO v_lanes
          FROM (SELECT x.k FROM unnest(v_got) AS x(k) GROUP BY x.k HAVING count(*) = v_per) AS g;
        END IF;
        IF v_room > 0 AND v_u_served AND v_u_open THEN
          v_asked := least(v_per, v_room);
          RETURN QUERY SELECT * FROM skipq_claim_unkeyed(p_worker_id, p_task_types, v_name, v_asked, true, p_lease_ms, v_now);
          GET DIAGNOSTICS v_u_got = ROW_COUNT;
          v_room := v_room - v_u_got;
          v_u_open := v_u_got = v_asked;
        END IF;
      END LOOP;
      -- What the keys could not use goes to U.
      IF v_room > 0 AND v_u_open THEN
        RETURN QUERY SELECT * FROM skipq_claim_unkeyed(p_worker_id, p_task_types, v_name, v_room, true, p_lease_ms, v_now);
        GET DIAGNOSTICS v_u_got = ROW_COUNT;
        v_room := v_room - v_u_got;
      END IF;
    END IF;
    v_n := v_allow - v_room;
    UPDATE queues AS uq
    SET held = CASE WHEN v_counts THEN q.held + v_n ELSE uq.held END,
        rate_window_start = v_window,
        rate_window_count = v_used + v_n
    WHERE uq.name = v_name;
    v_left := v_left - v_n;
  END LOOP;

  -- The queues without a policy, only when one of them has a pending job
  -- (20261201001000_key_lanes).
  IF v_left > 0 AND skipq_pending_elsewhere(v_skip, p_queues) THEN
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

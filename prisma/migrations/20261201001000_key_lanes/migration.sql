-- Concurrency keys, the gaps of 20261201000900_concurrency_keys closed (issue 8):
--
-- 1. A keyed queue's jobs without a key are found by an index descent
--    (task_queue_unkeyed_claim_idx), not by walking task_queue_claim_idx past
--    the queue's keyed jobs, and they are a lane of their own in the keys'
--    turn, so neither kind starves the other (see "How a claim divides its
--    batch" below).
-- 2. Within one batch the lanes take turns too: one job per lane per turn, so
--    a claim of 8 with keyConcurrency 2 over 4 keys takes 2 of each, not 2 of
--    the first key and then 2 of the next.
-- 3. A job type may set keyConcurrency (registry option, synced into
--    job_types.key_concurrency by every server at start). A job of that type
--    is claimed only while its lane (queue, key) holds fewer jobs than the
--    stricter of its queue's and its type's keyConcurrency. The lane counts
--    every held job of that key in that queue, whatever its type. A type's
--    limit makes its own queue (job_types.queue, the registry's `queue`) a
--    keyed queue, and holds in every keyed queue; a job of the type sent
--    with `queue:` to a queue that is not keyed is not held back by it.
--
-- How a claim divides its batch in a keyed queue. The lanes are the keys
-- with pending jobs in key order, then the lane of jobs without a key (U),
-- then round to the first key again; the claim starts after the lane it
-- served last (queues.key_cursor; NULL: U was, or nothing yet) and visits at
-- most 2 × room + 16 keys. Turn 1 takes one job from each visited lane in
-- that order until the batch is full; each later turn takes up to q more from
-- each lane that gave all it was asked in the turn before (q = room left /
-- lanes left, at least 1; always 1 when any job type has a keyConcurrency, so
-- a type's limit is checked job by job), a key never past its room
-- (keyConcurrency less its held jobs). Room left after the turns (every key
-- visited was full, or had nothing due) goes to U. So: U gets a turn each
-- time the walk goes round and whatever the keys cannot use; each key gets a
-- turn each time round, whatever U holds pending. Measured (this machine,
-- 2 cores at a load average of about 7 from other work; median of 50
-- claims in one session, run alternately): a claim of 10 unkeyed jobs in a
-- keyConcurrency 1 queue with 9,000 keyed jobs pending behind 3 full keys
-- took 8.4 to 16.6 ms before (the walk of task_queue_claim_idx past the
-- keyed jobs; 3 to 4.5 ms on a quiet machine) and 2.1 to 3.2 ms after, most
-- of it the claim's several statements, not the descents.
--
-- The no-policy claim is the statement it was, behind one more EXISTS over
-- the tiny job_types table (does a type of a queue in scope set
-- keyConcurrency?).

ALTER TABLE "job_types" ADD COLUMN "key_concurrency" INTEGER;
ALTER TABLE "job_types" ADD CONSTRAINT "job_types_key_concurrency_check" CHECK ("key_concurrency" BETWEEN 1 AND 10000);

-- The pending jobs without a key of one queue, in claim order. The cost: a
-- plain enqueue writes one more index entry (a keyed one writes one in
-- task_queue_key_claim_idx instead); the claim of a queue without policy
-- still walks task_queue_claim_idx.
CREATE INDEX "task_queue_unkeyed_claim_idx" ON "task_queue" ("queue", "priority" DESC, "scheduled_for", "id")
  WHERE "status" = 'pending' AND "concurrency_key" IS NULL;

-- True when a live job type of this queue sets keyConcurrency: the queue is
-- then keyed even without a keyConcurrency of its own.
CREATE FUNCTION skipq_queue_type_keyed(p_queue text) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (
    SELECT 1
    FROM job_types AS jt
    WHERE jt.queue = p_queue
      AND jt.key_concurrency IS NOT NULL
      AND jt.removed_at IS NULL
  )
$$;

-- As in 20261201000900_concurrency_keys, with a type's keyConcurrency making
-- the queue count its held jobs too. jobTypesSync's caller runs it for the
-- queues whose types' limits changed.
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
    UPDATE task_queue AS t SET counted = false WHERE t.queue = p_queue AND t.counted;
    UPDATE queues AS q SET held = 0 WHERE q.name = p_queue;
  END IF;
END
$$;

-- The plan settings of skipq_claim_lanes and skipq_claim_unkeyed. Generic
-- plans: a custom plan is made afresh on every call (plpgsql's default keeps
-- custom plans when they look cheaper), measured at 1 to 2 ms of planning
-- per call on this machine, more than the statements take. But the generic
-- plan of the UPDATE, not knowing how many ids `next` gives, joined them by
-- hashing a sequential scan of task_queue (12 ms with 14,000 rows), hence
-- enable_seqscan = off: each id goes through the primary key, as in the
-- fenced moves. Measured after (in a loop of 200, machine loaded): 0.1 to
-- 0.2 ms per turn over 3 full keys.

-- One turn over some keys of a keyed queue: each key, in the order given,
-- gives its first due jobs, at most p_per_key and at most its room
-- (p_key_limit less the key's held jobs), until p_room jobs are taken. With
-- p_typed, a job whose type sets keyConcurrency is taken only while its key
-- holds fewer than that (checked against the held count before this turn,
-- which is exact because p_per_key is then 1). The claimed jobs are counted
-- and their keys' held counters go up. The nested loop over the keys stops
-- pulling once p_room jobs are locked: keys past that are neither read nor
-- locked. The caller holds the queue's row lock.
CREATE FUNCTION skipq_claim_lanes(
  p_worker_id text,
  p_task_types text[],
  p_queue text,
  p_keys text[],
  p_key_limit integer,
  p_per_key integer,
  p_room integer,
  p_typed boolean,
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
    SELECT j.id
    FROM unnest(p_keys) WITH ORDINALITY AS u(k, ord)
    CROSS JOIN LATERAL (
      SELECT coalesce((
        SELECT qk.held
        FROM queue_keys AS qk
        WHERE qk.queue = p_queue
          AND qk.concurrency_key = u.k
      ), 0) AS held
    ) AS h
    CROSS JOIN LATERAL (
      SELECT tq.id
      FROM task_queue AS tq
      WHERE tq.status = 'pending'
        AND tq.concurrency_key IS NOT NULL
        AND tq.queue = p_queue
        AND tq.concurrency_key = u.k
        AND tq.scheduled_for <= p_now
        AND (p_task_types IS NULL OR tq.task_type = ANY (p_task_types))
        AND (NOT p_typed OR h.held < coalesce((
          SELECT jt.key_concurrency
          FROM job_types AS jt
          WHERE jt.name = tq.task_type
            AND jt.removed_at IS NULL
        ), p_key_limit))
      ORDER BY tq.priority DESC, tq.scheduled_for, tq.id
      LIMIT least(greatest(p_key_limit - h.held, 0), p_per_key)
      FOR UPDATE OF tq SKIP LOCKED
    ) AS j
    LIMIT p_room
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

-- The first p_room due jobs without a key of one queue (one descent of
-- task_queue_unkeyed_claim_idx), claimed and counted (p_counted). The
-- caller holds the queue's row lock.
CREATE FUNCTION skipq_claim_unkeyed(
  p_worker_id text,
  p_task_types text[],
  p_queue text,
  p_room integer,
  p_counted boolean,
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
    FROM task_queue AS tq
    WHERE tq.status = 'pending'
      AND tq.concurrency_key IS NULL
      AND tq.queue = p_queue
      AND tq.scheduled_for <= p_now
      AND (p_task_types IS NULL OR tq.task_type = ANY (p_task_types))
    ORDER BY tq.priority DESC, tq.scheduled_for, tq.id
    LIMIT p_room
    FOR UPDATE SKIP LOCKED
  )
  UPDATE task_queue AS t
  SET status = 'claimed',
      worker_id = p_worker_id,
      attempt = t.attempt + 1,
      started_at = p_now,
      lease_expires_at = p_now + least(p_lease_ms, coalesce(t.timeout_ms, p_lease_ms)) * interval '1 millisecond',
      ended_by = NULL,
      counted = p_counted,
      updated_at = p_now
  FROM next
  WHERE t.id = next.id
  RETURNING t.*;
END
$$;

-- The claim's last statement (the jobs of queues without a policy, after the
-- policy queues were served) runs only when some queue outside the policy
-- queues has a pending job. Which queues have pending jobs is read by a skip
-- scan over the two partial indexes that lead with the queue
-- (task_queue_unkeyed_claim_idx, task_queue_key_claim_idx): one index descent
-- per queue with pending jobs, however many jobs each holds.

CREATE FUNCTION skipq_pending_elsewhere(p_skip text[], p_queues text[]) RETURNS boolean
LANGUAGE sql STABLE
SET enable_seqscan = off
AS $$
  WITH RECURSIVE unkeyed(q) AS (
    (SELECT tq.queue FROM task_queue AS tq WHERE tq.status = 'pending' AND tq.concurrency_key IS NULL ORDER BY tq.queue LIMIT 1)
    UNION ALL
    SELECT (
      SELECT tq.queue FROM task_queue AS tq
      WHERE tq.status = 'pending' AND tq.concurrency_key IS NULL AND tq.queue > u.q
      ORDER BY tq.queue LIMIT 1
    )
    FROM unkeyed AS u
    WHERE u.q IS NOT NULL
  ),
  keyed(q) AS (
    (SELECT tq.queue FROM task_queue AS tq WHERE tq.status = 'pending' AND tq.concurrency_key IS NOT NULL ORDER BY tq.queue LIMIT 1)
    UNION ALL
    SELECT (
      SELECT tq.queue FROM task_queue AS tq
      WHERE tq.status = 'pending' AND tq.concurrency_key IS NOT NULL AND tq.queue > k.q
      ORDER BY tq.queue LIMIT 1
    )
    FROM keyed AS k
    WHERE k.q IS NOT NULL
  )
  SELECT EXISTS (
    SELECT 1
    FROM (SELECT u.q FROM unkeyed AS u UNION ALL SELECT k.q FROM keyed AS k) AS a
    WHERE a.q IS NOT NULL
      AND NOT (a.q = ANY (p_skip))
      AND (p_queues IS NULL OR a.q = ANY (p_queues))
  )
$$;

-- claim, with the queue policies (same arguments and answer as before).
--
-- 1. No queue in the claim's scope has a policy or is the queue of a job
--    type that sets keyConcurrency (the usual case): the claim is the
--    statement of the lifecycle migration, unchanged. The checks read the
--    tiny queues and job_types tables (measured: about 5 µs per claim for the
--    job_types one, in a loop of 20,000).
-- 2. Otherwise each limited queue in scope (a policy of its own, or the
--    queue of a type with keyConcurrency; such a queue gets a queues row the
--    first time) is claimed from on its own, in name order, under its row
--    lock, as in the queues migration: the ledger is folded, the room left by
--    the concurrency limit and the rate window is worked out, at most that
--    many jobs are claimed, and the counters go up. A keyed queue's batch is
--    divided among its lanes as the header says; a queue without keys is
--    claimed in priority order. Paused queues are skipped. Then the rest of
--    the batch comes from every other queue in scope with the plain
--    statement, the limited and paused queues excluded, when one of them has
--    a pending job (skipq_pending_elsewhere).
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
  v_walk1 text[];
  v_walk2 text[];
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
      -- The lanes of the turn (see the header): keys after the cursor, then U
      -- if the walk reached the last key, then keys from the first up to the
      -- cursor. A key's limit: the queue's, else no limit of the queue's own
      -- (a type's is checked job by job).
      v_key_limit := coalesce(q.key_concurrency, 2147483647);
      v_visits := v_room * 2 + 16;
      v_walk1 := skipq_key_walk(v_name, q.key_cursor, NULL, v_visits);
      v_wrap := cardinality(v_walk1) < v_visits;
      v_walk2 := '{}';
      IF v_wrap AND q.key_cursor IS NOT NULL THEN
        v_walk2 := skipq_key_walk(v_name, NULL, q.key_cursor, v_visits - cardinality(v_walk1));
      END IF;
      v_served1 := NULL;
      v_served2 := NULL;
      v_u_served := false;
      v_u_open := true;
      v_got := '{}';
      -- Turn 1, lane by lane in walk order.
      FOR r IN SELECT * FROM skipq_claim_lanes(p_worker_id, p_task_types, v_name, v_walk1, v_key_limit, 1, v_room, v_typed, p_lease_ms, v_now) LOOP
        RETURN NEXT r;
        v_got := v_got || r.concurrency_key;
        v_served1 := greatest(v_served1, r.concurrency_key);
      END LOOP;
      v_room := v_room - cardinality(v_got);
      IF v_room > 0 AND v_wrap THEN
        -- U's place in the turn: all of the room when no key has pending jobs.
        v_asked := CASE WHEN cardinality(v_walk1) + cardinality(v_walk2) = 0 THEN v_room ELSE 1 END;
        RETURN QUERY SELECT * FROM skipq_claim_unkeyed(p_worker_id, p_task_types, v_name, v_asked, true, p_lease_ms, v_now);
        GET DIAGNOSTICS v_u_got = ROW_COUNT;
        v_room := v_room - v_u_got;
        v_u_served := v_u_got > 0;
        v_u_open := v_u_got = v_asked;
      END IF;
      IF v_room > 0 AND cardinality(v_walk2) > 0 THEN
        FOR r IN SELECT * FROM skipq_claim_lanes(p_worker_id, p_task_types, v_name, v_walk2, v_key_limit, 1, v_room, v_typed, p_lease_ms, v_now) LOOP
          RETURN NEXT r;
          v_got := v_got || r.concurrency_key;
          v_served2 := greatest(v_served2, r.concurrency_key);
          v_room := v_room - 1;
        END LOOP;
      END IF;
      -- The cursor: the last lane served in walk order (U: NULL); when none
      -- gave a job, the last key visited, so the next claim looks further on.
      UPDATE queues AS uq
      SET key_cursor = CASE
            WHEN v_served2 IS NOT NULL THEN v_served2
            WHEN v_u_served THEN NULL
            WHEN v_served1 IS NOT NULL THEN v_served1
            WHEN cardinality(v_walk2) > 0 THEN v_walk2[cardinality(v_walk2)]
            WHEN cardinality(v_walk1) > 0 THEN v_walk1[cardinality(v_walk1)]
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

  -- The queues without a policy, only when one of them has a pending job:
  -- otherwise this walk of task_queue_claim_idx passed every due job of the
  -- policy queues, filtered out one by one (1.05 ms per 4,000 pending in a
  -- queue with concurrency 100, on every claim: W3-C100).
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

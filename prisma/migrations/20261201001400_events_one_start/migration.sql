-- Live events: logging (re)starts once, and a new subscription starts past
-- its marker (issue 10: two rare EVENTS_LOST answers to fresh subscribers).
--
-- What went wrong. skipq_events_listen read "was anybody live?" before it
-- took any lock, so two servers getting their first subscriber at the same
-- moment both wrote a 'gap' marker. And a marker is keyed at least at its
-- statement's snapshot xmax (skipq_event_key, so no reader's cursor can have
-- passed it). When another transaction with a higher xid committed while the
-- listen ran, the marker got that xmax, and so did the first snapshot after
-- the listen committed: the new subscription's start, (xmax, 0), lay before
-- the marker of its own listen. The subscriber read it and was told
-- EVENTS_LOST (409) although it had asked for nothing before its start. Seen
-- in CI about once in ten runs of the events and auth tests, where test
-- files in other databases of the cluster commit all the time.
--
-- Now the listen takes the triggers' advisory lock before it looks, so of
-- concurrent first listens one writes the marker and the others, waiting for
-- it, find it live; and a new subscription starts at the later of the
-- snapshot's xmax and the newest marker keyed at or past it (eventsStart in
-- server/queries/events.ts). A marker keyed past a live subscriber's cursor
-- then always means what it says: logging stopped and started again.

CREATE OR REPLACE FUNCTION skipq_events_listen(p_server_id text, p_live_ms integer)
RETURNS TABLE (gap_tx text, gap_seq bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_was_live boolean;
BEGIN
  -- The lock skipq_events_arm and skipq_events_disarm take (re-entrant):
  -- held until this transaction ends, so the next listen sees this row.
  PERFORM pg_advisory_xact_lock(hashtext('skipq_events_triggers'));
  v_was_live := skipq_events_live();
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

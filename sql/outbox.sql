-- outbox.sql — publishing without the channel lock: enqueue now, get a
-- version from the sequencer a moment later.
--
-- pgfeed.publish gives the event its version inside the caller's transaction,
-- which costs the channel's row lock from the head update to the commit (one
-- channel's publishers commit one at a time) and a NOTIFY (the lock every
-- notifying commit of the cluster shares). pgfeed.enqueue only inserts a row
-- into pgfeed.outbox, so producers commit side by side; pgfeed.sequence,
-- which one pgfeed process runs every --sequence-ms (fcgi/sequencer.c),
-- moves the committed rows into pgfeed.event the way pgfeed.publish_many
-- does: per channel one head update, consecutive versions, one NOTIFY.
--
-- Why versions still become visible in version order. Versions are given
-- only under the channel row lock, as pgfeed.publish gives them, and only by
-- a transaction that inserts the events it numbers and commits them together
-- with the new head: a reader sees a channel's versions appear in order, each
-- batch at once. The sequencer reads the outbox under a snapshot, so it sees
-- committed rows only: a producer still in its transaction, or rolled back,
-- contributes nothing, and nothing it enqueued can later appear below a
-- version already given. Rows of one transaction become visible together and
-- keep their id order (a session draws ids in the order it enqueues), so its
-- events get ascending versions; ids of different transactions say nothing
-- about commit order, and need not.

-- The checks pgfeed.publish makes, raising the same SQLSTATEs (22023 for a
-- bad name or type, 42501 under pgfeed.publish_prefix), all before the row
-- exists: a row the sequencer could not append (an invalid channel name would
-- make its ensure_channel raise) would stop every batch behind it.
--
-- PL/pgSQL, by measurement (8 clients, one channel, BENCHMARKS.md
-- "Publishing"): a SQL function ran at 0.35x a plain INSERT, since one that
-- is not inlined (SECURITY DEFINER never is) plans its body again on every
-- call where PL/pgSQL keeps its plans for the session; a direct INSERT grant
-- with CHECK constraints ran at about 0.5x (PostgreSQL 15 plans a CHECK again
-- per statement), would raise 23514 instead of publish's 22023 and could not
-- apply pgfeed.publish_prefix. What a call
-- costs beyond its INSERT is the two regular expressions of the checks (the
-- EXISTS on an empty publish_prefix is nearly free), so the common case is one
-- IF over both (valid_channel_name and valid_event_type, inlined),
-- check_channel_name and check_event_type running only to say which failed; returning nothing saves the RETURNING.
CREATE OR REPLACE FUNCTION pgfeed.enqueue(p_channel text, p_type text, p_data jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- In pgfeed.publish's order, so a call that breaks two rules fails alike.
    IF EXISTS (SELECT FROM pgfeed.publish_prefix) THEN
        PERFORM pgfeed.check_may_publish((SELECT r.oid FROM pg_catalog.pg_roles r
                                           WHERE r.rolname = session_user), p_channel);
    END IF;
    IF NOT (pgfeed.valid_channel_name(p_channel) AND pgfeed.valid_event_type(p_type)) THEN
        PERFORM pgfeed.check_event_type(p_type);
        PERFORM pgfeed.check_channel_name(p_channel);
    END IF;
    INSERT INTO pgfeed.outbox (channel, type, data)
    VALUES (p_channel, p_type, coalesce(p_data, '{}'));
END
$$;
COMMENT ON FUNCTION pgfeed.enqueue(text, text, jsonb) IS
'Queues an event for channel p_channel and returns nothing: its version is given after the transaction commits, when pgfeed.sequence moves the event into '
'the feed (a running pgfeed does that every --sequence-ms; without one, events wait in the '
'outbox). Versions stay gapless and visible in version order; events of one transaction get '
'ascending versions in the order they were enqueued. No channel lock and no NOTIFY in the '
'caller''s transaction, so concurrent producers of one channel do not wait for each other. '
'Same checks and errors as pgfeed.publish: 22023 for an invalid channel name or type; runs as '
'the pgfeed owner (SECURITY DEFINER), callers need EXECUTE (pgfeed_publisher); when '
'pgfeed.publish_prefix has rows, the session user must hold a prefix of p_channel, else 42501. '
'p_data SQL NULL is stored as {}. A rolled-back enqueue leaves nothing.';

-- Concurrent callers queue on an advisory lock (key 1885824613, 3; install
-- takes 1, prune 2, and fcgi/sequencer.c's session lock 4 says which pgfeed
-- process runs this): two batches taken side by side could give a later
-- enqueued row of one transaction its version before an earlier one.
--
-- The lock is taken before the DELETE's statement starts, so its snapshot
-- sees everything the previous batch committed and deletes nothing twice;
-- producers only insert, so nobody else touches the rows it deletes. Channel
-- rows are locked in byte order of their names (COLLATE "C"), as
-- pgfeed.publish asks of transactions that publish to several channels, so
-- only a publisher that takes them out of that order can deadlock with it
-- (PostgreSQL then aborts one; the rows stay queued). lock_timeout bounds the
-- wait for a channel row that a long publishing transaction holds: the batch
-- rolls back, its rows stay, and the caller tries again, so the responder
-- that runs this (on the connection it reads with) never stalls behind an
-- application's transaction for long.
--
-- Event times are clock_timestamp() of the INSERT, row by row in version
-- order, so times follow versions as they do for pgfeed.publish.
CREATE OR REPLACE FUNCTION pgfeed.sequence(p_limit integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '200ms'
AS $$
DECLARE
    v_channels text[];
    v_types text[];
    v_data jsonb[];
    v_names text[];
    v_counts integer[];
    v_heads bigint[] := '{}';
    v_head bigint;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 100000 THEN
        RAISE EXCEPTION 'pgfeed.sequence: the batch must be 1 to 100000 events, not %',
                        coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(1885824613, 3);

    WITH batch AS (
        DELETE FROM pgfeed.outbox
         WHERE id IN (SELECT o.id FROM pgfeed.outbox o ORDER BY o.id LIMIT p_limit)
        RETURNING id, channel, type, data
    )
    SELECT array_agg(channel ORDER BY id), array_agg(type ORDER BY id),
           array_agg(data ORDER BY id)
      INTO v_channels, v_types, v_data
      FROM batch;
    IF v_channels IS NULL THEN
        RETURN 0;
    END IF;

    SELECT array_agg(c.name ORDER BY c.name COLLATE "C"), array_agg(c.n ORDER BY c.name COLLATE "C")
      INTO v_names, v_counts
      FROM (SELECT u.name, count(*)::integer AS n FROM unnest(v_channels) AS u (name)
             GROUP BY u.name) c;
    FOR i IN 1 .. cardinality(v_names) LOOP
        UPDATE pgfeed.channel SET head = head + v_counts[i] WHERE name = v_names[i]
        RETURNING head INTO v_head;
        IF NOT FOUND THEN
            PERFORM pgfeed.ensure_channel(v_names[i]);
            UPDATE pgfeed.channel SET head = head + v_counts[i] WHERE name = v_names[i]
            RETURNING head INTO v_head;
        END IF;
        v_heads := v_heads || v_head;
    END LOOP;

    -- The k-th event of a channel in id order gets head_before + k.
    INSERT INTO pgfeed.event (channel, version, type, data)
    SELECT b.channel, h.head - h.n + row_number() OVER (PARTITION BY b.channel ORDER BY b.k),
           b.type, b.data
      FROM unnest(v_channels, v_types, v_data) WITH ORDINALITY AS b (channel, type, data, k)
      JOIN unnest(v_names, v_heads, v_counts) AS h (name, head, n) ON h.name = b.channel
     ORDER BY b.k;

    -- One notification per channel, naming its last version (see append_many).
    PERFORM pg_notify('pgfeed', h.head || ' ' || h.name)
       FROM unnest(v_names, v_heads) AS h (name, head);
    RETURN cardinality(v_channels);
END
$$;
COMMENT ON FUNCTION pgfeed.sequence(integer) IS
'Moves up to p_limit (1 to 100000) committed events from pgfeed.outbox, in id order, into '
'their channels (created on first use): per channel consecutive versions after its head, one '
'head update and one NOTIFY "<last version> <channel>"; returns how many it moved. Concurrent '
'calls wait for each other. A running pgfeed calls it every --sequence-ms; call it by hand '
'only where no pgfeed runs. Waits at most 200 ms for a channel row another transaction holds, '
'then raises 55P03 (lock_not_available) and leaves the rows queued. Runs as the pgfeed owner '
'(SECURITY DEFINER): callers need EXECUTE (pgfeed_reader, pgfeed_owner).';

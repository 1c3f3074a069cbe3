-- prune.sql — applying the retention policies.
--
-- Locking. Publishers hold a channel's row lock from their UPDATE of head to
-- their commit, and a row lock taken here would stay until prune's own commit.
-- So prune first deletes, for every channel, without touching channel rows:
-- it only removes versions below a target computed from a snapshot
-- (target <= that snapshot's head + 1), and publishers only add versions
-- above head, so nobody else writes those rows. Only then does it lock the
-- rows of the channels it pruned, in byte order of their names (COLLATE "C"),
-- and raise their `oldest`. That waits for publish transactions already in
-- flight on those channels, and from then to prune's commit their publishers
-- wait in turn: run `SELECT pgfeed.prune()` as a transaction of its own so
-- that stays short. The deletes and the new `oldest` commit together, so a
-- reader sees either the old events with the old oldest or neither.
--
-- Concurrent prunes queue on an advisory lock (key 1885824613, 2) instead of
-- deleting the same rows. Because channel rows are locked in name order, only
-- a transaction that publishes to several channels out of that order can
-- deadlock with prune; PostgreSQL then aborts one of the two.
--
-- It runs as the pgfeed owner (SECURITY DEFINER, pinned search_path): callers
-- need EXECUTE (pgfeed_pruner) and no table privilege. pgfeed.pruning = on
-- while it deletes tells reset.sql's trigger that these deletions are
-- announced on pgfeed_pruned, not as resets. (A SET clause would say it more
-- simply, but PostgreSQL 15 lets only superusers put a custom setting there.)
CREATE OR REPLACE FUNCTION pgfeed.prune()
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_channel record;
    v_target bigint;
    v_first_young bigint;
    v_count bigint;
    v_deleted bigint := 0;
    v_names text[] := '{}';
    v_targets bigint[] := '{}';
BEGIN
    PERFORM pg_advisory_xact_lock(1885824613, 2);
    PERFORM set_config('pgfeed.pruning', 'on', true);

    FOR v_channel IN
        SELECT name, head, oldest, keep_events, keep_for
          FROM pgfeed.channel
         WHERE keep_events IS NOT NULL OR keep_for IS NOT NULL
         ORDER BY name COLLATE "C"
    LOOP
        v_target := v_channel.oldest;
        IF v_channel.keep_events IS NOT NULL THEN
            v_target := greatest(v_target, v_channel.head - v_channel.keep_events + 1);
        END IF;
        IF v_channel.keep_for IS NOT NULL THEN
            -- Walks the primary key from the oldest event and stops at the
            -- first young one: cost grows with what is deleted, not with
            -- what is kept. Everything before it goes, so what stays is
            -- always a gapless run of versions up to head.
            SELECT e.version INTO v_first_young
              FROM pgfeed.event e
             WHERE e.channel = v_channel.name
               AND e.version <= v_channel.head
               AND e.time >= now() - v_channel.keep_for
             ORDER BY e.version
             LIMIT 1;
            v_target := greatest(v_target, coalesce(v_first_young, v_channel.head + 1));
        END IF;
        CONTINUE WHEN v_target <= v_channel.oldest;

        DELETE FROM pgfeed.event e WHERE e.channel = v_channel.name AND e.version < v_target;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_deleted := v_deleted + v_count;
        v_names := v_names || v_channel.name;
        v_targets := v_targets || v_target;
    END LOOP;

    IF cardinality(v_names) > 0 THEN
        PERFORM 1 FROM pgfeed.channel
          WHERE name = ANY (v_names)
          ORDER BY name COLLATE "C"
            FOR NO KEY UPDATE;
        UPDATE pgfeed.channel c
           SET oldest = greatest(c.oldest, t.target)
          FROM unnest(v_names, v_targets) AS t (name, target)
         WHERE c.name = t.name;
        -- Tells responders to drop the pruned events they cache, at commit, so
        -- a pruned cursor is answered as gone everywhere at once.
        PERFORM pg_notify('pgfeed_pruned', t.target || ' ' || t.name)
           FROM unnest(v_names, v_targets) AS t (name, target);
    END IF;
    PERFORM set_config('pgfeed.pruning', 'off', true);
    RETURN v_deleted;
END
$$;
COMMENT ON FUNCTION pgfeed.prune() IS
'Deletes the events that each channel''s retention (keep_events, keep_for) no longer keeps, '
'raises the channels'' oldest accordingly (head + 1 when none is left; channels themselves '
'are never deleted) and returns the number of events deleted. Run it periodically (cron, '
'pg_cron) as a transaction of its own: it locks the pruned channels'' rows only for its last '
'statement, so publishers wait at most from then to its commit. Concurrent calls queue. '
'At commit it sends NOTIFY on channel "pgfeed_pruned" with payload "<new oldest> <channel>" '
'for every pruned channel. Runs as the pgfeed owner: callers need only EXECUTE.';

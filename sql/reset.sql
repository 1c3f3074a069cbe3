-- reset.sql — telling responders that stored events went away other than by
-- pruning, so none keeps serving them from memory.
--
-- Responders cache recent events and learn of changes only by NOTIFY. Events
-- deleted by hand (a data-protection request), a channel deleted (and perhaps
-- re-created) or reset (its head moved back) send "<epoch> <channel>" on
-- PostgreSQL channel "pgfeed_reset" at commit ("0 *" after a TRUNCATE: every
-- channel). A responder then re-reads the channel; when its epoch changed, the
-- clients following it are answered as for a gone cursor. pgfeed.prune
-- deletes with pgfeed.pruning set and says what it pruned on "pgfeed_pruned".

-- AFTER UPDATE of a head that moves back: a new incarnation. AFTER DELETE of
-- a channel: it is gone (epoch 0).
--
-- AFTER, not BEFORE: a BEFORE ROW trigger on pgfeed.channel makes every
-- UPDATE of head, which is every publish, fetch and lock the row for the
-- trigger first (a second tuple lock, a second WAL record, and under
-- contention a second wait), although the WHEN clause almost never holds.
-- An AFTER trigger whose WHEN is false costs nearly nothing, and the rare
-- reset pays for one more UPDATE, in the same transaction, that gives the
-- row its new epoch: readers see the moved head and the new epoch together.
CREATE OR REPLACE FUNCTION pgfeed.channel_reset_trigger()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_epoch bigint;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        UPDATE pgfeed.channel SET epoch = nextval('pgfeed.channel_epoch')
         WHERE name = NEW.name
        RETURNING epoch INTO v_epoch;
        PERFORM pg_notify('pgfeed_reset', v_epoch || ' ' || NEW.name);
        RETURN NULL;
    END IF;
    -- Its events go with it (migrations/0004 dropped the foreign key that
    -- refused this), so a channel re-created under the name starts clean.
    DELETE FROM pgfeed.event WHERE channel = OLD.name;
    PERFORM pg_notify('pgfeed_reset', '0 ' || OLD.name);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION pgfeed.channel_reset_trigger() IS
'Trigger on pgfeed.channel: a head moved back gets a new epoch; a reset or a deleted channel '
'sends NOTIFY pgfeed_reset "<epoch> <channel>"; a deleted channel''s events are deleted '
'(internal).';

CREATE OR REPLACE TRIGGER pgfeed_channel_reset
    AFTER UPDATE OF head ON pgfeed.channel
    FOR EACH ROW WHEN (NEW.head < OLD.head)
    EXECUTE FUNCTION pgfeed.channel_reset_trigger();
CREATE OR REPLACE TRIGGER pgfeed_channel_deleted
    AFTER DELETE ON pgfeed.channel
    FOR EACH ROW EXECUTE FUNCTION pgfeed.channel_reset_trigger();

-- TRUNCATE of the channels takes every event with it. Before migration 0004
-- the foreign key refused a TRUNCATE of pgfeed.channel alone; without it the
-- events would stay, and a channel re-created under an old name would meet
-- its predecessor's versions (its first publish would collide with them).
-- The event table's own TRUNCATE trigger then tells responders ("0 *").
--
-- Events waiting in pgfeed.outbox go too: they were committed for the
-- channels being truncated, and sequenced afterwards they would become the
-- first versions of channels that start over, events of the old feeds served
-- as the new ones'. A TRUNCATE of pgfeed.channel is "start from nothing"; to
-- keep what is queued, delete the channels instead (a deleted channel's
-- queued events re-create it when they are sequenced).
CREATE OR REPLACE FUNCTION pgfeed.channel_truncated_trigger()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    TRUNCATE pgfeed.event, pgfeed.outbox;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION pgfeed.channel_truncated_trigger() IS
'Trigger on pgfeed.channel: TRUNCATE of the channels truncates their events and the events '
'waiting in pgfeed.outbox too (internal).';

CREATE OR REPLACE TRIGGER pgfeed_channel_truncated
    AFTER TRUNCATE ON pgfeed.channel
    FOR EACH STATEMENT EXECUTE FUNCTION pgfeed.channel_truncated_trigger();

-- One notification per channel and transaction: PostgreSQL folds identical
-- payloads of one transaction into one.
CREATE OR REPLACE FUNCTION pgfeed.event_deleted_trigger()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('pgfeed_reset', '0 *');
    ELSE
        PERFORM pg_notify('pgfeed_reset',
                          coalesce((SELECT c.epoch FROM pgfeed.channel c
                                     WHERE c.name = OLD.channel), 0) || ' ' || OLD.channel);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION pgfeed.event_deleted_trigger() IS
'Trigger on pgfeed.event: an event deleted other than by pgfeed.prune sends NOTIFY '
'pgfeed_reset "<epoch> <channel>"; TRUNCATE sends "0 *" (internal).';

CREATE OR REPLACE TRIGGER pgfeed_event_deleted
    AFTER DELETE ON pgfeed.event
    FOR EACH ROW WHEN (current_setting('pgfeed.pruning', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION pgfeed.event_deleted_trigger();
CREATE OR REPLACE TRIGGER pgfeed_event_truncated
    AFTER TRUNCATE ON pgfeed.event
    FOR EACH STATEMENT EXECUTE FUNCTION pgfeed.event_deleted_trigger();

-- 0004_faster_publish.sql — events no longer carry a foreign key to their
-- channel, and a channel's head update no longer re-checks its name.
--
-- Runs once per database (see install.sql), as the installing role. Never
-- edit it after release: change the schema in a new migration.
--
-- Why. The foreign key made every published event run a referential check:
-- an AFTER trigger per row that looked the channel up again and locked its
-- row FOR KEY SHARE (one more query, one more lock record in the WAL), on a
-- row pgfeed.append had locked a moment before by updating its head. Measured
-- with tests/bench/run.sh publish, that check was the largest part of what a
-- publish cost beyond a plain INSERT (BENCHMARKS.md, "Publishing"). What it
-- guarded still holds: only the pgfeed owner writes pgfeed.event, and only
-- pgfeed.append and pgfeed.append_many insert there, each in the statement
-- that takes its version from the channel row. What it also did, refusing to
-- delete a channel that still has events, is now a cascade: reset.sql's
-- trigger deletes a deleted channel's events, so a channel re-created under
-- the same name never meets its predecessor's versions.
DO $$
DECLARE
    v_constraint name;
BEGIN
    FOR v_constraint IN
        SELECT c.conname FROM pg_catalog.pg_constraint c
         WHERE c.conrelid = 'pgfeed.event'::regclass AND c.contype = 'f'
           AND c.confrelid = 'pgfeed.channel'::regclass
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE pgfeed.event DROP CONSTRAINT %I', v_constraint);
    END LOOP;
END
$$;
-- PostgreSQL evaluates every CHECK constraint of a table on every UPDATE,
-- whatever the UPDATE changed, and reads and compiles each constraint's
-- expression again for every statement: for a publish that was the name's
-- regular expression and four more, about a fifth of what the head update
-- cost. A publish changes head only, so the checks of columns it never
-- touches (name, keep_events, keep_for) move to channel.sql's AFTER trigger,
-- which fires only when one of those columns is written; what depends on head
-- stays a CHECK, as one constraint instead of two.
ALTER TABLE pgfeed.channel
    DROP CONSTRAINT IF EXISTS channel_name_valid,
    DROP CONSTRAINT IF EXISTS channel_keep_events_check,
    DROP CONSTRAINT IF EXISTS channel_keep_for_check,
    DROP CONSTRAINT IF EXISTS channel_head_check,
    DROP CONSTRAINT IF EXISTS channel_oldest_valid,
    ADD CONSTRAINT channel_head_valid CHECK (head >= 0 AND oldest BETWEEN 1 AND head + 1);
-- The same per INSERT of an event: one constraint instead of two.
ALTER TABLE pgfeed.event
    DROP CONSTRAINT IF EXISTS event_version_check,
    DROP CONSTRAINT IF EXISTS event_type_check,
    ADD CONSTRAINT event_valid CHECK (version >= 1 AND type <> '' AND length(type) <= 128);

COMMENT ON TABLE pgfeed.event IS
'One published event. (channel, version) is the primary key that pgfeed.read range-scans. '
'Only pgfeed.append and pgfeed.append_many insert here, in the statement that takes the '
'version from the channel row; deleting a channel deletes its events.';

INSERT INTO pgfeed.schema_version (version, description)
VALUES (4, 'no foreign key from event to channel (a deleted channel''s events go with it); '
           'channel name and retention checked by trigger when written');

-- 0005_outbox.sql — the outbox: events committed by their producers and
-- given their versions later, by one sequencer (sql/outbox.sql).
--
-- Runs once per database (see install.sql), as the installing role. Never
-- edit it after release: change the schema in a new migration.
--
-- Why. pgfeed.publish takes the next version by updating the channel row and
-- holds that row lock to its commit, so one channel's publishers commit one at
-- a time, and its NOTIFY takes the lock every notifying commit of the cluster
-- shares (BENCHMARKS.md, "Publishing"). pgfeed.enqueue only INSERTs here: no
-- row is shared, nothing is notified, so producers commit side by side (group
-- commit). pgfeed.sequence moves committed rows into pgfeed.event in batches,
-- one head update, one INSERT and one NOTIFY per channel per batch.
CREATE TABLE pgfeed.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel text NOT NULL,
    type text NOT NULL,
    data jsonb NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT now()
);
-- Its identity sequence follows the table to the owner.
ALTER TABLE pgfeed.outbox OWNER TO pgfeed_owner;
COMMENT ON TABLE pgfeed.outbox IS
'Events enqueued by pgfeed.enqueue (and tracked tables with p_via => ''outbox'') that no '
'version was given yet. pgfeed.sequence moves committed rows, in id order, into pgfeed.event. '
'Only the pgfeed owner writes it, through those functions, which validate every row first '
'(an invalid row would stop every later batch). Empty while a sequencer keeps up; rows wait '
'here while no pgfeed process runs.';
COMMENT ON COLUMN pgfeed.outbox.id IS
'Order of enqueueing within a session; the sequencer gives versions in id order.';
COMMENT ON COLUMN pgfeed.outbox.enqueued_at IS
'The enqueuing transaction''s start (now()); the event''s time is set when it is sequenced.';

-- pgfeed.track gained p_via (publish or outbox): the function files only
-- CREATE OR REPLACE, which cannot add a parameter without making an overload.
DROP FUNCTION IF EXISTS pgfeed.track(regclass, text);

INSERT INTO pgfeed.schema_version (version, description)
VALUES (5, 'outbox: pgfeed.enqueue commits without the channel lock; pgfeed.sequence '
           'gives versions later');

-- 0001_tables.sql — channels, events and the retention defaults.
--
-- Runs once per database (see install.sql). Never edit it after release:
-- change the schema in a new migration.

-- Retention given to channels when they are created (by pgfeed.publish,
-- pgfeed.set_retention or pgfeed.ensure_channel). Exactly one row.
CREATE TABLE pgfeed.setting (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    keep_events integer CHECK (keep_events >= 0),
    keep_for interval CHECK (keep_for > interval '0')
);
INSERT INTO pgfeed.setting (keep_events, keep_for) VALUES (10000, NULL);
COMMENT ON TABLE pgfeed.setting IS
'The default retention copied into each new channel (NULL = no limit). '
'Change it with pgfeed.set_default_retention().';

-- A feed. Publishers update `head` (the row lock taken there serializes one
-- channel's publishers, so versions become visible in order); pgfeed.prune
-- raises `oldest`. HOT updates of head stay on the page with some free room.
CREATE TABLE pgfeed.channel (
    name text PRIMARY KEY
        CONSTRAINT channel_name_valid CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
    head bigint NOT NULL DEFAULT 0 CHECK (head >= 0),
    oldest bigint NOT NULL DEFAULT 1,
    keep_events integer CHECK (keep_events >= 0),
    keep_for interval CHECK (keep_for > interval '0'),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT channel_oldest_valid CHECK (oldest BETWEEN 1 AND head + 1)
) WITH (fillfactor = 70);
COMMENT ON TABLE pgfeed.channel IS
'A feed: its last version (head), its oldest retained version (head + 1 when it retains '
'no event) and its retention policy. A client cursor c is gone when c < oldest - 1.';
COMMENT ON COLUMN pgfeed.channel.head IS 'The last version published; 0 before the first event.';
COMMENT ON COLUMN pgfeed.channel.oldest IS
'The smallest retained version, head + 1 when no event is retained. Only pgfeed.prune raises it.';
COMMENT ON COLUMN pgfeed.channel.keep_events IS
'Retain at most this many latest events; NULL = no limit.';
COMMENT ON COLUMN pgfeed.channel.keep_for IS
'Retain events younger than this; NULL = no age limit.';

-- Events of a channel: versions 1..head minus those pruned, gapless.
CREATE TABLE pgfeed.event (
    channel text NOT NULL REFERENCES pgfeed.channel (name),
    version bigint NOT NULL CHECK (version >= 1),
    type text NOT NULL CHECK (type <> '' AND length(type) <= 128),
    data jsonb NOT NULL DEFAULT '{}',
    time timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (channel, version)
);
COMMENT ON TABLE pgfeed.event IS
'One published event. (channel, version) is the primary key that pgfeed.read range-scans.';
COMMENT ON COLUMN pgfeed.event.time IS
'When it was published: clock_timestamp() after the channel lock was taken, so times '
'follow version order within a channel (barring clock steps).';

INSERT INTO pgfeed.schema_version (version, description)
VALUES (1, 'channel, event and setting tables');

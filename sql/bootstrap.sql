-- bootstrap.sql — the pgfeed schema and its migration ledger.
--
-- Runs on every install before the migrations, so it may only use
-- IF NOT EXISTS forms and statements that repeat harmlessly.

CREATE SCHEMA IF NOT EXISTS pgfeed;
COMMENT ON SCHEMA pgfeed IS
'pgfeed: versioned change feeds served to browsers (short poll, long poll, SSE). '
'Publish with pgfeed.publish() or pgfeed.track(); the responder reads with pgfeed.read(). '
'Owned by role pgfeed_owner; nobody else has table privileges. Grant pgfeed_reader to the '
'responder''s login, pgfeed_publisher to roles that publish or track tables, pgfeed_pruner to '
'whoever runs pgfeed.prune() (see sql/grants.sql).';

CREATE TABLE IF NOT EXISTS pgfeed.schema_version (
    version integer PRIMARY KEY,
    description text NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pgfeed.schema_version IS
'One row per applied migration of sql/migrations/; the schema version is max(version).';

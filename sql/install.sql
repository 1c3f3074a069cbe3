-- install.sql — installs or upgrades pgfeed in the current database.
--
--     psql -v ON_ERROR_STOP=1 -f sql/install.sql          (add -d, -h, ... as usual)
--
-- This is the only file to run; it pulls in the others with \ir (so it needs
-- psql 10 or later). Running it again changes nothing, and two sessions running
-- it at once are serialized, so deploy scripts may run it unconditionally.
--
-- How it stays idempotent:
--   * Everything happens in one transaction: a failure leaves the database as
--     it was.
--   * An advisory lock (key 1885824613, 1; 1885824613 is 'pgfe' in ASCII) makes
--     a second concurrent install wait; it then sees the first one's work.
--     The other sub-keys: 2 pgfeed.prune, 3 pgfeed.sequence (a transaction
--     lock), 4 the pgfeed process that runs the sequencer (a session lock,
--     fcgi/sequencer.c).
--   * Tables, indexes and other stateful objects are created by numbered
--     migrations in migrations/. pgfeed.schema_version records each one applied;
--     a migration runs only when its number is missing there.
--   * Functions live in one file per job and are re-created with CREATE OR
--     REPLACE on every run, which leaves them as they were when nothing changed.
--
-- Who runs it: a superuser, or a role that may create roles (roles.sql creates
-- pgfeed_owner, pgfeed_reader, pgfeed_publisher and pgfeed_pruner when missing
-- and makes the installer a member of pgfeed_owner). Migrations run as the
-- installer; everything after them as pgfeed_owner, which so owns every
-- function (the SECURITY DEFINER ones run as it). search_path is pinned to
-- pg_catalog, pg_temp for the whole run: SQL-standard function bodies resolve
-- their names now, once, and nothing of the installer's path leaks into them.
--
-- Adding a migration: write migrations/NNNN_what.sql (it must end by inserting
-- its row into pgfeed.schema_version), add an \if block for it below, and raise
-- pgfeed_schema_version. If it changes a function's signature or return type,
-- DROP the old function there: the function files only CREATE OR REPLACE.

\set ON_ERROR_STOP 1
-- The newest migration this file knows.
\set pgfeed_schema_version 5

BEGIN ISOLATION LEVEL READ COMMITTED;
-- Keep re-runs quiet: "already exists, skipping" notices are expected.
SET LOCAL client_min_messages = warning;
SET LOCAL search_path = pg_catalog, pg_temp;
DO $$ BEGIN PERFORM pg_advisory_xact_lock(1885824613, 1); END $$;

\ir roles.sql
\ir bootstrap.sql

-- Refuse to downgrade: older function files would replace newer ones.
SELECT coalesce(max(version), 0) > :pgfeed_schema_version AS pgfeed_too_new
  FROM pgfeed.schema_version \gset
\if :pgfeed_too_new
DO $$ BEGIN
    RAISE EXCEPTION 'pgfeed: this database has a newer pgfeed schema than this install.sql'
        USING HINT = 'Install from the pgfeed release that created it, or a later one.';
END $$;
\endif

-- Migrations, in order; each runs once per database.
SELECT NOT EXISTS (SELECT FROM pgfeed.schema_version WHERE version = 1) AS pgfeed_migrate \gset
\if :pgfeed_migrate
\ir migrations/0001_tables.sql
\endif
SELECT NOT EXISTS (SELECT FROM pgfeed.schema_version WHERE version = 2) AS pgfeed_migrate \gset
\if :pgfeed_migrate
\ir migrations/0002_least_privilege.sql
\endif
SELECT NOT EXISTS (SELECT FROM pgfeed.schema_version WHERE version = 3) AS pgfeed_migrate \gset
\if :pgfeed_migrate
\ir migrations/0003_authorize.sql
\endif
SELECT NOT EXISTS (SELECT FROM pgfeed.schema_version WHERE version = 4) AS pgfeed_migrate \gset
\if :pgfeed_migrate
\ir migrations/0004_faster_publish.sql
\endif
SELECT NOT EXISTS (SELECT FROM pgfeed.schema_version WHERE version = 5) AS pgfeed_migrate \gset
\if :pgfeed_migrate
\ir migrations/0005_outbox.sql
\endif

SET LOCAL ROLE pgfeed_owner;

-- Functions, re-created on every run. channel.sql comes first: the others
-- call its checks.
\ir channel.sql
\ir publish.sql
\ir outbox.sql
\ir read.sql
\ir track.sql
\ir prune.sql
\ir reset.sql
\ir grants.sql

COMMIT;

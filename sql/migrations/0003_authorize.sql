-- 0003_authorize.sql — the default pgfeed.authorize: it says no.
--
-- pgfeed --authorize-sql asks pgfeed.authorize(principal, channel) about each
-- channel that none of its rules (--allow, --allow-user, a token's channels
-- claim) allowed. The function belongs to the application: this migration only
-- puts a default in place, once, and only if the application has not defined
-- one already; install.sql never re-creates it, so re-installing or upgrading
-- pgfeed keeps the application's own. sql/authorize.sql is an example to adapt.
DO $$
BEGIN
    IF to_regprocedure('pgfeed.authorize(text, text)') IS NULL THEN
        CREATE FUNCTION pgfeed.authorize(principal text, channel text)
        RETURNS boolean
        LANGUAGE sql STABLE
        SET search_path = pg_catalog
        AS 'SELECT false';
        COMMENT ON FUNCTION pgfeed.authorize(text, text) IS
        'May principal read channel? Asked by pgfeed --authorize-sql for channels no rule '
        'allowed; answers are cached for --auth-cache-ttl seconds. This default denies '
        'everything: replace it with the application''s own (see sql/authorize.sql).';
        -- The responder asks it; nobody else needs to. It stays the
        -- application's (owned by whoever installs), so it reads the
        -- application's tables with the application's rights, and an
        -- application's CREATE OR REPLACE keeps these grants.
        REVOKE ALL ON FUNCTION pgfeed.authorize(text, text) FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION pgfeed.authorize(text, text) TO pgfeed_reader;
    END IF;
END $$;

INSERT INTO pgfeed.schema_version (version, description)
VALUES (3, 'default pgfeed.authorize (denies everything)');

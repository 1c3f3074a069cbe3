-- grants.sql — who may do what, set again on every install.
--
-- Nobody but pgfeed_owner has a privilege on pgfeed's tables, except that
-- readers SELECT the two that pgfeed.read reads (it must run with the
-- caller's rights to stay inlinable). Every function starts with no EXECUTE
-- for PUBLIC and gets it per role; the writing ones are SECURITY DEFINER, so
-- EXECUTE is all a caller needs. The README's "Roles and grants" shows how to
-- hand the roles to login roles.
REVOKE ALL ON SCHEMA pgfeed FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgfeed FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgfeed FROM PUBLIC;
-- pgfeed_owner's functions only: pgfeed.authorize is the application's (see
-- the migration that made it), and a REVOKE on it would only warn.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'pgfeed'::regnamespace
                AND p.proowner = 'pgfeed_owner'::regrole LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END $$;
-- Functions a later release adds start the same way.
ALTER DEFAULT PRIVILEGES FOR ROLE pgfeed_owner IN SCHEMA pgfeed
    REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- The responder.
GRANT USAGE ON SCHEMA pgfeed TO pgfeed_reader;
GRANT SELECT ON pgfeed.channel, pgfeed.event TO pgfeed_reader;
GRANT EXECUTE ON FUNCTION pgfeed.read(text, bigint, integer) TO pgfeed_reader;
-- The responder also runs the sequencer (fcgi/sequencer.c). pgfeed.sequence
-- can only move rows that producers already committed into the feed, in
-- order and each once, the job the responder is trusted with anyway: it adds,
-- drops and changes nothing that a publisher did not ask for, so the role
-- that reads may call it.
GRANT EXECUTE ON FUNCTION pgfeed.sequence(integer) TO pgfeed_reader;
-- pgfeed --authorize-sql also asks pgfeed.authorize, which belongs to the
-- application: migrations/0003_authorize.sql grants it to pgfeed_reader.

-- Applications that publish, directly or from tracked tables (pgfeed.track
-- runs as its caller, who must own the table; the trigger it installs runs
-- as pgfeed_owner, so writers of the table need nothing from pgfeed).
GRANT USAGE ON SCHEMA pgfeed TO pgfeed_publisher;
GRANT EXECUTE ON FUNCTION pgfeed.publish(text, text, jsonb),
    pgfeed.publish_many(text, text, jsonb[]), pgfeed.enqueue(text, text, jsonb),
    pgfeed.track(regclass, text, text),
    pgfeed.untrack(regclass), pgfeed.track_trigger(), pgfeed.template_parts(text),
    pgfeed.valid_channel_name(text) TO pgfeed_publisher;

-- Whoever runs retention (the responder does, every --prune-interval).
GRANT USAGE ON SCHEMA pgfeed TO pgfeed_pruner;
GRANT EXECUTE ON FUNCTION pgfeed.prune() TO pgfeed_pruner;

-- pgfeed.set_retention and pgfeed.set_default_retention change what is kept
-- for everyone: only the owner (and roles it is granted to) may call them.

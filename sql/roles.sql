-- roles.sql — the four pgfeed roles, created when missing.
--
-- Roles belong to the cluster, not the database, so this runs on every
-- install and only creates what is not there; two installs into different
-- databases of one cluster may race, and the loser finds the role made.
-- None can log in: grant them to the login roles that need them (README,
-- "Roles and grants"; grants.sql gives each role its privileges):
--   pgfeed_owner      owns the schema, tables and functions; the SECURITY
--                     DEFINER functions run as it. Grant it to no application.
--   pgfeed_reader     for the responder: pgfeed.read and nothing else.
--   pgfeed_publisher  pgfeed.publish, pgfeed.track and pgfeed.untrack.
--   pgfeed_pruner     pgfeed.prune.
-- The installing role must be able to create roles (or they must exist) and
-- becomes a member of pgfeed_owner, so that it can install and upgrade.
DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['pgfeed_owner', 'pgfeed_reader', 'pgfeed_publisher',
                                  'pgfeed_pruner'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- created meanwhile by an install into another database
            END;
        END IF;
    END LOOP;
    IF NOT pg_catalog.pg_has_role(current_user, 'pgfeed_owner', 'MEMBER') THEN
        EXECUTE format('GRANT pgfeed_owner TO %I', current_user);
    END IF;
END
$$;

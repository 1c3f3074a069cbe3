-- 0002_least_privilege.sql — channel epochs, publishing rules, and the
-- pgfeed owner role taking over every pgfeed object.
--
-- Runs once per database (see install.sql), as the installing role, before
-- install.sql switches to pgfeed_owner (roles.sql created it). Never edit it
-- after release: change the schema in a new migration.

-- Which incarnation of a channel a row is. A channel deleted and re-created
-- gets a new one from the default; a head moved back (a reset by hand) gets
-- one from the trigger in reset.sql. Responders compare it on every read, so
-- a reset is noticed even when its notification was missed.
CREATE SEQUENCE pgfeed.channel_epoch;
COMMENT ON SEQUENCE pgfeed.channel_epoch IS
'Source of pgfeed.channel.epoch: one value per channel incarnation.';
ALTER TABLE pgfeed.channel
    ADD COLUMN epoch bigint NOT NULL DEFAULT nextval('pgfeed.channel_epoch');
COMMENT ON COLUMN pgfeed.channel.epoch IS
'Identifies this incarnation of the channel: new when the channel is created (also after '
'being deleted) and whenever its head is moved back. Cursors of another epoch are void.';

-- pgfeed.read's result gained the epoch column: its files only CREATE OR REPLACE.
DROP FUNCTION IF EXISTS pgfeed.read(text, bigint, integer);

CREATE TABLE pgfeed.publish_prefix (
    role name NOT NULL,
    prefix text NOT NULL CHECK (prefix <> '' AND length(prefix) <= 128),
    PRIMARY KEY (role, prefix)
);
COMMENT ON TABLE pgfeed.publish_prefix IS
'Optional publishing rules. Empty (the default): EXECUTE on pgfeed.publish is the whole rule. '
'Once it has a row, a role (the session user for pgfeed.publish, the table owner for tracked '
'tables) may only publish to channels starting with a prefix listed for it or for a role it is '
'a member of; superusers and members of pgfeed_owner are exempt. Written by the pgfeed owner.';
COMMENT ON COLUMN pgfeed.publish_prefix.role IS 'A role name (membership counts).';
COMMENT ON COLUMN pgfeed.publish_prefix.prefix IS
'A channel name prefix, e.g. ''user:'' or ''orders'' (a whole name is a prefix of itself).';

-- Before 0002 the functions ran with the caller's rights and the documented
-- grants gave publishers INSERT and UPDATE on pgfeed's tables; with those
-- they could forge events, make holes, force clients to "gone" and change
-- retention. Take every such privilege back (whoever granted it), and give
-- every pgfeed object to the owner role.
DO $$
DECLARE
    v_object record;
BEGIN
    EXECUTE 'ALTER SCHEMA pgfeed OWNER TO pgfeed_owner';
    FOR v_object IN
        SELECT c.oid::regclass AS rel, c.relkind, a.grantee
          FROM pg_catalog.pg_class c
          LEFT JOIN LATERAL pg_catalog.aclexplode(c.relacl) a ON a.grantee <> c.relowner
         WHERE c.relnamespace = 'pgfeed'::regnamespace AND c.relkind IN ('r', 'p', 'S')
    LOOP
        IF v_object.grantee IS NOT NULL THEN
            EXECUTE format('REVOKE ALL ON %s FROM %s', v_object.rel,
                           CASE WHEN v_object.grantee = 0 THEN 'PUBLIC'
                                ELSE quote_ident(pg_catalog.pg_get_userbyid(v_object.grantee)) END);
        END IF;
    END LOOP;
    FOR v_object IN
        SELECT c.oid::regclass AS rel, c.relkind
          FROM pg_catalog.pg_class c
         WHERE c.relnamespace = 'pgfeed'::regnamespace AND c.relkind IN ('r', 'p', 'S', 'v')
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO pgfeed_owner',
                       CASE v_object.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                                             ELSE 'TABLE' END, v_object.rel);
    END LOOP;
    FOR v_object IN
        SELECT p.oid::regprocedure AS fn FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'pgfeed'::regnamespace
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO pgfeed_owner', v_object.fn);
    END LOOP;
END
$$;

INSERT INTO pgfeed.schema_version (version, description)
VALUES (2, 'channel epochs, publish prefixes, pgfeed_owner owns everything, no table grants');

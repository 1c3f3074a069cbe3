-- publish.sql — appending an event to a channel, and who may.
--
-- Privileges. Nobody but the pgfeed owner role writes pgfeed's tables:
-- pgfeed.publish is SECURITY DEFINER, owned by pgfeed_owner, with a pinned
-- search_path (pg_catalog, pg_temp; every pgfeed object is named with its
-- schema), so a caller needs EXECUTE on it and nothing else, and its own
-- search_path cannot redirect a single name inside. pgfeed.append does the
-- work for publish and for the track trigger; only the owner may call it.

-- Versions come from the channel row, never from a sequence. The UPDATE below
-- takes the row lock and holds it to commit, so a second publisher of the same
-- channel waits for the first to commit (or roll back) before it can take the
-- next number: one channel's versions are gapless and become visible in
-- version order, and a reader that has seen version N can never later be
-- handed an N' < N. A rolled-back publish rolls its increment back too, so its
-- number is reused and no gap appears. Different channels never wait on each
-- other.
--
-- The common case (the channel exists) is one UPDATE; only the first publish
-- to a channel pays for ensure_channel and a second UPDATE.
CREATE OR REPLACE FUNCTION pgfeed.append(p_channel text, p_type text, p_data jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_version bigint;
BEGIN
    IF p_type IS NULL OR p_type = '' OR length(p_type) > 128 OR p_type ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'pgfeed: invalid event type %', coalesce(quote_literal(p_type), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'An event type is 1 to 128 characters without control characters.';
    END IF;

    UPDATE pgfeed.channel SET head = head + 1 WHERE name = p_channel RETURNING head INTO v_version;
    IF NOT FOUND THEN
        PERFORM pgfeed.ensure_channel(p_channel);
        UPDATE pgfeed.channel SET head = head + 1 WHERE name = p_channel
        RETURNING head INTO v_version;
    END IF;

    INSERT INTO pgfeed.event (channel, version, type, data)
    VALUES (p_channel, v_version, p_type, coalesce(p_data, '{}'));

    -- Delivered at commit, dropped on rollback; at most 19 + 1 + 128 bytes.
    PERFORM pg_notify('pgfeed', v_version || ' ' || p_channel);
    RETURN v_version;
END
$$;
COMMENT ON FUNCTION pgfeed.append(text, text, jsonb) IS
'Appends an event to channel p_channel without asking who may (internal: only the pgfeed '
'owner may call it; pgfeed.publish and the track trigger check first). See pgfeed.publish.';

-- Optional publishing rules (pgfeed.publish_prefix, see 0002): while the
-- table is empty, EXECUTE on pgfeed.publish is the whole rule. Once it holds
-- a row, a role may only publish to channels starting with a prefix granted
-- to it or to a role it is a member of; superusers and members of
-- pgfeed_owner are exempt.
CREATE OR REPLACE FUNCTION pgfeed.check_may_publish(p_role oid, p_channel text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM pgfeed.publish_prefix)
       AND NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = p_role), false)
       AND NOT pg_catalog.pg_has_role(p_role, 'pgfeed_owner', 'MEMBER')
       AND NOT EXISTS (SELECT FROM pgfeed.publish_prefix p
                         JOIN pg_catalog.pg_roles r ON r.rolname = p.role
                        WHERE pg_catalog.pg_has_role(p_role, r.oid, 'MEMBER')
                          AND pg_catalog.starts_with(p_channel, p.prefix)) THEN
        RAISE EXCEPTION 'pgfeed: role % may not publish to channel %',
                        coalesce(pg_catalog.quote_ident(
                            (SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.oid = p_role)),
                            p_role::text),
                        pg_catalog.quote_literal(p_channel)
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'pgfeed.publish_prefix lists the channel prefixes each role may publish to.';
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed.check_may_publish(oid, text) IS
'Raises SQLSTATE 42501 (insufficient_privilege) unless role p_role may publish to channel '
'p_channel under pgfeed.publish_prefix: always while that table is empty, for superusers and '
'members of pgfeed_owner, and otherwise when p_channel starts with a prefix listed for p_role '
'or a role it is a member of (internal).';

-- The role that asks is the session user: inside a SECURITY DEFINER function
-- current_user is the owner, and PostgreSQL shows no other caller. SET ROLE
-- therefore does not change what a session may publish to.
CREATE OR REPLACE FUNCTION pgfeed.publish(p_channel text, p_type text, p_data jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgfeed.check_may_publish((SELECT r.oid FROM pg_catalog.pg_roles r
                                       WHERE r.rolname = session_user), p_channel);
    RETURN pgfeed.append(p_channel, p_type, p_data);
END
$$;
COMMENT ON FUNCTION pgfeed.publish(text, text, jsonb) IS
'Appends an event to channel p_channel (created on first use) and returns its version: '
'1, 2, 3, ... per channel, gapless, visible in version order. p_type is 1 to 128 characters '
'without control characters; p_data is any JSON value, SQL NULL is stored as {}. '
'At commit it sends NOTIFY on PostgreSQL channel "pgfeed" with payload "<version> <channel>". '
'Raises 22023 (invalid_parameter_value) for an invalid channel name or type. '
'Publishers of one channel wait for each other''s commit: keep such transactions short. '
'A transaction publishing to several channels should take them in byte order of their '
'names (COLLATE "C") to avoid deadlocks. Under REPEATABLE READ or SERIALIZABLE, concurrent '
'publishers to one channel get serialization failures (40001) to retry. '
'Runs as the pgfeed owner (SECURITY DEFINER): callers need EXECUTE on it (pgfeed_publisher) '
'and no table privilege; when pgfeed.publish_prefix has rows, the session user must hold a '
'prefix of p_channel there, else 42501 (insufficient_privilege).';

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
-- The common case (the channel exists) is one statement: the UPDATE that
-- takes the version and the INSERT that stores the event, joined by a CTE (one
-- executor run instead of two); only the first publish to a channel pays for
-- ensure_channel and a second try. Nothing else runs between the lock and the
-- commit, because while one publisher holds the row its channel's other
-- publishers wait (BENCHMARKS.md, "Publishing", has what each step costs).
CREATE OR REPLACE FUNCTION pgfeed.append(p_channel text, p_type text, p_data jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_version bigint;
BEGIN
    PERFORM pgfeed.check_event_type(p_type);
    FOR v_try IN 1 .. 2 LOOP
        WITH c AS (
            UPDATE pgfeed.channel SET head = head + 1 WHERE name = p_channel RETURNING head
        )
        INSERT INTO pgfeed.event (channel, version, type, data)
        SELECT p_channel, c.head, p_type, coalesce(p_data, '{}') FROM c
        RETURNING version INTO v_version;
        EXIT WHEN v_version IS NOT NULL;
        PERFORM pgfeed.ensure_channel(p_channel);
    END LOOP;

    -- Delivered at commit, dropped on rollback; at most 19 + 1 + 128 bytes.
    PERFORM pg_notify('pgfeed', v_version || ' ' || p_channel);
    RETURN v_version;
END
$$;
COMMENT ON FUNCTION pgfeed.append(text, text, jsonb) IS
'Appends an event to channel p_channel without asking who may (internal: only the pgfeed '
'owner may call it; pgfeed.publish and the track trigger check first). See pgfeed.publish.';

-- The batch: one UPDATE moves head by the number of events, so the batch gets
-- consecutive versions under the same row lock a single publish takes, one
-- INSERT stores them all, and one NOTIFY names the last version. PostgreSQL
-- folds only identical payloads of a transaction into one notification, and
-- every publish names its own version, so n publishes cost n entries in the
-- NOTIFY queue (each written under the lock that every notifying commit of
-- the cluster shares) and n wake-ups of every listener; the batch costs one.
-- A notification is a hint to read (see fcgi/db.c): the responder reads the
-- channel from what it has and finds every event of the batch.
CREATE OR REPLACE FUNCTION pgfeed.append_many(p_channel text, p_type text, p_data jsonb[])
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer := coalesce(cardinality(p_data), 0);
    v_head bigint;
BEGIN
    PERFORM pgfeed.check_event_type(p_type);
    IF v_count = 0 THEN
        RETURN NULL;
    END IF;
    UPDATE pgfeed.channel SET head = head + v_count WHERE name = p_channel RETURNING head INTO v_head;
    IF NOT FOUND THEN
        PERFORM pgfeed.ensure_channel(p_channel);
        UPDATE pgfeed.channel SET head = head + v_count WHERE name = p_channel
        RETURNING head INTO v_head;
    END IF;

    -- clock_timestamp() per row (the column default) keeps times in version order.
    INSERT INTO pgfeed.event (channel, version, type, data)
    SELECT p_channel, v_head - v_count + d.n, p_type, coalesce(d.data, '{}')
      FROM unnest(p_data) WITH ORDINALITY AS d (data, n)
     ORDER BY d.n;

    PERFORM pg_notify('pgfeed', v_head || ' ' || p_channel);
    RETURN v_head;
END
$$;
COMMENT ON FUNCTION pgfeed.append_many(text, text, jsonb[]) IS
'Appends one event per element of p_data (in array order, consecutive versions) to channel '
'p_channel and returns the last version, or NULL for an empty or NULL array, without asking '
'who may (internal: only the pgfeed owner may call it). See pgfeed.publish_many.';

-- The rule itself, as valid_channel_name is for names: a SQL-standard body,
-- inlined where it is used (enqueue tests it without a call).
CREATE OR REPLACE FUNCTION pgfeed.valid_event_type(p_type text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(p_type <> '' AND length(p_type) <= 128 AND p_type !~ '[[:cntrl:]]', false);
COMMENT ON FUNCTION pgfeed.valid_event_type(text) IS
'True when p_type may be an event type: 1 to 128 characters without control characters (internal).';

CREATE OR REPLACE FUNCTION pgfeed.check_event_type(p_type text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pgfeed.valid_event_type(p_type) THEN
        RAISE EXCEPTION 'pgfeed: invalid event type %', coalesce(quote_literal(p_type), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'An event type is 1 to 128 characters without control characters.';
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed.check_event_type(text) IS
'Raises SQLSTATE 22023 (invalid_parameter_value) unless p_type is 1 to 128 characters '
'without control characters (internal).';

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
    -- The rules apply only once the table has a row; looking the session
    -- user up costs more than the rest of a publish's checks together.
    IF EXISTS (SELECT FROM pgfeed.publish_prefix) THEN
        PERFORM pgfeed.check_may_publish((SELECT r.oid FROM pg_catalog.pg_roles r
                                           WHERE r.rolname = session_user), p_channel);
    END IF;
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

CREATE OR REPLACE FUNCTION pgfeed.publish_many(p_channel text, p_type text, p_data jsonb[])
RETURNS SETOF bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_head bigint;
BEGIN
    IF EXISTS (SELECT FROM pgfeed.publish_prefix) THEN
        PERFORM pgfeed.check_may_publish((SELECT r.oid FROM pg_catalog.pg_roles r
                                           WHERE r.rolname = session_user), p_channel);
    END IF;
    v_head := pgfeed.append_many(p_channel, p_type, p_data);
    IF v_head IS NOT NULL THEN
        RETURN QUERY SELECT v FROM generate_series(v_head - cardinality(p_data) + 1, v_head) v;
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed.publish_many(text, text, jsonb[]) IS
'Appends one event of type p_type per element of p_data to channel p_channel (created on '
'first use), in array order, and returns their versions, ascending: consecutive, gapless, '
'visible in version order like pgfeed.publish''s, all at once at commit. An SQL NULL element '
'is stored as {}; an empty or NULL array publishes nothing and returns no row. At commit it '
'sends one NOTIFY on PostgreSQL channel "pgfeed" with payload "<last version> <channel>" for '
'the whole batch. For bulk producers: one call costs one channel-row update, one INSERT and '
'one notification however many events it carries. '
'Example: SELECT pgfeed.publish_many(''orders'', ''created'', array_agg(to_jsonb(o))) FROM new_orders o. '
'Raises 22023 for an invalid channel name or type. Runs as the pgfeed owner (SECURITY '
'DEFINER): callers need EXECUTE on it (pgfeed_publisher); pgfeed.publish_prefix applies as '
'for pgfeed.publish (42501).';

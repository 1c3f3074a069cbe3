-- channel.sql — channel names, channel creation and retention policy.

-- Kept in step with channel_check_trigger below and with
-- fcgi/channel_name.c, which validates names before they reach SQL.
-- A SQL-standard body (RETURN): its names are resolved once, at CREATE time,
-- under install.sql's pinned search_path, and it stays inlinable.
CREATE OR REPLACE FUNCTION pgfeed.valid_channel_name(p_name text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(p_name ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$', false);
COMMENT ON FUNCTION pgfeed.valid_channel_name(text) IS
'True when p_name may name a channel: 1 to 128 characters from [A-Za-z0-9_.:-], the first '
'a letter or digit (so names never start with "_", which the HTTP routes keep for themselves).';

-- Raises rather than returns so that every entry point reports a bad name the
-- same way, with SQLSTATE 22023 that clients can tell from other failures.
CREATE OR REPLACE FUNCTION pgfeed.check_channel_name(p_name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pgfeed.valid_channel_name(p_name) THEN
        RAISE EXCEPTION 'pgfeed: invalid channel name %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A channel name is 1 to 128 characters from [A-Za-z0-9_.:-] '
                           'and starts with a letter or a digit.';
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed.check_channel_name(text) IS
'Raises SQLSTATE 22023 (invalid_parameter_value) unless p_name is a valid channel name.';

CREATE OR REPLACE FUNCTION pgfeed.check_retention(p_keep_events integer, p_keep_for interval)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_keep_events < 0 THEN
        RAISE EXCEPTION 'pgfeed: keep_events must be 0 or more, not %', p_keep_events
            USING ERRCODE = 'invalid_parameter_value', HINT = 'NULL means no limit.';
    END IF;
    IF p_keep_for <= interval '0' THEN
        RAISE EXCEPTION 'pgfeed: keep_for must be a positive interval, not %', p_keep_for
            USING ERRCODE = 'invalid_parameter_value', HINT = 'NULL means no age limit.';
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed.check_retention(integer, interval) IS
'Raises SQLSTATE 22023 unless keep_events is NULL or >= 0 and keep_for is NULL or positive.';

-- ON CONFLICT DO NOTHING makes concurrent first publishes safe: the loser
-- waits for the winner's transaction and then finds the row.
CREATE OR REPLACE FUNCTION pgfeed.ensure_channel(p_channel text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgfeed.check_channel_name(p_channel);
    INSERT INTO pgfeed.channel (name, keep_events, keep_for)
    SELECT p_channel, s.keep_events, s.keep_for FROM pgfeed.setting s
    ON CONFLICT (name) DO NOTHING;
END
$$;
COMMENT ON FUNCTION pgfeed.ensure_channel(text) IS
'Creates channel p_channel (head 0, oldest 1, the default retention of pgfeed.setting) '
'unless it exists. Raises 22023 for an invalid name. pgfeed.publish calls it on first use '
'(internal: only the pgfeed owner may call it).';

-- What pgfeed.channel's CHECK constraints said about the columns a publish
-- never writes (migrations/0004 says why they moved here). AFTER, not
-- BEFORE: a BEFORE ROW trigger would make every UPDATE, every publish's
-- among them, fetch and lock the row for it; an AFTER trigger with a column
-- list is not even queued by an UPDATE that does not name its columns.
CREATE OR REPLACE FUNCTION pgfeed.channel_check_trigger()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pgfeed.valid_channel_name(NEW.name) THEN
        RAISE EXCEPTION 'pgfeed: invalid channel name %', quote_literal(NEW.name)
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.keep_events < 0 OR NEW.keep_for <= interval '0' THEN
        RAISE EXCEPTION 'pgfeed: invalid retention for channel %', quote_literal(NEW.name)
            USING ERRCODE = 'check_violation',
                  DETAIL = 'keep_events must be NULL or >= 0, keep_for NULL or positive.';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION pgfeed.channel_check_trigger() IS
'Trigger on pgfeed.channel: raises 23514 (check_violation) when a written name is not a valid '
'channel name or a written retention is negative (internal).';

CREATE OR REPLACE TRIGGER pgfeed_channel_check
    AFTER INSERT OR UPDATE OF name, keep_events, keep_for ON pgfeed.channel
    FOR EACH ROW EXECUTE FUNCTION pgfeed.channel_check_trigger();

CREATE OR REPLACE FUNCTION pgfeed.set_retention(p_channel text, p_keep_events integer,
                                                p_keep_for interval)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgfeed.check_retention(p_keep_events, p_keep_for);
    PERFORM pgfeed.ensure_channel(p_channel);
    UPDATE pgfeed.channel
       SET keep_events = p_keep_events, keep_for = p_keep_for
     WHERE name = p_channel;
END
$$;
COMMENT ON FUNCTION pgfeed.set_retention(text, integer, interval) IS
'Sets channel p_channel''s retention, creating the channel if needed: keep at most '
'p_keep_events latest events (NULL = no limit; 0 = keep none) and only events younger than '
'p_keep_for (NULL = no age limit). An event is pruned when either limit drops it. Nothing is '
'deleted until the next pgfeed.prune(). Locks the channel row (and so its publishers) until '
'the transaction ends. Raises 22023 for an invalid name or limit. Runs as the pgfeed owner; '
'only the owner (and roles it is granted to) may call it.';

CREATE OR REPLACE FUNCTION pgfeed.set_default_retention(p_keep_events integer,
                                                        p_keep_for interval)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgfeed.check_retention(p_keep_events, p_keep_for);
    UPDATE pgfeed.setting SET keep_events = p_keep_events, keep_for = p_keep_for;
END
$$;
COMMENT ON FUNCTION pgfeed.set_default_retention(integer, interval) IS
'Sets the retention given to channels created from now on (installed default: keep the last '
'10000 events, no age limit; NULL = no limit). Existing channels keep theirs: change them '
'with pgfeed.set_retention(). Raises 22023 for an invalid limit. Runs as the pgfeed owner; '
'only the owner (and roles it is granted to) may call it.';

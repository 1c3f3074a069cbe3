-- publish.sql — appending an event to a channel.

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
CREATE OR REPLACE FUNCTION pgfeed.publish(p_channel text, p_type text, p_data jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql
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
COMMENT ON FUNCTION pgfeed.publish(text, text, jsonb) IS
'Appends an event to channel p_channel (created on first use) and returns its version: '
'1, 2, 3, ... per channel, gapless, visible in version order. p_type is 1 to 128 characters '
'without control characters; p_data is any JSON value, SQL NULL is stored as {}. '
'At commit it sends NOTIFY on PostgreSQL channel "pgfeed" with payload "<version> <channel>". '
'Raises 22023 (invalid_parameter_value) for an invalid channel name or type. '
'Publishers of one channel wait for each other''s commit: keep such transactions short. '
'A transaction publishing to several channels should take them in byte order of their '
'names (COLLATE "C") to avoid deadlocks. Under REPEATABLE READ or SERIALIZABLE, concurrent '
'publishers to one channel get serialization failures (40001) to retry.';

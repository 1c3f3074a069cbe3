-- read.sql — the one query the responder runs.

-- A set-returning SQL function without SET clauses or SECURITY DEFINER, so
-- the planner inlines it into `SELECT * FROM pgfeed.read($1, $2, $3)`: the
-- channel lookup is a primary key probe and the events an index range scan on
-- (channel, version). Being one statement, the head and the events come from
-- one snapshot: every event returned has version <= head, and head is never
-- ahead of an event the reader could miss (see publish.sql).
--
-- The event JSON is assembled here as text so the responder can copy it
-- verbatim into a response or an SSE data: line. to_json() escapes strings and
-- jsonb's text form escapes control characters, so it holds no raw CR or LF.
CREATE OR REPLACE FUNCTION pgfeed.read(p_channel text, p_after bigint, p_limit integer)
RETURNS TABLE (head bigint, oldest bigint, version bigint, event text)
LANGUAGE sql STABLE
AS $$
    SELECT c.head, c.oldest, e.version, e.event
      FROM (SELECT coalesce(max(ch.head), 0) AS head, coalesce(max(ch.oldest), 1) AS oldest
              FROM pgfeed.channel ch
             WHERE ch.name = p_channel) c
      LEFT JOIN (SELECT ev.version,
                        '{"channel":' || to_json(ev.channel)
                        || ',"version":' || ev.version
                        || ',"type":' || to_json(ev.type)
                        || ',"data":' || ev.data::text
                        || ',"time":"'
                        || to_char(ev.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
                        || '"}' AS event
                   FROM pgfeed.event ev
                  WHERE ev.channel = p_channel
                    AND ev.version > coalesce(p_after, 0)
                  ORDER BY ev.version
                  LIMIT p_limit) e ON true
     ORDER BY e.version
$$;
COMMENT ON FUNCTION pgfeed.read(text, bigint, integer) IS
'Reads channel p_channel after cursor p_after (NULL = 0). Always returns at least one row. '
'Every row carries the channel''s head and oldest (0 and 1 for a channel that does not exist). '
'With no event after p_after (or p_limit = 0) the one row has version and event NULL; '
'otherwise there is one row per event with version > p_after, ascending, at most p_limit '
'rows (NULL = no limit; negative raises 2201W). event is one line of JSON: '
'{"channel":..,"version":..,"type":..,"data":..,"time":"YYYY-MM-DDTHH:MI:SS.ffffffZ"} (UTC). '
'The cursor is gone (events were pruned) when p_after < oldest - 1; more events remain '
'when the last version returned is below head.';

-- read.sql — the one query the responder runs.

-- A set-returning SQL function without SET clauses or SECURITY DEFINER, so
-- the planner inlines it into `SELECT * FROM pgfeed.read($1, $2, $3)`: the
-- channel lookup is a primary key probe and the events an index range scan on
-- (channel, version). Being one statement, the head and the events come from
-- one snapshot: every event returned has version <= head, and head is never
-- ahead of an event the reader could miss (see publish.sql).
--
-- search_path. The body is SQL-standard (BEGIN ATOMIC): PostgreSQL parses it
-- once, at CREATE time, under install.sql's pinned search_path (pg_catalog,
-- pg_temp), and stores what every name resolved to. So the caller's
-- search_path never reaches to_json, to_char or ||, and a role that can
-- create objects in a schema of that path cannot substitute its own (the
-- CVE-2018-1058 pattern); a SET clause would do the same but stop inlining.
-- It runs with the caller's rights: readers need SELECT on pgfeed.channel
-- and pgfeed.event (grants.sql gives it to pgfeed_reader).
--
-- The event JSON is assembled here as text so the responder can copy it
-- verbatim into a response or an SSE data: line. to_json() escapes strings and
-- jsonb's text form escapes control characters, so it holds no raw CR or LF.
CREATE OR REPLACE FUNCTION pgfeed.read(p_channel text, p_after bigint, p_limit integer)
RETURNS TABLE (head bigint, oldest bigint, version bigint, event text, epoch bigint)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT c.head, c.oldest, e.version, e.event, c.epoch
      FROM (SELECT coalesce(max(ch.head), 0) AS head, coalesce(max(ch.oldest), 1) AS oldest,
                   coalesce(max(ch.epoch), 0) AS epoch
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
     ORDER BY e.version;
END;
COMMENT ON FUNCTION pgfeed.read(text, bigint, integer) IS
'Reads channel p_channel after cursor p_after (NULL = 0). Always returns at least one row. '
'Every row carries the channel''s head, oldest and epoch (0, 1 and 0 for a channel that does '
'not exist). With no event after p_after (or p_limit = 0) the one row has version and event '
'NULL; otherwise there is one row per event with version > p_after, ascending, at most p_limit '
'rows (NULL = no limit; negative raises 2201W). event is one line of JSON: '
'{"channel":..,"version":..,"type":..,"data":..,"time":"YYYY-MM-DDTHH:MI:SS.ffffffZ"} (UTC). '
'The cursor is gone (events were pruned) when p_after < oldest - 1; versions may have holes '
'(events deleted by hand), so fewer than p_limit rows means every event up to head was '
'returned. epoch identifies the channel''s incarnation: it changes when the channel is deleted '
'and re-created or reset, and then every cursor of the old one is void. '
'Independent of the caller''s search_path; runs with the caller''s rights.';

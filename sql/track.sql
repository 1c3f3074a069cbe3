-- track.sql — publishing an application table's row changes.
--
-- pgfeed.track puts one AFTER ROW trigger, pgfeed_track, on a table; its only
-- argument is the channel template. A template is literal channel text with
-- column names in braces: 'orders', 'user:{user_id}', 'shop.{shop_id}:orders'.

-- Splits a template into literal, column, literal, column, ..., literal: the
-- odd elements are literal text and the even ones column names. The caller has
-- checked that braces pair up, so splitting on either brace alternates.
CREATE OR REPLACE FUNCTION pgfeed.template_parts(p_template text)
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN regexp_split_to_array(p_template, '[{}]');
COMMENT ON FUNCTION pgfeed.template_parts(text) IS
'Splits a channel template into {literal, column, literal, ..., literal} (internal).';

-- One pass over the parts, so a value that itself looks like '{col}' is
-- copied as is rather than substituted again.
CREATE OR REPLACE FUNCTION pgfeed.render_channel(p_template text, p_row jsonb)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_parts text[];
    v_value text;
    v_channel text := '';
BEGIN
    IF strpos(p_template, '{') = 0 THEN
        RETURN p_template;
    END IF;
    v_parts := pgfeed.template_parts(p_template);
    FOR i IN 1 .. array_length(v_parts, 1) LOOP
        IF i % 2 = 1 THEN
            v_channel := v_channel || v_parts[i];
        ELSE
            v_value := p_row ->> v_parts[i];
            IF v_value IS NULL THEN
                RETURN NULL;
            END IF;
            v_channel := v_channel || v_value;
        END IF;
    END LOOP;
    IF NOT pgfeed.valid_channel_name(v_channel) THEN
        RAISE EXCEPTION 'pgfeed: channel template % gives the invalid channel name %',
                        quote_literal(p_template), quote_literal(v_channel)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A channel name is 1 to 128 characters from [A-Za-z0-9_.:-] '
                           'and starts with a letter or a digit.',
                  HINT = 'Build the template from columns whose values fit, such as ids.';
    END IF;
    RETURN v_channel;
END
$$;
COMMENT ON FUNCTION pgfeed.render_channel(text, jsonb) IS
'The channel a row (as jsonb) belongs to under a template: each {column} replaced by the '
'column''s value as text. NULL when one of those values is NULL (the row is in no channel). '
'Raises 22023 when the result is not a valid channel name.';

-- Partitions report their root table, so a partitioned table's events name
-- the table that was tracked.
CREATE OR REPLACE FUNCTION pgfeed.table_label(p_table regclass)
RETURNS text
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = coalesce(pg_catalog.pg_partition_root(p_table), p_table);
END;
COMMENT ON FUNCTION pgfeed.table_label(regclass) IS
'How events name a table: "table" in schema public, else "schema.table" (unquoted); a '
'partition is named by its root. Independent of search_path.';

-- Row changes publish like a filtered view of the table per channel:
--   INSERT           insert {"table", "new"}          on the new row's channel
--   UPDATE           update {"table", "old", "new"}   on the row's channel
--   UPDATE, moved    delete {"table", "old"} on the old channel and
--                    insert {"table", "new"} on the new one, in channel name
--                    order (two such moves in opposite directions then cannot
--                    deadlock on the channel rows)
--   DELETE           delete {"table", "old"}          on the old row's channel
-- An UPDATE that changes nothing publishes nothing; a row whose template
-- columns are NULL belongs to no channel and publishes nothing.
--
-- It runs as the pgfeed owner (SECURITY DEFINER, pinned search_path), so a
-- role that may write the table publishes through it with no privilege on
-- pgfeed's tables and no EXECUTE on pgfeed.publish. Who decided where the
-- events go is whoever put the trigger there, the table's owner: that role's
-- publish prefixes apply (pgfeed.publish_prefix).
CREATE OR REPLACE FUNCTION pgfeed.track_trigger()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_template text := TG_ARGV[0];
    v_table text;
    v_old jsonb;
    v_new jsonb;
    v_old_channel text;
    v_new_channel text;
    v_owner oid;
    v_channels text[] := '{}';
    v_types text[] := '{}';
    v_data jsonb[] := '{}';
BEGIN
    IF pg_catalog.pg_partition_root(TG_RELID) IS NOT NULL THEN
        v_table := pgfeed.table_label(TG_RELID);
    ELSIF TG_TABLE_SCHEMA = 'public' THEN
        v_table := TG_TABLE_NAME;
    ELSE
        v_table := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        v_old := to_jsonb(OLD);
        v_old_channel := pgfeed.render_channel(v_template, v_old);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        v_new := to_jsonb(NEW);
        v_new_channel := pgfeed.render_channel(v_template, v_new);
    END IF;

    -- Per changed row, so the rules are looked at only when there are some.
    IF EXISTS (SELECT FROM pgfeed.publish_prefix) THEN
        v_owner := (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID);
        IF v_old_channel IS NOT NULL THEN
            PERFORM pgfeed.check_may_publish(v_owner, v_old_channel);
        END IF;
        IF v_new_channel IS NOT NULL AND v_new_channel IS DISTINCT FROM v_old_channel THEN
            PERFORM pgfeed.check_may_publish(v_owner, v_new_channel);
        END IF;
    END IF;

    -- What to publish, in order: one event, or two for a row moved between channels.
    IF TG_OP = 'UPDATE' AND v_old_channel IS NOT DISTINCT FROM v_new_channel THEN
        IF v_new_channel IS NOT NULL AND v_old <> v_new THEN
            v_channels := ARRAY[v_new_channel];
            v_types := ARRAY['update'];
            v_data := ARRAY[jsonb_build_object('table', v_table, 'old', v_old, 'new', v_new)];
        END IF;
    ELSE
        -- INSERT, DELETE, or an UPDATE that moved the row between channels.
        IF v_old_channel IS NOT NULL
           AND (v_new_channel IS NULL OR v_old_channel COLLATE "C" < v_new_channel COLLATE "C") THEN
            v_channels := ARRAY[v_old_channel];
            v_types := ARRAY['delete'];
            v_data := ARRAY[jsonb_build_object('table', v_table, 'old', v_old)];
            v_old_channel := NULL;
        END IF;
        IF v_new_channel IS NOT NULL THEN
            v_channels := v_channels || v_new_channel;
            v_types := v_types || 'insert'::text;
            v_data := v_data || jsonb_build_object('table', v_table, 'new', v_new);
        END IF;
        IF v_old_channel IS NOT NULL THEN
            v_channels := v_channels || v_old_channel;
            v_types := v_types || 'delete'::text;
            v_data := v_data || jsonb_build_object('table', v_table, 'old', v_old);
        END IF;
    END IF;

    -- Through the outbox (pgfeed.track's p_via => 'outbox'): the rows' channels
    -- and types are valid by construction (render_channel raises otherwise), so
    -- nothing the sequencer could refuse is queued.
    IF TG_NARGS > 1 AND TG_ARGV[1] = 'outbox' THEN
        INSERT INTO pgfeed.outbox (channel, type, data)
        SELECT e.channel, e.type, e.data
          FROM unnest(v_channels, v_types, v_data) WITH ORDINALITY AS e (channel, type, data, k)
         ORDER BY e.k;
    ELSE
        FOR i IN 1 .. coalesce(cardinality(v_channels), 0) LOOP
            PERFORM pgfeed.append(v_channels[i], v_types[i], v_data[i]);
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION pgfeed.track_trigger() IS
'The row trigger that pgfeed.track installs (as pgfeed_track); its arguments are the channel '
'template and, for p_via => ''outbox'', ''outbox'' (enqueue instead of publish). Not meant to be called otherwise. Runs as the pgfeed owner; raises 42501 when '
'pgfeed.publish_prefix does not let the table''s owner publish to the row''s channel.';

-- Runs as its caller, who must own the table (CREATE TRIGGER checks that) and
-- hold EXECUTE on pgfeed.track_trigger (pgfeed_publisher).
-- p_via 'outbox' makes the trigger enqueue (sql/outbox.sql) instead of
-- publish: the table's writers then no longer wait for each other's commit
-- on the channel row, and the versions come a moment after their commit.
CREATE OR REPLACE FUNCTION pgfeed.track(p_table regclass, p_channel_template text,
                                        p_via text DEFAULT 'publish')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_parts text[];
    v_sample text := '';
BEGIN
    IF p_table IS NULL THEN
        RAISE EXCEPTION 'pgfeed.track: the table must not be NULL'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_via IS NULL OR p_via NOT IN ('publish', 'outbox') THEN
        RAISE EXCEPTION 'pgfeed.track: p_via must be ''publish'' or ''outbox'', not %',
                        coalesce(quote_literal(p_via), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT relkind FROM pg_catalog.pg_class WHERE oid = p_table) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'pgfeed.track: % is not a table', p_table
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF p_channel_template IS NULL OR p_channel_template !~ '^([^{}]*\{[^{}]+\})*[^{}]*$' THEN
        RAISE EXCEPTION 'pgfeed.track: malformed channel template %',
                        coalesce(quote_literal(p_channel_template), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Write column names in braces, e.g. ''user:{user_id}''.';
    END IF;

    -- Every placeholder must name a column, and the literal text must be able
    -- to form a channel name (a placeholder stands in for a one-digit value).
    v_parts := pgfeed.template_parts(p_channel_template);
    FOR i IN 1 .. array_length(v_parts, 1) LOOP
        IF i % 2 = 1 THEN
            v_sample := v_sample || v_parts[i];
        ELSIF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute
                           WHERE attrelid = p_table AND attname = v_parts[i]
                             AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'pgfeed.track: table % has no column "%" (in channel template %)',
                            p_table, v_parts[i], quote_literal(p_channel_template)
                USING ERRCODE = 'undefined_column';
        ELSE
            v_sample := v_sample || '0';
        END IF;
    END LOOP;
    IF NOT pgfeed.valid_channel_name(v_sample) THEN
        RAISE EXCEPTION 'pgfeed.track: channel template % cannot give a valid channel name',
                        quote_literal(p_channel_template)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A channel name is 1 to 128 characters from [A-Za-z0-9_.:-] '
                           'and starts with a letter or a digit.';
    END IF;

    EXECUTE format('CREATE OR REPLACE TRIGGER pgfeed_track '
                   'AFTER INSERT OR UPDATE OR DELETE ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION pgfeed.track_trigger(%L%s)',
                   p_table, p_channel_template, CASE p_via WHEN 'outbox' THEN ', ''outbox''' ELSE '' END);
END
$$;
COMMENT ON FUNCTION pgfeed.track(regclass, text, text) IS
'Publishes the row changes of table p_table: insert {"table","new"}, update '
'{"table","old","new"}, delete {"table","old"}, with rows as JSON and "table" the table''s '
'name ("schema.table" outside schema public). p_channel_template names the channel, '
'literally or from the row''s columns: ''user:{user_id}'' publishes a row with user_id 42 to '
'user:42 (DELETE uses the old row, INSERT and UPDATE the new one). An UPDATE that moves a row '
'between channels publishes delete on the old channel and insert on the new one; an UPDATE '
'that changes nothing publishes nothing; a row with a NULL template column publishes nothing. '
'Tracking a tracked table replaces its template. Raises 42703 for a template column the table '
'lacks, 22023 for a template that cannot form a channel name (and, at write time, when a row '
'renders an invalid name). TRUNCATE is not published. With p_via ''publish'' (the default) each '
'changed row costs one pgfeed.publish: writers of one channel serialize on its row lock until '
'they commit. With p_via ''outbox'' each changed row is enqueued like pgfeed.enqueue: writers '
'do not wait for each other, and the versions are given after commit by pgfeed.sequence (a '
'running pgfeed). Requires owning the table.';

CREATE OR REPLACE FUNCTION pgfeed.untrack(p_table regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS pgfeed_track ON %s', p_table);
END
$$;
COMMENT ON FUNCTION pgfeed.untrack(regclass) IS
'Stops publishing the row changes of p_table (drops its pgfeed_track trigger). Events already '
'published stay. Untracking a table that is not tracked does nothing.';

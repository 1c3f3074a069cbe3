-- authorize.sql — an example pgfeed.authorize, for an application to adapt.
--
-- Not run by install.sql: pgfeed.authorize is the application's. Install your
-- own version with psql after install.sql; re-installing pgfeed keeps it.
--
-- pgfeed calls it as pgfeed.authorize(principal, channel) with the principal
-- from REMOTE_USER or the token's sub, for channels that --allow,
-- --allow-user and the token's channels claim did not allow, and caches each
-- answer for --auth-cache-ttl seconds (default 60): that is how long a
-- revoked membership can still be read, at most. Keep it fast (an index
-- lookup) and STABLE; it runs as the role pgfeed connects with unless you make
-- it SECURITY DEFINER as below, with a pinned search_path.
--
-- This example lets members of a team read the channels "team:<id>" and
-- "team:<id>:<anything>", from a table the application keeps:
--
--     CREATE TABLE public.team_member (team_id text, username text,
--                                      PRIMARY KEY (team_id, username));
CREATE OR REPLACE FUNCTION pgfeed.authorize(principal text, channel text)
RETURNS boolean
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT EXISTS (
        SELECT FROM public.team_member m
         WHERE m.username = principal
           AND (channel = 'team:' || m.team_id OR starts_with(channel, 'team:' || m.team_id || ':'))
    )
$$;
COMMENT ON FUNCTION pgfeed.authorize(text, text) IS
'May principal read channel? Members of public.team_member read team:<id> and team:<id>:*.';

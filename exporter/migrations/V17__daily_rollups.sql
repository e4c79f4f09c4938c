-- Daily rollups for long windows (issue #35): an hourly rollup row is one hour × user × tool ×
-- client × … and a year holds about a million of them at ten million requests, too many to sum
-- in a dashboard's 200 ms. Two narrow daily tables answer the questions that cover a year —
-- per tool (with model, outcome and latency) and per user (with department and outcome) — and
-- the readers take their whole days, the rest from `archon_mcp_usage_hours`. Days are UTC days,
-- recomputed from the hourly rollups whenever one of their hours is; a day with an hour marked
-- since is read from the hours, so the figures are the rows' either way.

CREATE TABLE archon_mcp_rollup_daily_tool (
    day                timestamptz NOT NULL,
    tool_name          text,
    model              text,
    status             text NOT NULL,
    error_kind         text,
    token_source       text NOT NULL,
    requests           bigint NOT NULL,
    prompt_tokens      bigint NOT NULL,
    completion_tokens  bigint NOT NULL,
    cost               numeric NOT NULL,
    duration_ms_sum    double precision NOT NULL,
    duration_ms_max    double precision,
    latency_buckets    integer[] NOT NULL
);
CREATE INDEX idx_archon_mcp_rollup_daily_tool_day ON archon_mcp_rollup_daily_tool (day);
COMMENT ON TABLE archon_mcp_rollup_daily_tool IS
    'Requests per UTC day x tool x model x status x failure kind x token source, from the hourly rollups';

CREATE TABLE archon_mcp_rollup_daily_user (
    day                timestamptz NOT NULL,
    user_id            uuid,
    user_department    text,
    tool_name          text,
    status             text NOT NULL,
    token_source       text NOT NULL,
    requests           bigint NOT NULL,
    prompt_tokens      bigint NOT NULL,
    completion_tokens  bigint NOT NULL,
    cost               numeric NOT NULL
);
CREATE INDEX idx_archon_mcp_rollup_daily_user_day ON archon_mcp_rollup_daily_user (day);
COMMENT ON TABLE archon_mcp_rollup_daily_user IS
    'Requests per UTC day x user x department x tool x status x token source, from the hourly rollups';

-- Recomputes the given UTC days of both from their hourly rollups, in one pass over them (a
-- pass per day would read the hourly table once per day). Days are 24 hours: UTC has no DST.
CREATE FUNCTION archon_mcp_rollup_days(p_days timestamptz[])
RETURNS void
LANGUAGE sql
AS $fn$
    DELETE FROM archon_mcp_rollup_daily_tool WHERE day = ANY (p_days);
    INSERT INTO archon_mcp_rollup_daily_tool
    SELECT date_trunc('day', h.hour, 'UTC'), h.tool_name, h.model, h.status, h.error_kind, h.token_source,
           sum(h.requests), sum(h.prompt_tokens), sum(h.completion_tokens), sum(h.cost), sum(h.duration_ms_sum),
           max(h.duration_ms_max),
           ARRAY[sum(h.latency_buckets[1]), sum(h.latency_buckets[2]), sum(h.latency_buckets[3]), sum(h.latency_buckets[4]),
                 sum(h.latency_buckets[5]), sum(h.latency_buckets[6]), sum(h.latency_buckets[7]), sum(h.latency_buckets[8]),
                 sum(h.latency_buckets[9]), sum(h.latency_buckets[10]), sum(h.latency_buckets[11]), sum(h.latency_buckets[12]),
                 sum(h.latency_buckets[13]), sum(h.latency_buckets[14]), sum(h.latency_buckets[15]), sum(h.latency_buckets[16])]::integer[]
      FROM archon_mcp_rollup_hourly h
     WHERE h.hour >= (SELECT min(d) FROM unnest(p_days) d) AND h.hour < (SELECT max(d) FROM unnest(p_days) d) + interval '24 hours'
       AND date_trunc('day', h.hour, 'UTC') = ANY (p_days)
     GROUP BY 1, h.tool_name, h.model, h.status, h.error_kind, h.token_source;
    DELETE FROM archon_mcp_rollup_daily_user WHERE day = ANY (p_days);
    INSERT INTO archon_mcp_rollup_daily_user
    SELECT date_trunc('day', h.hour, 'UTC'), h.user_id, h.user_department, h.tool_name, h.status, h.token_source,
           sum(h.requests), sum(h.prompt_tokens), sum(h.completion_tokens), sum(h.cost)
      FROM archon_mcp_rollup_hourly h
     WHERE h.hour >= (SELECT min(d) FROM unnest(p_days) d) AND h.hour < (SELECT max(d) FROM unnest(p_days) d) + interval '24 hours'
       AND date_trunc('day', h.hour, 'UTC') = ANY (p_days)
     GROUP BY 1, h.user_id, h.user_department, h.tool_name, h.status, h.token_source;
$fn$;

-- The hours' upkeep recomputes their days too (V14's, with the days).
CREATE OR REPLACE FUNCTION archon_mcp_rollup_refresh(p_limit integer DEFAULT 48)
RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    h timestamptz;
    hours timestamptz[] := '{}';
BEGIN
    -- Replicas take turns: two rebuilds of one hour must not interleave.
    PERFORM pg_advisory_xact_lock(hashtext('archon_mcp_rollup'));
    FOR h IN
        DELETE FROM archon_mcp_rollup_dirty
         WHERE hour IN (SELECT d.hour FROM archon_mcp_rollup_dirty d ORDER BY d.hour LIMIT p_limit)
        RETURNING hour
    LOOP
        PERFORM archon_mcp_rollup_hour(h);
        hours := array_append(hours, h);
    END LOOP;
    PERFORM archon_mcp_rollup_days(ARRAY(SELECT DISTINCT date_trunc('day', x, 'UTC') FROM unnest(hours) AS x));
    RETURN cardinality(hours);
END;
$fn$;

-- A rebuild recomputes the days of its hours. It never reaches back before the oldest raw row:
-- retention drops old request months but keeps their rollups (the long tier), which a rebuild
-- there would find nothing for and erase.
CREATE OR REPLACE FUNCTION archon_mcp_rollup_rebuild(p_from timestamptz, p_to timestamptz)
RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    first timestamptz := greatest(date_trunc('hour', p_from, 'UTC'),
                                  date_trunc('hour', (SELECT min(r."timestamp") FROM archon_mcp_requests r), 'UTC'));
    h timestamptz := first;
    n integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('archon_mcp_rollup'));
    WHILE h <= date_trunc('hour', p_to, 'UTC') LOOP
        DELETE FROM archon_mcp_rollup_dirty WHERE hour = h;
        PERFORM archon_mcp_rollup_hour(h);
        h := h + interval '1 hour';
        n := n + 1;
    END LOOP;
    IF n > 0 THEN
        PERFORM archon_mcp_rollup_days(ARRAY(
            SELECT generate_series(date_trunc('day', first, 'UTC'), date_trunc('day', p_to, 'UTC'), interval '24 hours')));
    END IF;
    RETURN n;
END;
$fn$;

-- The whole UTC days of [p_from, p_to).
CREATE FUNCTION archon_mcp_rollup_day_span(p_from timestamptz, p_to timestamptz, OUT lo timestamptz, OUT hi timestamptz)
LANGUAGE sql
IMMUTABLE
AS $fn$
    SELECT f.lo, greatest(date_trunc('day', p_to, 'UTC'), f.lo)
      FROM (SELECT least(CASE WHEN date_trunc('day', p_from, 'UTC') = p_from THEN p_from
                              ELSE date_trunc('day', p_from, 'UTC') + interval '24 hours' END, p_to) AS lo) f
$fn$;

-- The parts of [p_from, p_to) the daily rollups do not answer, to read from the hours: the
-- ragged ends and the days with an hour marked since their rollup.
CREATE FUNCTION archon_mcp_rollup_day_gaps(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (lo timestamptz, hi timestamptz)
LANGUAGE sql
STABLE
AS $fn$
    SELECT p_from, b.lo FROM archon_mcp_rollup_day_span(p_from, p_to) b WHERE p_from < b.lo
    UNION ALL
    SELECT b.hi, p_to FROM archon_mcp_rollup_day_span(p_from, p_to) b WHERE b.hi < p_to
    UNION ALL
    SELECT d.day, d.day + interval '24 hours'
      FROM archon_mcp_rollup_day_span(p_from, p_to) b,
           LATERAL (SELECT DISTINCT date_trunc('day', m.hour, 'UTC') AS day
                      FROM archon_mcp_rollup_dirty m WHERE m.hour >= b.lo AND m.hour < b.hi) d
$fn$;

-- The requests of [p_from, p_to) per tool, model, outcome and token source: whole clean days
-- from the daily rollup (`at` is the day), the rest from `archon_mcp_usage_hours` (`at` is
-- the hour). The same figures as the rows.
CREATE FUNCTION archon_mcp_usage_by_tool(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (at timestamptz, tool_name text, model text, status text, error_kind text, token_source text,
               requests bigint, prompt_tokens bigint, completion_tokens bigint, cost numeric,
               duration_ms_sum double precision, duration_ms_max double precision, latency_buckets integer[])
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    SELECT t.day, t.tool_name, t.model, t.status, t.error_kind, t.token_source, t.requests, t.prompt_tokens,
           t.completion_tokens, t.cost, t.duration_ms_sum, t.duration_ms_max, t.latency_buckets
      FROM archon_mcp_rollup_day_span(p_from, p_to) b, archon_mcp_rollup_daily_tool t
     WHERE t.day >= b.lo AND t.day < b.hi -- A day with an hour marked since its rollup is read from the hours.
       AND NOT EXISTS (SELECT 1 FROM archon_mcp_rollup_dirty d
                        WHERE d.hour >= t.day AND d.hour < t.day + interval '24 hours')
    UNION ALL
    SELECT h.hour, h.tool_name, h.model, h.status, h.error_kind, h.token_source, h.requests, h.prompt_tokens,
           h.completion_tokens, h.cost, h.duration_ms_sum, h.duration_ms_max, h.latency_buckets
      FROM archon_mcp_rollup_day_gaps(p_from, p_to) g, LATERAL archon_mcp_usage_hours(g.lo, g.hi) h
$fn$;
COMMENT ON FUNCTION archon_mcp_usage_by_tool(timestamptz, timestamptz) IS
    'The requests of [from, to) per tool, model, outcome and token source: daily rollups for whole clean days, hourly rollups and rows elsewhere';

-- The same per user, department, tool, status and token source.
CREATE FUNCTION archon_mcp_usage_by_user(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (at timestamptz, user_id uuid, user_department text, tool_name text, status text, token_source text,
               requests bigint, prompt_tokens bigint, completion_tokens bigint, cost numeric)
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    SELECT u.day, u.user_id, u.user_department, u.tool_name, u.status, u.token_source, u.requests, u.prompt_tokens,
           u.completion_tokens, u.cost
      FROM archon_mcp_rollup_day_span(p_from, p_to) b, archon_mcp_rollup_daily_user u
     WHERE u.day >= b.lo AND u.day < b.hi -- A day with an hour marked since its rollup is read from the hours.
       AND NOT EXISTS (SELECT 1 FROM archon_mcp_rollup_dirty d
                        WHERE d.hour >= u.day AND d.hour < u.day + interval '24 hours')
    UNION ALL
    SELECT h.hour, h.user_id, h.user_department, h.tool_name, h.status, h.token_source, h.requests, h.prompt_tokens,
           h.completion_tokens, h.cost
      FROM archon_mcp_rollup_day_gaps(p_from, p_to) g, LATERAL archon_mcp_usage_hours(g.lo, g.hi) h
$fn$;
COMMENT ON FUNCTION archon_mcp_usage_by_user(timestamptz, timestamptz) IS
    'The requests of [from, to) per user, department, tool, status and token source: daily rollups for whole clean days, hourly rollups and rows elsewhere';

-- The Archon SQL API on the per-user days: the same names, signatures and figures (row-level
-- security holds on both sources, so a reader gets its own). Ranges include both ends
-- (BETWEEN): [start, end] is [start, end + 1 µs).
CREATE OR REPLACE FUNCTION get_mcp_usage_summary(
    start_date timestamptz DEFAULT now() - interval '30 days',
    end_date timestamptz DEFAULT now()
)
RETURNS TABLE (
    total_requests bigint,
    total_prompt_tokens bigint,
    total_completion_tokens bigint,
    total_tokens bigint,
    total_cost numeric,
    unique_sessions bigint,
    successful_requests bigint,
    failed_requests bigint,
    unique_users bigint
)
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    SELECT coalesce(sum(h.requests), 0)::bigint,
           coalesce(sum(h.prompt_tokens), 0)::bigint,
           coalesce(sum(h.completion_tokens), 0)::bigint,
           coalesce(sum(h.prompt_tokens + h.completion_tokens), 0)::bigint,
           coalesce(sum(h.cost), 0),
           (SELECT count(DISTINCT s.session_id)
              FROM archon_mcp_usage_sessions(start_date, end_date + interval '1 microsecond') s),
           coalesce(sum(h.requests) FILTER (WHERE h.status = 'success'), 0)::bigint,
           coalesce(sum(h.requests) FILTER (WHERE h.status <> 'success'), 0)::bigint,
           count(DISTINCT h.user_id)
      FROM archon_mcp_usage_by_user(start_date, end_date + interval '1 microsecond') h
$fn$;

CREATE OR REPLACE FUNCTION get_user_activity_summary(
    p_user_id uuid,
    days integer DEFAULT 30
)
RETURNS TABLE (
    user_id uuid,
    user_email varchar,
    user_name varchar,
    total_sessions bigint,
    active_sessions bigint,
    total_requests bigint,
    total_tokens bigint,
    total_cost numeric,
    avg_session_duration integer,
    most_used_client varchar,
    first_seen timestamptz,
    last_seen timestamptz
)
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    WITH win AS (
        SELECT now() - make_interval(days => days) AS since
    ),
    sessions AS (
        SELECT s.*
          FROM archon_mcp_sessions s, win
         WHERE s.user_id = p_user_id
           AND s.last_activity >= win.since
    ),
    requests AS (
        SELECT coalesce(sum(h.requests), 0)::bigint AS n,
               coalesce(sum(h.prompt_tokens + h.completion_tokens), 0) AS tokens,
               coalesce(sum(h.cost), 0) AS cost
          FROM win, LATERAL archon_mcp_usage_by_user(win.since, 'infinity') h
         WHERE h.user_id = p_user_id
    ),
    favourite AS (
        SELECT s.client_type
          FROM sessions s
         GROUP BY s.client_type
         ORDER BY count(*) DESC, max(s.last_activity) DESC
         LIMIT 1
    )
    SELECT p_user_id,
           (array_agg(s.user_email ORDER BY s.last_activity DESC) FILTER (WHERE s.user_email IS NOT NULL))[1],
           (array_agg(s.user_name ORDER BY s.last_activity DESC) FILTER (WHERE s.user_name IS NOT NULL))[1],
           count(*),
           count(*) FILTER (WHERE s.status = 'active'),
           (SELECT n FROM requests),
           (SELECT tokens FROM requests)::bigint,
           (SELECT cost FROM requests),
           round(avg(s.total_duration))::integer,
           (SELECT client_type FROM favourite),
           min(s.connected_at),
           max(s.last_activity)
      FROM sessions s
    HAVING count(*) > 0
$fn$;

CREATE OR REPLACE VIEW archon_mcp_user_stats WITH (security_invoker = true) AS
WITH per_user_sessions AS (
    SELECT
        user_id,
        -- The latest known value of each user attribute.
        (array_agg(user_email ORDER BY last_activity DESC) FILTER (WHERE user_email IS NOT NULL))[1] AS user_email,
        (array_agg(user_name ORDER BY last_activity DESC) FILTER (WHERE user_name IS NOT NULL))[1] AS user_name,
        (array_agg(user_department ORDER BY last_activity DESC) FILTER (WHERE user_department IS NOT NULL))[1] AS user_department,
        (array_agg(user_key ORDER BY last_activity DESC) FILTER (WHERE user_key IS NOT NULL))[1] AS user_key,
        count(*) AS total_sessions,
        count(*) FILTER (WHERE status = 'active') AS active_sessions,
        count(*) FILTER (WHERE status = 'disconnected') AS disconnected_sessions,
        avg(total_duration) AS avg_session_duration_seconds,
        max(total_duration) AS max_session_duration_seconds,
        min(connected_at) AS first_session_at,
        max(last_activity) AS last_activity_at
    FROM archon_mcp_sessions
    WHERE user_id IS NOT NULL
    GROUP BY user_id
),
per_user_requests AS (
    SELECT
        user_id,
        sum(requests)::bigint AS total_requests,
        sum(prompt_tokens + completion_tokens) AS total_tokens,
        sum(cost) AS total_cost,
        coalesce(sum(requests) FILTER (WHERE status <> 'success'), 0)::bigint AS failed_requests,
        sum(prompt_tokens + completion_tokens) FILTER (WHERE token_source = 'reported') AS reported_tokens,
        sum(prompt_tokens + completion_tokens) FILTER (WHERE token_source = 'estimated') AS estimated_tokens
    FROM archon_mcp_usage_by_user('-infinity', 'infinity')
    WHERE user_id IS NOT NULL
    GROUP BY user_id
)
SELECT
    s.user_id,
    s.user_email,
    s.user_name,
    s.total_sessions,
    s.active_sessions,
    s.disconnected_sessions,
    s.avg_session_duration_seconds,
    s.max_session_duration_seconds,
    s.first_session_at,
    s.last_activity_at,
    coalesce(r.total_requests, 0) AS total_requests,
    coalesce(r.total_tokens, 0)::bigint AS total_tokens,
    coalesce(r.total_cost, 0) AS total_cost,
    s.user_department,
    s.user_key,
    coalesce(r.failed_requests, 0) AS failed_requests,
    coalesce(r.reported_tokens, 0)::bigint AS reported_tokens,
    coalesce(r.estimated_tokens, 0)::bigint AS estimated_tokens
FROM per_user_sessions s
LEFT JOIN per_user_requests r USING (user_id);

-- Whether the current login sees every user's requests (no reader policy narrows it), so a
-- function may read the per-tool days, which hold everyone's: a reader's figures come from the
-- hours, where row-level security leaves it its own.
CREATE FUNCTION archon_mcp_sees_every_user()
RETURNS boolean
LANGUAGE sql
STABLE
AS $fn$
    SELECT NOT pg_has_role(current_user, 'archon_reader', 'MEMBER')
        OR pg_has_role(current_user, 'archon_grafana', 'MEMBER')
        OR pg_has_role(current_user, 'archon_exporter', 'MEMBER')
        OR pg_has_role(current_user, 'archon_admin', 'MEMBER')
$fn$;

-- get_mcp_usage_by_tool's p95_duration_ms is read from the latency histogram (the upper bound of
-- its bucket, capped by the slowest request) rather than interpolated between rows; its other
-- figures are the rows'.
CREATE OR REPLACE FUNCTION get_mcp_usage_by_tool(
    start_date timestamptz DEFAULT now() - interval '30 days',
    end_date timestamptz DEFAULT now()
)
RETURNS TABLE (
    tool_name varchar,
    request_count bigint,
    total_tokens bigint,
    total_cost numeric,
    avg_duration_ms numeric,
    error_count bigint,
    p95_duration_ms double precision
)
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    SELECT h.tool_name,
           sum(h.requests)::bigint,
           coalesce(sum(h.prompt_tokens + h.completion_tokens), 0)::bigint,
           coalesce(sum(h.cost), 0),
           round((sum(h.duration_ms_sum) / sum(h.requests))::numeric, 3),
           coalesce(sum(h.requests) FILTER (WHERE h.status <> 'success'), 0)::bigint,
           archon_mcp_latency_quantile(
               ARRAY[sum(h.latency_buckets[1]), sum(h.latency_buckets[2]), sum(h.latency_buckets[3]), sum(h.latency_buckets[4]), sum(h.latency_buckets[5]), sum(h.latency_buckets[6]), sum(h.latency_buckets[7]), sum(h.latency_buckets[8]),
                     sum(h.latency_buckets[9]), sum(h.latency_buckets[10]), sum(h.latency_buckets[11]), sum(h.latency_buckets[12]), sum(h.latency_buckets[13]), sum(h.latency_buckets[14]), sum(h.latency_buckets[15]), sum(h.latency_buckets[16])],
               0.95, max(h.duration_ms_max))
      FROM (SELECT t.tool_name, t.status, t.requests, t.prompt_tokens, t.completion_tokens, t.cost,
                   t.duration_ms_sum, t.duration_ms_max, t.latency_buckets
              FROM archon_mcp_usage_by_tool(start_date, end_date + interval '1 microsecond') t
             WHERE archon_mcp_sees_every_user()
            UNION ALL
            SELECT h.tool_name, h.status, h.requests, h.prompt_tokens, h.completion_tokens, h.cost,
                   h.duration_ms_sum, h.duration_ms_max, h.latency_buckets
              FROM archon_mcp_usage_hours(start_date, end_date + interval '1 microsecond') h
             WHERE NOT archon_mcp_sees_every_user()) h
     WHERE h.tool_name IS NOT NULL
     GROUP BY h.tool_name
     ORDER BY sum(h.requests) DESC, h.tool_name
$fn$;

-- As the hourly rollups: readers see their own user's rows; the per-tool days are everyone's
-- (no user in them), so readers are not given them.
ALTER TABLE archon_mcp_rollup_daily_user ENABLE ROW LEVEL SECURITY;
CREATE POLICY archon_mcp_rollup_daily_user_writers ON archon_mcp_rollup_daily_user
    FOR ALL TO archon_exporter, archon_admin USING (true) WITH CHECK (true);
CREATE POLICY archon_mcp_rollup_daily_user_all ON archon_mcp_rollup_daily_user FOR SELECT TO archon_grafana USING (true);
CREATE POLICY archon_mcp_rollup_daily_user_own ON archon_mcp_rollup_daily_user FOR SELECT TO archon_reader
    USING (user_id = (SELECT archon_current_user_id()));
GRANT SELECT, INSERT, DELETE ON archon_mcp_rollup_daily_tool, archon_mcp_rollup_daily_user TO archon_exporter, archon_admin;
GRANT SELECT ON archon_mcp_rollup_daily_tool, archon_mcp_rollup_daily_user TO archon_grafana;
GRANT SELECT ON archon_mcp_rollup_daily_user TO archon_reader;
REVOKE EXECUTE ON FUNCTION archon_mcp_rollup_days(timestamptz[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION archon_mcp_rollup_days(timestamptz[]) TO archon_exporter, archon_admin;

-- The days of the hours rolled up so far.
SELECT archon_mcp_rollup_days(ARRAY(SELECT DISTINCT date_trunc('day', hour, 'UTC') FROM archon_mcp_rollup_hourly));
